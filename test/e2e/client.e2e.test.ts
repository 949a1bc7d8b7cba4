import { readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CharterClient, CharterError, connect, type LogEntry } from '../../src/client/index.js';
import { daemonPaths } from '../../src/project/paths.js';
import { readRuntimeFile } from '../../src/project/runtime-file.js';
import {
  assertBuilt,
  type CliResult,
  destroyProjects,
  makeProject,
  runProgram,
  startSampleProject,
} from '../support/cli.js';
import { waitUntil } from '../support/wait.js';

const projects: string[] = [];
const clients: CharterClient[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  destroyProjects(projects);
});

/** A fresh copy of examples/hello with a running daemon. */
const startedProject = (charterYml = 'name: client-e2e\n'): Promise<string> =>
  startSampleProject(projects, { charterYml });

async function connected(root: string): Promise<CharterClient> {
  const client = await connect({ projectPath: root, timeoutMs: 10_000 });
  clients.push(client);
  return client;
}

/** Entries of a run's log, following it until `until` holds for an entry (or the stream ends). */
async function followUntil(
  client: CharterClient,
  runId: string,
  until: (entry: LogEntry) => boolean,
  afterSeq = 0,
): Promise<LogEntry[]> {
  const seen: LogEntry[] = [];
  stream: for await (const batch of client.logs(runId, { follow: true, afterSeq })) {
    for (const entry of batch.entries) {
      seen.push(entry);
      if (until(entry)) break stream;
    }
  }
  return seen;
}

/** Open file descriptors of the daemon process: every control connection holds one. */
function daemonFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function rejection(promise: Promise<unknown>): Promise<CharterError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CharterError);
    return error as CharterError;
  }
  throw new Error('expected a rejection');
}

