import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/cli/process.js';
import { processGroupAlive } from '../../src/workflow/orphans.js';
import { buildStepEnv, type StepEnvInput, venvPath, writeContextFile } from '../../src/workflow/step-env.js';
import {
  type OutputChunk,
  type StepOutcome,
  type StepProcess,
  type StepProcessOptions,
  startStepProcess,
} from '../../src/workflow/step-process.js';
import { waitUntil } from '../support/wait.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'charter-step-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('buildStepEnv', () => {
  function input(projectRoot: string, overrides: Partial<StepEnvInput> = {}): StepEnvInput {
    return {
      projectRoot,
      runId: 'r-123',
      workflowId: 'wf.deploy',
      inputs: { 'my-input': 'hello', count: 3, dry_run: false },
      answers: { 'ask-name': { 'first name': 'Ada', ok: true, age: 36 } },
      stepEnv: {},
      contextFile: '/tmp/ctx.json',
      baseEnv: { PATH: '/usr/bin:/bin', HOME: '/home/x', PYTHONHOME: '/opt/py' },
      ...overrides,
    };
  }

  it('sets the run identity, inputs, earlier answers and the context file on top of the base env', () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const env = buildStepEnv(input(root));
    expect(env).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/x',
      PYTHONHOME: '/opt/py',
      CHARTER_RUN_ID: 'r-123',
      CHARTER_WORKFLOW_ID: 'wf.deploy',
      CHARTER_PROJECT_ROOT: root,
      CHARTER_INPUT_MY_INPUT: 'hello',
      CHARTER_INPUT_COUNT: '3',
      CHARTER_INPUT_DRY_RUN: 'false',
      CHARTER_STEP_ASK_NAME_FIRST_NAME: 'Ada',
      CHARTER_STEP_ASK_NAME_OK: 'true',
      CHARTER_STEP_ASK_NAME_AGE: '36',
      CHARTER_CONTEXT: '/tmp/ctx.json',
    });
  });

  it("adds earlier steps' outputs as CHARTER_STEP_ variables and the step's own CHARTER_OUTPUT", () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const env = buildStepEnv(
      input(root, {
        outputs: { build: { version: '1.2.3', count: 2, notes: 'a\nb' } },
        outputFile: '/tmp/outputs/publish.1',
      }),
    );
    expect(env).toMatchObject({
      CHARTER_STEP_BUILD_VERSION: '1.2.3',
      CHARTER_STEP_BUILD_COUNT: '2',
      CHARTER_STEP_BUILD_NOTES: 'a\nb',
      CHARTER_STEP_ASK_NAME_AGE: '36',
      CHARTER_OUTPUT: '/tmp/outputs/publish.1',
    });
  });

  it('mangles names: upper case, every character outside [A-Z0-9] becomes _', () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const env = buildStepEnv(
      input(root, { inputs: { 'a.b-c d/é9': 'x' }, answers: { 'step.one': { 'x-y': 1 } } }),
    );
    expect(env.CHARTER_INPUT_A_B_C_D__9).toBe('x');
    expect(env.CHARTER_STEP_STEP_ONE_X_Y).toBe('1');
  });

  it("applies the step's own env last, over base and CHARTER_ variables", () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const env = buildStepEnv(
      input(root, { stepEnv: { HOME: '/elsewhere', CHARTER_INPUT_COUNT: '99', EXTRA: 'yes' } }),
    );
    expect(env.HOME).toBe('/elsewhere');
    expect(env.CHARTER_INPUT_COUNT).toBe('99');
    expect(env.EXTRA).toBe('yes');
  });

  it('does not modify baseEnv', () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const baseEnv = { PATH: '/bin' };
    buildStepEnv(input(root, { baseEnv }));
    expect(baseEnv).toEqual({ PATH: '/bin' });
  });

  it('puts the project venv first on PATH only when .charter/.venv/bin/python exists', () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const venv = join(root, '.charter', '.venv');
    mkdirSync(join(venv, 'bin'), { recursive: true });

    // bin/ without python: no venv
    expect(venvPath(root)).toBeNull();
    let env = buildStepEnv(input(root));
    expect(env.PATH).toBe('/usr/bin:/bin');
    expect(env.VIRTUAL_ENV).toBeUndefined();
    expect(env.PYTHONHOME).toBe('/opt/py');

    writeFileSync(join(venv, 'bin', 'python'), '#!/bin/sh\necho fake-python "$@"\n');
    chmodSync(join(venv, 'bin', 'python'), 0o755);
    expect(venvPath(root)).toBe(venv);
    env = buildStepEnv(input(root));
    expect(env.PATH).toBe(`${join(venv, 'bin')}:/usr/bin:/bin`);
    expect(env.VIRTUAL_ENV).toBe(venv);
    expect('PYTHONHOME' in env).toBe(false);

    env = buildStepEnv(input(root, { baseEnv: {} }));
    expect(env.PATH).toBe(join(venv, 'bin'));
  });

  it('lets a step run the venv python by name', async () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const bin = join(root, '.charter', '.venv', 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'python'), '#!/bin/sh\necho "fake-python $VIRTUAL_ENV"\n');
    chmodSync(join(bin, 'python'), 0o755);
    const env = buildStepEnv(input(root, { baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }));
    const chunks: OutputChunk[] = [];
    const step = startStepProcess({
      command: 'python',
      cwd: root,
      env,
      timeoutMs: 10_000,
      killGraceMs: 1_000,
      onOutput: (chunk) => chunks.push(chunk),
    });
    expect(await step.done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(chunks.map((c) => c.text).join('')).toBe(`fake-python ${join(root, '.charter', '.venv')}\n`);
  });

  it('writes the context file as JSON with mode 0600, replacing an earlier one', () => {
    const path = join(mkdtempSync(join(tmp, 'ctx-')), 'context.json');
    writeFileSync(path, 'old', { mode: 0o644 });
    const context = {
      run_id: 'r-1',
      workflow_id: 'wf',
      inputs: { a: 'b', n: 2 },
      answers: { s1: { ok: true } },
    };
    writeContextFile(path, context);
    // No outputs given: an empty `outputs`, so a step can always read it.
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ ...context, outputs: {} });
    const withOutputs = { ...context, outputs: { build: { version: '1.2.3', count: 2 } } };
    writeContextFile(path, withOutputs);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(withOutputs);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const leftovers = readdirSync(join(path, '..')).filter((name) => name !== 'context.json');
    expect(leftovers).toEqual([]);
  });
});

