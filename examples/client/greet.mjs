#!/usr/bin/env node
// Submits a run of the sample workflow `greet`, follows its log, approves its gate, answers its
// input step and follows it to the end, with the typed client a program imports:
//
//   node examples/client/greet.mjs [--project-path examples/hello] [--name Ana] [--count 2]
//
// A daemon must run for the project (`charter-daemon start --project-path examples/hello`).
// Exits 0 when the run succeeded, 1 when it did not, 2 on a client error (its code is printed).
import { parseArgs } from 'node:util';
import { CharterError, connect } from 'charter-daemon/client';

const { values } = parseArgs({
  options: {
    'project-path': { type: 'string', default: 'examples/hello' },
    name: { type: 'string', default: 'Ana' },
    count: { type: 'string', default: '2' },
  },
});

/** Prints the entries of the run's log until one of `until` types, or the end; returns the last seq. */
async function follow(client, runId, afterSeq, until) {
  let last = afterSeq;
  for await (const batch of client.logs(runId, { follow: true, afterSeq })) {
    for (const entry of batch.entries) {
      last = entry.seq;
      if (entry.type === 'step.output') process.stdout.write(entry.data.text.replace(/^(?=.)/gm, '  | '));
      else console.log(`  ${entry.type}${entry.data?.step_id ? ` ${entry.data.step_id}` : ''}`);
      // Leaving the loop closes the stream's connection: the daemon stops sending.
      if (until.includes(entry.type)) return last;
    }
  }
  return last;
}

// Ctrl-C aborts whatever the client is waiting for.
const interrupted = new AbortController();
process.once('SIGINT', () => interrupted.abort());

let client;
try {
  client = await connect({ projectPath: values['project-path'], signal: interrupted.signal });
  console.log(`connected to daemon ${client.hello.daemon_version} (pid ${client.hello.pid})`);
  const { run_id: runId } = await client.submitRun({ workflow_id: 'greet', inputs: { name: values.name } });
  console.log(`run ${runId} queued`);

  let seq = await follow(client, runId, 0, ['run.waiting']);
  const atGate = await client.showRun(runId);
  console.log(`waiting at ${atGate.waiting?.kind} "${atGate.waiting?.step_id}": ${atGate.waiting?.prompt}`);
  await client.decideGate({ run_id: runId, step_id: 'confirm', decision: 'approve', by: 'examples/client' });
  console.log('approved');

  seq = await follow(client, runId, seq, ['run.waiting']);
  await client.submitInput({ run_id: runId, step_id: 'details', answers: { count: values.count } });
  console.log(`answered count=${values.count}`);

  await follow(client, runId, seq, []);
  const done = await client.showRun(runId);
  console.log(`run ${runId} ${done.state}`);
  process.exitCode = done.state === 'succeeded' ? 0 : 1;
} catch (error) {
  if (!(error instanceof CharterError)) throw error;
  console.error(`${error.code}: ${error.message}\n  next: ${error.hint}`);
  process.exitCode = 2;
} finally {
  client?.close();
}