describe('charter-daemon/client', () => {
  it('drives greet through its gate and input step with the typed methods', async () => {
    const root = await startedProject();
    const client = await connected(root);
    expect(client.hello.protocol).toBe(1);
    expect(client.projectRoot).toBe(root);

    const ack = await client.submitRun({ workflow_id: 'greet', inputs: { name: 'Ana' } });
    expect(ack.state).toBe('queued');
    const untilGate = await followUntil(client, ack.run_id, (e) => e.type === 'run.waiting');
    expect(untilGate.map((e) => e.type)).toContain('step.finished');
    const waitingAtGate = await client.showRun(ack.run_id);
    expect(waitingAtGate.waiting).toMatchObject({ kind: 'gate', step_id: 'confirm' });

    const approved = await client.decideGate({ run_id: ack.run_id, decision: 'approve', step_id: 'confirm' });
    expect(approved.run_id).toBe(ack.run_id);
    const lastSeq = untilGate.at(-1)?.seq ?? 0;
    // Resuming the follow after the last entry seen: nothing is repeated.
    const untilInput = await followUntil(client, ack.run_id, (e) => e.type === 'run.waiting', lastSeq);
    expect(untilInput.every((e) => e.seq > lastSeq)).toBe(true);
    expect((await client.showRun(ack.run_id)).waiting).toMatchObject({ kind: 'input', step_id: 'details' });

    await client.submitInput({ run_id: ack.run_id, answers: { count: 2 } });
    const rest = await followUntil(client, ack.run_id, () => false);
    expect(rest.at(-1)?.type).toBe('run.succeeded');
    const text = rest
      .filter((e) => e.type === 'step.output')
      .map((e) => (e.data as { text: string }).text)
      .join('');
    expect(text).toContain('Sending the greeting 2 time(s).');

    const done = await client.showRun(ack.run_id);
    expect(done.state).toBe('succeeded');
    expect(done.steps.map((s) => s.state)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    const status = await client.status();
    expect(status.runs.succeeded).toBe(1);
    expect(status.project_root).toBe(root);
    expect((await client.metrics()).text).toMatch(/^charter_runs\{state="succeeded"\} 1$/m);
  });

  it('pages through runs.list with an async iterator, each run once, newest first', async () => {
    const root = await startedProject();
    const client = await connected(root);
    const submitted: string[] = [];
    for (let i = 0; i < 5; i++) submitted.push((await client.submitRun({ workflow_id: 'fail' })).run_id);
    const pages: string[][] = [];
    for await (const page of client.listRuns({ limit: 2 })) pages.push(page.runs.map((run) => run.run_id));
    expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual([...submitted].reverse());
  });

  it('answers errors as CharterError with the catalogue code, message and hint', async () => {
    const root = await startedProject();
    const client = await connected(root);
    const unknown = await rejection(client.showRun('r00000000000000000000000000'));
    expect(unknown.code).toBe('UNKNOWN_RUN');
    expect(unknown.hint).not.toBe('');
    const badWorkflow = await rejection(client.submitRun({ workflow_id: 'nope' }));
    expect(badWorkflow.code).toBe('UNKNOWN_WORKFLOW');
    expect(badWorkflow.message).toContain('greet');
    // The stream's error arrives from the iterator, at its first item.
    const logs = await rejection(followUntil(client, 'r00000000000000000000000000', () => true));
    expect(logs.code).toBe('UNKNOWN_RUN');

    const empty = realpathSync(makeProject());
    projects.push(empty);
    expect((await rejection(connect({ projectPath: empty }))).code).toBe('DAEMON_NOT_RUNNING');
    expect((await rejection(connect({ projectPath: join(empty, 'nowhere') }))).code).toBe('NOT_A_PROJECT');
  });

  it('an AbortSignal ends a call, an iterator and a connect with ABORTED', async () => {
    const root = await startedProject();
    const client = await connected(root);
    const pid = client.hello.pid;
    const idle = daemonFds(pid);

    const gone = new AbortController();
    gone.abort(new Error('no longer needed'));
    const early = await rejection(client.status({ signal: gone.signal }));
    expect(early.code).toBe('ABORTED');
    expect((await rejection(connect({ projectPath: root, signal: gone.signal }))).code).toBe('ABORTED');

    // A follow of a run parked at its gate never ends by itself: the signal ends it.
    const { run_id } = await client.submitRun({ workflow_id: 'greet', inputs: { name: 'Bo' } });
    await followUntil(client, run_id, (e) => e.type === 'run.waiting');
    const stop = new AbortController();
    const batches: number[] = [];
    const following = (async () => {
      for await (const batch of client.logs(run_id, { follow: true }, { signal: stop.signal })) {
        batches.push(batch.entries.length);
      }
    })();
    await waitUntil(() => batches.length > 0, 10_000, 'the first batch of the follow');
    expect(daemonFds(pid)).toBeGreaterThan(idle);
    stop.abort();
    expect((await rejection(following)).code).toBe('ABORTED');
    // Its connection is closed, so the daemon drops the stream.
    await waitUntil(() => daemonFds(pid) === idle, 10_000, 'the follow connection to close');
    // The client goes on working.
    expect((await client.showRun(run_id)).state).toBe('waiting');
  });

  it('leaving a watch early closes its connection; the shared one reopens after the daemon closed it', async () => {
    const root = await startedProject('name: client-e2e\ndaemon:\n  control_idle_timeout_seconds: 0.2\n');
    const pid = readRuntimeFile(daemonPaths(root).runtimeFile)?.pid ?? 0;
    const base = daemonFds(pid);
    const client = await connected(root);
    expect(client.hello.pid).toBe(pid);
    // The daemon's idle timeout closes the shared connection.
    await waitUntil(() => daemonFds(pid) === base, 10_000, 'the idle connection to be closed');
    let updates = 0;
    for await (const update of client.watch({ recent: 5 })) {
      expect(update.reset).toBe(true);
      expect(daemonFds(pid)).toBe(base + 1);
      updates += 1;
      break;
    }
    expect(updates).toBe(1);
    await waitUntil(() => daemonFds(pid) === base, 10_000, 'the watch connection to close');
    // The shared connection was closed by the daemon's idle timeout: the next call opens another.
    expect((await client.status()).pid).toBe(pid);
    expect(client.hello.pid).toBe(pid);
  });

  it('examples/client/greet.mjs, a plain program importing charter-daemon/client, drives a run to success', async () => {
    const root = await startedProject();
    const example = await runNode(['examples/client/greet.mjs', '--project-path', root, '--count', '3']);
    expect(example.stderr).toBe('');
    expect(example.code).toBe(0);
    expect(example.stdout).toContain('waiting at gate "confirm": Send the greeting?');
    expect(example.stdout).toContain('  | Sending the greeting 3 time(s).');
    const runId = /run (r[0-9A-Z]{26}) succeeded/.exec(example.stdout)?.[1];
    expect(runId).toBeDefined();
    const client = await connected(root);
    const run = await client.showRun(runId ?? '');
    expect(run.state).toBe('succeeded');
    expect(run.answers).toEqual({ details: { count: 3 } });

    // Without a daemon it says so with the catalogue code, exit 2.
    await client.stop();
    await waitUntil(() => !isAlive(client.hello.pid), 15_000, 'the daemon to exit');
    const refused = await runNode(['examples/client/greet.mjs', '--project-path', root]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('DAEMON_NOT_RUNNING');
  });

  it('stop() drains the daemon, which exits', async () => {
    const root = await startedProject();
    const client = await connected(root);
    const pid = client.hello.pid;
    const result = await client.stop({ timeout_ms: 5_000 });
    expect(result.pid).toBe(pid);
    await waitUntil(() => !isAlive(pid), 15_000, 'the daemon to exit');
  });
});

function runNode(args: readonly string[]): Promise<CliResult> {
  return runProgram(process.execPath, args);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
