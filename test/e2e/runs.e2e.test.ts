/**
 * The run commands of the built CLI against a real daemon, in temporary copies of the sample
 * project: a run driven to success through its gate and input step, a denied gate, a failing
 * step, a cancelled long step (and no process left behind), the errors a user meets, and a
 * `logs --follow` that ends by itself when the run does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunJson } from '../../commands/run.js';
import type { RunAck, RunDetail, RunsListResult } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  type CliResult,
  cliPath,
  destroyProjects,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
  waitUntil,
} from '../support/cli.js';
import { runProcesses } from '../support/processes.js';
import { pollUntil } from '../support/wait.js';

const RUN_ID = /^r[0-9A-HJKMNP-TV-Z]{26}$/;

const projects: string[] = [];
const children: ChildProcess[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  destroyProjects(projects);
});

/** A fresh copy of examples/hello (its workflows) with a running daemon. */
async function startedProject(): Promise<string> {
  const root = realpathSync(makeProject());
  projects.push(root);
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  const started = await runCli(['start', '--project-path', root]);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
  return root;
}

function cli(root: string, args: readonly string[], options?: { timeoutMs?: number }): Promise<CliResult> {
  return runCli([...args, '--project-path', root], options);
}

async function submit(root: string, workflow: string, args: readonly string[] = []): Promise<string> {
  const result = await cli(root, ['run', workflow, ...args, '--json']);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const ack = parseJson<RunJson>(result.stdout);
  expect(ack.run_id).toMatch(RUN_ID);
  expect(ack.state).toBe('queued');
  return ack.run_id;
}

async function show(root: string, runId: string): Promise<RunDetail> {
  const result = await cli(root, ['runs', 'show', runId, '--json']);
  expect(result.code).toBe(0);
  return parseJson<RunDetail>(result.stdout);
}