// A regression that hangs a step fails in 10 s, and afterEach still kills its group.
describe('startStepProcess', { timeout: 10_000 }, () => {
  const started: { step: StepProcess; settled: boolean }[] = [];

  afterEach(() => {
    // Whatever a failed test left behind: kill its group (only while its step is not settled,
    // so a reused group id is never hit).
    for (const entry of started.splice(0)) {
      if (!entry.settled && entry.step.pid !== undefined) {
        try {
          process.kill(-entry.step.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  function run(command: string, overrides: Partial<StepProcessOptions> = {}) {
    const chunks: OutputChunk[] = [];
    const step = startStepProcess({
      command,
      cwd: tmp,
      env: process.env,
      timeoutMs: 15_000,
      killGraceMs: 2_000,
      onOutput: (chunk) => chunks.push(chunk),
      ...overrides,
    });
    const entry = { step, settled: false };
    started.push(entry);
    const done = step.done.then((outcome) => {
      entry.settled = true;
      return outcome;
    });
    const text = (stream: OutputChunk['stream']) =>
      chunks
        .filter((c) => c.stream === stream)
        .map((c) => c.text)
        .join('');
    return { step, chunks, done, text };
  }

  const waitFor = (condition: () => boolean, limitMs = 5_000) =>
    waitUntil(condition, limitMs, 'the condition');

  function expectGroupGone(pgid: number | undefined): void {
    expect(pgid).toBeTypeOf('number');
    expect(processGroupAlive(pgid as number)).toBe(false);
  }

  it('runs a command to exit 0 with its output in order', async () => {
    const { step, done, text } = run('echo one; echo two; printf three');
    expect(step.pid).toBeTypeOf('number');
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout')).toBe('one\ntwo\nthree');
    expect(text('stderr')).toBe('');
    expectGroupGone(step.pid);
  });

  it('reports a non-zero exit code and keeps stderr separate from stdout', async () => {
    const { done, text } = run('echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3');
    expect(await done).toEqual({ kind: 'exited', exitCode: 3 });
    expect(text('stdout')).toBe('out1\nout2\n');
    expect(text('stderr')).toBe('err1\nerr2\n');
  });

  it('coalesces 1 MiB written in 16384 small writes into few chunks of at most 64 KiB', async () => {
    const lines = 16_384; // 64 bytes each
    const { done, chunks, text } = run(
      `i=0; while [ $i -lt ${lines} ]; do printf '%063d\\n' $i; i=$((i+1)); done`,
    );
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    const sizes = chunks.map((c) => Buffer.byteLength(c.text));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(lines * 64);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(chunks.length).toBeGreaterThanOrEqual(16);
    expect(chunks.length).toBeLessThan(200);
    const out = text('stdout').split('\n');
    expect(out[0]).toBe('0'.repeat(63));
    expect(out[lines - 1]).toBe(String(lines - 1).padStart(63, '0'));
  });

  it('reads at most maxBytesPerSecond: the writer is slowed down, and nothing is lost', async () => {
    // 512 KiB at 256 KiB/s: at least ~1 s of pauses in which the writer waits on its pipe.
    const started = Date.now();
    const { done, text } = run(`head -c 524288 /dev/zero | tr '\\0' 'x'`, {
      output: { maxBytesPerSecond: 256 * 1024 },
    });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout')).toBe('x'.repeat(524_288));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('never splits a multi-byte character across chunks, whatever the chunk size', async () => {
    const { done, chunks, text } = run(`i=0; while [ $i -lt 2000 ]; do printf 'a€b😀'; i=$((i+1)); done`, {
      output: { maxChunkBytes: 7, flushMs: 1_000 },
    });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout')).toBe('a€b😀'.repeat(2000));
    for (const chunk of chunks) {
      expect(Buffer.byteLength(chunk.text)).toBeLessThanOrEqual(7);
      expect(chunk.text).not.toContain('\ufffd');
    }
  });

  it('emits one truncation marker after maxBytesPerStep, drains the rest and completes', async () => {
    // 1 MB, far more than a pipe holds: the writer would block if the pipe was not drained.
    const { done, chunks } = run("head -c 1000000 /dev/zero | tr '\\000' a; echo late >&2; exit 0", {
      output: { maxBytesPerStep: 1000 },
    });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    const markers = chunks.filter((c) => c.truncated);
    expect(markers).toEqual([
      { stream: 'stdout', text: '[output truncated after 1000 bytes]\n', truncated: true },
    ]);
    const last = chunks[chunks.length - 1];
    expect(last?.truncated).toBe(true);
    const kept = chunks.filter((c) => !c.truncated).map((c) => c.text);
    expect(kept.join('')).toBe('a'.repeat(1000));
  });

  it('delivers a UTF-8 character whose bytes were written apart intact', async () => {
    // dash's printf has no \x escapes: \342\202\254 is € (e2 82 ac).
    const { done, chunks, text } = run("printf '\\342\\202'; sleep 0.2; printf '\\254'", {
      output: { flushMs: 10 },
    });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout')).toBe('€');
    for (const chunk of chunks) expect(chunk.text).not.toContain('\ufffd');
  });

  it('kills the group at the timeout: timed_out, nothing left behind', async () => {
    const started = Date.now();
    const { step, done } = run('sleep 30 & sleep 30', { timeoutMs: 200, killGraceMs: 2_000 });
    expect(await done).toEqual({ kind: 'timed_out', timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expectGroupGone(step.pid);
  });

  it('SIGKILLs a step that ignores SIGTERM after killGraceMs (timeout)', async () => {
    const started = Date.now();
    const { step, done } = run("trap '' TERM; sleep 30", { timeoutMs: 200, killGraceMs: 300 });
    expect(await done).toEqual({ kind: 'timed_out', timeoutMs: 200 });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(480);
    expect(elapsed).toBeLessThan(3_000);
    expectGroupGone(step.pid);
  });

  it('SIGKILLs a step that ignores SIGTERM after killGraceMs (cancel)', async () => {
    const { step, done, text } = run("trap '' TERM; echo ready; sleep 30", { killGraceMs: 300 });
    await waitFor(() => text('stdout') === 'ready\n');
    const cancelled = Date.now();
    step.cancel('stop');
    expect(await done).toEqual({ kind: 'cancelled', reason: 'stop' });
    expect(Date.now() - cancelled).toBeGreaterThanOrEqual(280);
    expectGroupGone(step.pid);
  });

  it('cancel during a run: cancelled, and background children are gone too', async () => {
    const { step, done, text } = run('sleep 30 & echo $!; sleep 30 & echo $!; wait');
    await waitFor(() => text('stdout').split('\n').length === 3);
    const children = text('stdout').trim().split('\n').map(Number);
    expect(children).toHaveLength(2);
    for (const pid of children) expect(isProcessAlive(pid)).toBe(true);

    step.cancel('user asked');
    step.cancel('second reason is ignored');
    expect(await done).toEqual({ kind: 'cancelled', reason: 'user asked' });
    for (const pid of children) expect(isProcessAlive(pid)).toBe(false);
    expectGroupGone(step.pid);
  });

  it('kills what a step leaves running in the background when its shell exits', async () => {
    const started = Date.now();
    const { step, done, text } = run('sleep 30 & echo $!');
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(Date.now() - started).toBeLessThan(3_000);
    const child = Number(text('stdout').trim());
    expect(child).toBeGreaterThan(0);
    expect(isProcessAlive(child)).toBe(false);
    expectGroupGone(step.pid);
  });

  it('cancel after exit is a no-op', async () => {
    const { step, done } = run('exit 0');
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    step.cancel('too late');
    expect(await step.done).toEqual({ kind: 'exited', exitCode: 0 });
  });

  it('reports a shell killed by someone else as signalled', async () => {
    const { step, done, text } = run('echo ready; sleep 30');
    await waitFor(() => text('stdout') === 'ready\n');
    process.kill(-(step.pid as number), 'SIGTERM');
    expect(await done).toEqual<StepOutcome>({ kind: 'signalled', signal: 'SIGTERM' });
  });

  it('a missing cwd is spawn_failed, not a throw', async () => {
    const missing = join(tmp, 'does-not-exist');
    const { step, done } = run('echo hi', { cwd: missing });
    const outcome = await done;
    expect(outcome.kind).toBe('spawn_failed');
    expect(outcome.kind === 'spawn_failed' && outcome.message).toContain(missing);
    expect(step.pid).toBeUndefined();
    step.cancel('no-op');
  });

  it('an env the OS refuses (NUL byte) is spawn_failed, not a throw', async () => {
    const { done } = run('echo hi', { env: { BAD: 'a\0b' } });
    expect((await done).kind).toBe('spawn_failed');
  });

  it('passes env variables to the command', async () => {
    const { done, text } = run('printf "%s|%s" "$CHARTER_RUN_ID" "$SPACED"', {
      env: { PATH: process.env.PATH, CHARTER_RUN_ID: 'r-env', SPACED: 'a b  c' },
    });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout')).toBe('r-env|a b  c');
  });

  it('runs in cwd', async () => {
    const dir = realpathSync(mkdtempSync(join(tmp, 'cwd-')));
    const { done, text } = run('pwd -P', { cwd: dir });
    expect(await done).toEqual({ kind: 'exited', exitCode: 0 });
    expect(text('stdout').trim()).toBe(dir);
  });

  it('leaves no timer running once done', async () => {
    // Every timer step-process.ts starts must have fired or been cleared when `done` resolves.
    const realSetTimeout = globalThis.setTimeout;
    const realClearTimeout = globalThis.clearTimeout;
    const open = new Set<unknown>();
    const patchedSet = (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const mine = new Error().stack?.includes('src/workflow/step-process') ?? false;
      const handle: unknown = realSetTimeout(
        (...a: unknown[]) => {
          open.delete(handle);
          callback(...a);
        },
        ms,
        ...args,
      );
      if (mine) open.add(handle);
      return handle;
    };
    const patchedClear = (handle?: Parameters<typeof clearTimeout>[0]) => {
      open.delete(handle);
      realClearTimeout(handle);
    };
    globalThis.setTimeout = patchedSet as unknown as typeof setTimeout;
    globalThis.clearTimeout = patchedClear as typeof clearTimeout;
    try {
      const { step, done } = run("trap '' TERM; sleep 30 & echo x; sleep 30", {
        timeoutMs: 100,
        killGraceMs: 200,
        output: { flushMs: 5_000 },
      });
      await new Promise((resolve) => realSetTimeout(resolve, 50));
      expect(open.size).toBeGreaterThanOrEqual(2); // the timeout and the pending flush at least
      expect((await done).kind).toBe('timed_out');
      expectGroupGone(step.pid);
      expect(open.size).toBe(0);
    } finally {
      globalThis.setTimeout = realSetTimeout;
      globalThis.clearTimeout = realClearTimeout;
    }
  });

  it('delivers every chunk before done resolves', async () => {
    const chunks: OutputChunk[] = [];
    let chunksAtDone = -1;
    const step = startStepProcess({
      command: 'printf start; sleep 0.1; printf end',
      cwd: tmp,
      env: process.env,
      timeoutMs: 10_000,
      killGraceMs: 1_000,
      onOutput: (chunk) => chunks.push(chunk),
      output: { flushMs: 5_000 },
    });
    await step.done.then(() => {
      chunksAtDone = chunks.length;
    });
    expect(chunksAtDone).toBe(chunks.length);
    expect(chunks.map((c) => c.text).join('')).toBe('startend');
  });
});