/** Polls `runs show --json` until `check` holds; bounded. */
async function showUntil(
  root: string,
  runId: string,
  check: (run: RunDetail) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<RunDetail> {
  return pollUntil(() => show(root, runId), check, { timeoutMs, what, everyMs: 50 });
}

const waitingAt = (stepId: string) => (run: RunDetail) =>
  run.state === 'waiting' && run.waiting?.step_id === stepId;

/** The error a --json command printed on stdout. */
function wireError(result: CliResult): { code: string; message: string; hint: string } {
  return parseJson<{ error: { code: string; message: string; hint: string } }>(result.stdout).error;
}

/** Asserts that the lines appear in `text` in this order. */
function expectInOrder(text: string, parts: readonly string[]): void {
  let from = 0;
  for (const part of parts) {
    const at = text.indexOf(part, from);
    expect(at, `"${part}" after position ${from} in:\n${text}`).toBeGreaterThanOrEqual(0);
    from = at + part.length;
  }
}

describe('charter-daemon run / runs / resume / submit-input / cancel / logs', () => {
  it('drives greet to success: gate approved, bad answers refused, good answers accepted', async () => {
    const root = await startedProject();
    const runId = await submit(root, 'greet', ['--input', 'name=Ana']);

    const atGate = await showUntil(root, runId, waitingAt('confirm'), 'the gate');
    expect(atGate.waiting).toMatchObject({ kind: 'gate', step_id: 'confirm', prompt: 'Send the greeting?' });
    expect(atGate.inputs).toEqual({ name: 'Ana', shout: false });
    const gateText = await cli(root, ['runs', 'show', runId]);
    expect(gateText.code).toBe(0);
    expect(gateText.stdout).toContain('Send the greeting?');
    expect(gateText.stdout).toContain(`charter-daemon resume ${runId} --approve`);

    const approved = await cli(root, ['resume', runId, '--approve', '--json']);
    expect(approved.code).toBe(0);
    expect(parseJson<RunAck>(approved.stdout)).toEqual({ run_id: runId, state: 'queued' });

    const atInput = await showUntil(root, runId, waitingAt('details'), 'the input step');
    expect(atInput.waiting).toMatchObject({ kind: 'input', prompt: 'Anything to add?' });
    expect(atInput.waiting?.fields?.count).toMatchObject({ type: 'integer', required: true });
    const inputText = await cli(root, ['runs', 'show', runId]);
    expect(inputText.stdout).toContain('Anything to add?');
    expect(inputText.stdout).toMatch(/count\s+integer\s+required\s+How many times to send it/);
    expect(inputText.stdout).toMatch(/note\s+string\s+optional\s+A line to send with the greeting/);
    expect(inputText.stdout).toContain(`charter-daemon submit-input ${runId} --answers '{"count":1`);

    const refused = await cli(root, ['submit-input', runId, '--answers', '{"note":"x"}']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('code: INVALID_ANSWERS');
    expect(refused.stderr).toContain('count: required');
    expect(await show(root, runId)).toMatchObject({ state: 'waiting', waiting: { step_id: 'details' } });

    const answered = await cli(root, ['submit-input', runId, '--answers', '{"count":2,"note":"hi"}']);
    expect(answered.stderr).toBe('');
    expect(answered.code).toBe(0);
    expect(answered.stdout).toContain(`run ${runId} answered: now queued`);

    const done = await showUntil(root, runId, (run) => run.state === 'succeeded', 'success');
    expect(done).toMatchObject({ reason: null, waiting: null, current_step: null });
    expect(done.finished_at).not.toBeNull();
    expect(done.answers).toEqual({ details: { count: 2, note: 'hi' } });
    expect(done.steps.map((step) => [step.id, step.state])).toEqual([
      ['compose', 'succeeded'],
      ['confirm', 'succeeded'],
      ['details', 'succeeded'],
      ['send', 'succeeded'],
    ]);

    const logs = await cli(root, ['logs', runId]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('Hello, Ana!\n');
    expectInOrder(logs.stdout, [
      'run.queued greet',
      'run.started greet (4 steps)',
      'step.started compose (attempt 1)',
      'Hello, Ana!',
      'step.finished compose: succeeded',
      'run.waiting at gate confirm',
      'gate.decided confirm: approve',
      'run.waiting at input details',
      'input.submitted details',
      'step.started send (attempt 1)',
      'Sending the greeting 2 time(s).\nNote: hi\n',
      'step.finished send: succeeded',
      'run.succeeded',
    ]);
    expect(logs.stdout).toMatch(/^\[\d\d:\d\d:\d\d\] step\.started compose \(attempt 1\)$/m);

    const ndjson = await cli(root, ['logs', runId, '--json']);
    const entries = ndjson.stdout
      .trimEnd()
      .split('\n')
      .map((line) => parseJson<{ type: string; run_seq: number }>(line));
    expect(entries.map((entry) => entry.run_seq)).toEqual(entries.map((_, index) => index + 1));
    expect(entries.at(-1)?.type).toBe('run.succeeded');

    const list = await cli(root, ['runs', 'list', '--json']);
    expect(list.code).toBe(0);
    const page = parseJson<RunsListResult>(list.stdout);
    expect(page.next_cursor).toBeNull();
    expect(page.runs).toEqual([
      expect.objectContaining({ run_id: runId, workflow_id: 'greet', state: 'succeeded' }),
    ]);
  });

  it('a denied gate fails the run with reason gate_denied', async () => {
    const root = await startedProject();
    const runId = await submit(root, 'greet', ['--inputs-json', '{"name":"Bo","shout":true}']);
    await showUntil(root, runId, waitingAt('confirm'), 'the gate');

    const denied = await cli(root, ['resume', runId, '--deny', '--comment', 'no']);
    expect(denied.stderr).toBe('');
    expect(denied.code).toBe(0);
    expect(denied.stdout).toContain(`run ${runId} denied: now failed`);

    const run = await showUntil(root, runId, (r) => r.state === 'failed', 'the run to fail');
    expect(run.reason).toBe('gate_denied');
    expect(run.steps.find((step) => step.id === 'confirm')).toMatchObject({
      state: 'failed',
      reason: 'denied',
    });
    const logs = await cli(root, ['logs', runId]);
    expect(logs.stdout).toContain('HELLO, BO!');
    expectInOrder(logs.stdout, ['gate.decided confirm: deny: "no"', 'run.failed: gate_denied']);
  });

  it('a failing step: run --wait exits 1 and the step keeps its exit code; runs list pages', async () => {
    const root = await startedProject();
    const waited = await cli(root, ['run', 'fail', '--wait']);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toContain('about to fail');
    const runId = /^run (r\S+) queued/.exec(waited.stdout)?.[1] ?? '';
    expect(runId).toMatch(RUN_ID);
    expectInOrder(waited.stdout, [
      'step.started explode (attempt 1)',
      'step.finished explode: failed (exit code 3)',
      'run.failed',
      `run ${runId} failed (reason: step_failed: exit code 3)`,
    ]);

    const run = await show(root, runId);
    expect(run.state).toBe('failed');
    expect(run.reason).toContain('exit code 3');
    expect(run.steps).toEqual([expect.objectContaining({ id: 'explode', state: 'failed', exit_code: 3 })]);

    // --wait --json: the final state, and the same exit code.
    const second = await cli(root, ['run', 'fail', '--wait', '--json']);
    expect(second.code).toBe(1);
    const ack = parseJson<RunJson>(second.stdout);
    expect(ack.state).toBe('failed');

    // Newest first, one per page, and the printed command gives the next page.
    const first = await cli(root, ['runs', 'list', '--limit', '1']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      new RegExp(`^RUN ID\\s+WORKFLOW\\s+STATE\\s+STEP\\s+CREATED\\n${ack.run_id}\\s+fail\\s+failed`),
    );
    const cursor = /next page: charter-daemon runs list --cursor (\S+) --limit 1/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const next = await cli(root, ['runs', 'list', '--limit', '1', '--cursor', cursor ?? '', '--json']);
    expect(parseJson<RunsListResult>(next.stdout)).toMatchObject({
      runs: [{ run_id: runId }],
      next_cursor: null,
    });
    const none = await cli(root, ['runs', 'list', '--state', 'succeeded']);
    expect(none.stdout).toBe(`no succeeded runs in ${root}\n`);
  });

  it('cancels a long step and leaves no process of the run behind', async () => {
    const root = await startedProject();
    const runId = await submit(root, 'slow');
    await showUntil(
      root,
      runId,
      (run) => run.state === 'running' && run.steps[0]?.state === 'running',
      'running',
    );
    await waitUntil(() => runProcesses(runId).length > 0, 5000, 'the step process');

    // Not waiting at a gate: resume is refused, and says what the run is doing.
    const notWaiting = await cli(root, ['resume', runId, '--approve']);
    expect(notWaiting.code).toBe(1);
    expect(notWaiting.stderr).toContain('code: RUN_NOT_WAITING');
    expect(notWaiting.stderr).toContain('running');

    const cancelled = await cli(root, ['cancel', runId, '--reason', 'test over', '--json']);
    expect(cancelled.code).toBe(0);
    // A run executing a step is cancelling until its processes are gone.
    expect(parseJson<RunAck>(cancelled.stdout).state).toBe('cancelling');

    const run = await showUntil(root, runId, (r) => r.state === 'cancelled', 'the run to be cancelled');
    expect(run.reason).toContain('test over');
    expect(run.steps[0]).toMatchObject({ state: 'cancelled' });
    await waitUntil(() => runProcesses(runId).length === 0, 5000, 'the run’s processes to be gone');

    const again = await cli(root, ['cancel', runId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('code: RUN_FINISHED');
  });

  it('reports errors specifically', async () => {
    const root = await startedProject();

    const unknownWorkflow = await cli(root, ['run', 'nope', '--json']);
    expect(unknownWorkflow.code).toBe(2);
    const workflowError = wireError(unknownWorkflow);
    expect(workflowError.code).toBe('UNKNOWN_WORKFLOW');
    expect(workflowError.message).toContain('greet');

    const unknownRun = await cli(root, ['runs', 'show', 'r01M895FFEVNRBYAD18R06K01NW']);
    expect(unknownRun.code).toBe(2);
    expect(unknownRun.stderr).toContain('code: UNKNOWN_RUN');
    expect(unknownRun.stderr).toContain('no run r01M895FFEVNRBYAD18R06K01NW');
    const notAnId = await cli(root, ['logs', 'bogus', '--json']);
    expect(notAnId.code).toBe(2);
    expect(wireError(notAnId)).toMatchObject({ code: 'UNKNOWN_RUN' });
    expect(wireError(notAnId).message).toContain('"bogus" is not a run id');

    const missing = await cli(root, ['run', 'greet']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('code: INVALID_INPUTS');
    expect(missing.stderr).toContain('name: required');

    const badSyntax = await cli(root, ['run', 'greet', '--input', 'name']);
    expect(badSyntax.code).toBe(2);
    expect(badSyntax.stderr).toContain('code: INVALID_FLAG');
    expect(badSyntax.stderr).toContain('--input "name"');
    const notObject = await cli(root, ['run', 'greet', '--inputs-json', '[1]']);
    expect(notObject.code).toBe(2);
    expect(notObject.stderr).toContain('--inputs-json');

    // A run waiting at a gate is not waiting for answers, and resume needs exactly one decision.
    const runId = await submit(root, 'greet', ['--input', 'name=Cy']);
    await showUntil(root, runId, waitingAt('confirm'), 'the gate');
    const answers = await cli(root, ['submit-input', runId, '--answers', '{"count":1}']);
    expect(answers.code).toBe(1);
    expect(answers.stderr).toContain('code: RUN_NOT_WAITING');
    const badAnswers = await cli(root, ['submit-input', runId, '--answers', '{"count":']);
    expect(badAnswers.code).toBe(2);
    expect(badAnswers.stderr).toContain('code: INVALID_FLAG');
    for (const flags of [[], ['--approve', '--deny']]) {
      const result = await cli(root, ['resume', runId, ...flags]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('code: INVALID_FLAG');
    }

    const stop = await runCli(['stop', '--project-path', root]);
    expect(stop.code).toBe(0);
    const commands = [
      ['run', 'greet', '--input', 'name=Ana'],
      ['runs', 'list'],
      ['runs', 'show', runId],
      ['resume', runId, '--approve'],
      ['submit-input', runId, '--answers', '{}'],
      ['cancel', runId],
      ['logs', runId, '--follow'],
    ];
    for (const args of commands) {
      const result = await cli(root, args);
      expect(result.code, args.join(' ')).toBe(3);
      expect(result.stderr).toContain('Error: no daemon is listening on');
      expect(result.stderr).toContain('code: DAEMON_NOT_RUNNING');
    }
    const json = await cli(root, ['runs', 'list', '--json']);
    expect(json.code).toBe(3);
    expect(wireError(json).code).toBe('DAEMON_NOT_RUNNING');
  });

  it('logs --follow streams a live run and ends by itself when it succeeds', async () => {
    const root = await startedProject();
    // run --wait returns (exit 0) when the run pauses, saying how to answer it.
    const waited = await cli(root, ['run', 'greet', '--input', 'name=Di', '--wait']);
    expect(waited.stderr).toBe('');
    expect(waited.code).toBe(0);
    const runId = /^run (r\S+) queued/.exec(waited.stdout)?.[1] ?? '';
    expect(runId).toMatch(RUN_ID);
    expectInOrder(waited.stdout, [
      'Hello, Di!',
      'run.waiting at gate confirm',
      `run ${runId} waiting at step "confirm"`,
      `charter-daemon resume ${runId} --approve --project-path ${root}`,
    ]);
    expect((await show(root, runId)).state).toBe('waiting');

    const child = spawn(process.execPath, [cliPath, 'logs', runId, '--follow', '--project-path', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

    await waitUntil(() => stdout.includes('run.waiting at gate confirm'), 5000, 'the history');
    expect(child.exitCode).toBeNull();
    expect((await cli(root, ['resume', runId, '--approve'])).code).toBe(0);
    await waitUntil(() => stdout.includes('run.waiting at input details'), 5000, 'the input step, live');
    expect(child.exitCode).toBeNull();
    expect((await cli(root, ['submit-input', runId, '--answers', '{"count":"3"}'])).code).toBe(0);

    const code = await Promise.race([
      exited,
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000)),
    ]);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expectInOrder(stdout, [
      'Hello, Di!',
      'gate.decided confirm: approve',
      'input.submitted details: count=3',
      'Sending the greeting 3 time(s).\nNote: (none)\n',
      'run.succeeded',
    ]);
    expect(stdout.trimEnd().split('\n').at(-1)).toMatch(/^\[\d\d:\d\d:\d\d\] run\.succeeded$/);
  });
});
