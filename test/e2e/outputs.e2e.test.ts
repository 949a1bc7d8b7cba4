/**
 * Step outputs end to end: the built CLI, a real daemon, real steps and the test gateway. `build`
 * writes outputs (one of them multi-line, one secret) to CHARTER_OUTPUT; the run waits at a gate
 * while the daemon is killed (-9) and started again; `publish` then sees them in its environment
 * and in its context file. The secret output is `***` wherever it is shown, never in clear under
 * `.charter/`, and masked when `publish` prints it. Declared outputs that a step does not satisfy
 * fail it with `invalid_outputs`, every problem listed.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import type { LogEntry, RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  recordingCli,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

const TOKEN = 'tok-outputs-GATEWAY-4411-zz';
const SECRET = 'out-S3cret-value-8812-klm';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const RELEASE_PLAN = `steps:
  - id: build
    run: |
      set -eu
      echo "file: $CHARTER_OUTPUT mode $(stat -c %a "$CHARTER_OUTPUT") size $(stat -c %s "$CHARTER_OUTPUT")"
      echo "version=1.2.3" >> "$CHARTER_OUTPUT"
      {
        echo "notes<<EOF"
        echo "line one"
        echo ""
        echo "line three = still notes"
        echo "EOF"
      } >> "$CHARTER_OUTPUT"
      printf 'token=%s\\n' "${SECRET}" >> "$CHARTER_OUTPUT"
    outputs:
      version: { type: string, required: true }
      notes: { type: string }
      token: { type: secret, required: true }
  - id: hold
    gate: { prompt: Publish? }
  - id: publish
    run: |
      set -eu
      echo "version: $CHARTER_STEP_BUILD_VERSION"
      printf '%s' "$CHARTER_STEP_BUILD_NOTES" > notes.txt
      [ "$(printf %s "$CHARTER_STEP_BUILD_TOKEN" | sha256sum | cut -d' ' -f1)" = "${sha256(SECRET)}" ] && echo TOKEN_OK
      echo "token: $CHARTER_STEP_BUILD_TOKEN"
      cp "$CHARTER_CONTEXT" context-copy.json
      echo "own file: $CHARTER_OUTPUT"
`;

const STRICT_PLAN = `steps:
  - id: build
    run: |
      printf 'count=many\\nextra=1\\nnot a pair\\n' >> "$CHARTER_OUTPUT"
    outputs:
      version: { type: string, required: true }
      count: { type: integer }
  - id: never
    run: echo never
`;

/** A step that plays with its output folder and file: none of it may cost the daemon anything. */
const HOSTILE_PLAN = `steps:
  - id: swap
    run: |
      set -eu
      d=$(dirname "$CHARTER_OUTPUT")
      mkdir -p keep && touch keep/sentinel
      rm -rf "$d" && ln -s "$PWD/keep" "$d"
  - id: fifo
    run: |
      set -eu
      rm -f "$CHARTER_OUTPUT" && mkfifo "$CHARTER_OUTPUT"
`;

/** A step that writes a secret output, then is cut off by a dead daemon before it ends. */
const CUT_PLAN = `steps:
  - id: mint
    run: |
      echo "token=$CHARTER_INPUT_SEED-minted" >> "$CHARTER_OUTPUT"
      sleep 60
    outputs:
      token: { type: secret, required: true }
`;

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function project(): string {
  const root = makeProject();
  cleanups.push(() => destroyProject(root));
  for (const [id, plan] of [
    ['release', RELEASE_PLAN],
    ['strict', STRICT_PLAN],
    ['hostile', HOSTILE_PLAN],
    ['cut', CUT_PLAN],
  ] as const) {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), plan);
  }
  return root;
}

/** Every CLI call of the test, so that their output can be searched for the secret at the end. */
const { calls, cli, show } = recordingCli({ CHARTER_GATEWAY_TOKEN: TOKEN });

function until(root: string, runId: string, check: (run: RunDetail) => boolean): Promise<RunDetail> {
  return pollUntil(() => show(root, runId), check, { timeoutMs: 20_000, what: `run ${runId}`, everyMs: 100 });
}

async function submit(root: string, workflowId: string): Promise<string> {
  const result = await cli(root, 'run', workflowId, '--json');
  expect(result.code, result.stderr).toBe(0);
  return parseJson<{ run_id: string }>(result.stdout).run_id;
}

/** Files under `dir` (recursively) whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stats = statSync(path);
    if (stats.isDirectory()) found.push(...filesContaining(path, needle));
    else if (stats.isFile() && readFileSync(path).includes(Buffer.from(needle))) found.push(path);
  }
  return found;
}

describe('step outputs', () => {
  it('the output file of a step cut off by a kill -9 is removed at the next start, secret and all', async () => {
    const root = project();
    writeFileSync(
      join(root, 'workflows', 'cut', 'manifest.yml'),
      'id: cut\nname: cut\ninputs:\n  seed: { type: secret, required: true }\n',
    );
    expect((await cli(root, 'start')).code).toBe(0);
    const result = await cli(root, 'run', 'cut', '--input', `seed=${SECRET}`, '--json');
    expect(result.code, result.stderr).toBe(0);
    const runId = parseJson<{ run_id: string }>(result.stdout).run_id;
    const outputsDir = join(root, '.charter', 'daemon', 'runs', runId, 'outputs');
    // The step has written its secret output and sleeps: the file holds it in clear.
    await pollUntil(
      () => filesContaining(join(root, '.charter'), SECRET),
      (files) => files.length > 0,
      { timeoutMs: 20_000, what: 'the secret output in the step file' },
    );
    for (const pid of daemonPids(root)) process.kill(pid, 'SIGKILL');
    await pollUntil(
      () => daemonPids(root),
      (pids) => pids.length === 0,
      {
        timeoutMs: 5000,
        what: 'the daemon to die',
      },
    );
    expect((await cli(root, 'start')).code).toBe(0);
    const run = await until(root, runId, (r) => r.finished_at !== null);
    expect(run.reason).toBe('interrupted');
    expect(existsSync(outputsDir)).toBe(false);
    expect(filesContaining(join(root, '.charter'), SECRET)).toEqual([]);
  });

  it('reach a step after a gate and a kill -9; a secret output is *** everywhere and masked', async () => {
    const peer = await GatewayPeer.start({ token: TOKEN, hbMs: 500 });
    cleanups.push(() => peer.stop());
    const root = project();
    const start = async () => {
      const started = await cli(root, 'start', '--gateway', peer.url);
      expect(started.code, started.stderr).toBe(0);
    };
    await start();
    const runId = await submit(root, 'release');
    const waiting = await until(root, runId, (r) => r.state === 'waiting');
    const build = waiting.steps[0];
    expect(build?.state).toBe('succeeded');
    expect(build?.outputs).toEqual({
      version: '1.2.3',
      notes: 'line one\n\nline three = still notes',
      token: '***',
    });
    // The file was fresh (empty, 0600, private to the attempt) and is gone once read.
    const outputsDir = join(root, '.charter', 'daemon', 'runs', runId, 'outputs');
    expect(readdirSync(outputsDir)).toEqual([]);

    // The daemon dies while the run waits at the gate: the outputs live in the store.
    for (const pid of daemonPids(root)) process.kill(pid, 'SIGKILL');
    await pollUntil(
      () => daemonPids(root),
      (pids) => pids.length === 0,
      { timeoutMs: 5000, what: 'the daemon to die' },
    );
    expect(filesContaining(join(root, '.charter'), SECRET)).toEqual([]);
    await start();
    expect((await cli(root, 'resume', runId, '--approve')).code).toBe(0);
    const done = await until(root, runId, (r) => r.finished_at !== null);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    expect(done.steps[2]?.outputs).toEqual({});

    expect(readFileSync(join(root, 'notes.txt'), 'utf8')).toBe('line one\n\nline three = still notes');
    const context = parseJson<{ outputs: unknown; answers: unknown }>(
      readFileSync(join(root, 'context-copy.json'), 'utf8'),
    );
    expect(context.outputs).toEqual({
      build: { version: '1.2.3', notes: 'line one\n\nline three = still notes', token: '***' },
    });

    const logs = await cli(root, 'logs', runId);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain(`file: ${join(outputsDir, 'build.1')} mode 600 size 0`);
    expect(logs.stdout).toContain(`own file: ${join(outputsDir, 'publish.1')}`);
    expect(logs.stdout).toContain('version: 1.2.3');
    expect(logs.stdout).toContain('TOKEN_OK');
    expect(logs.stdout).toContain('token: ***');
    expect(logs.stdout).toMatch(
      /step\.finished build: succeeded \(exit code 0\) outputs: version="1\.2\.3", .*token="\*\*\*"/,
    );
    const logsJson = await cli(root, 'logs', runId, '--json');
    const finished = logsJson.stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => parseJson<LogEntry>(line))
      .find((entry) => entry.type === 'step.finished');
    expect(finished?.data).toMatchObject({ step_id: 'build', outputs: { version: '1.2.3', token: '***' } });

    const text = await cli(root, 'runs', 'show', runId);
    expect(text.stdout).toContain('outputs:\n');
    expect(text.stdout).toContain(
      '  build: version="1.2.3", notes="line one\\n\\nline three = still notes", token="***"',
    );

    await peer.waitFor(
      () => peer.events.some((e) => e.type === 'run.succeeded' && e.run_id === runId),
      10_000,
      'the run upstream',
    );
    const upstream = peer.events.find((e) => e.type === 'step.finished' && e.run_id === runId);
    expect(upstream?.data).toMatchObject({ outputs: { version: '1.2.3', token: '***' } });
    expect(JSON.stringify(peer.events).includes(SECRET)).toBe(false);
    for (const call of calls)
      expect(call.stdout.includes(SECRET) || call.stderr.includes(SECRET)).toBe(false);
    expect(filesContaining(join(root, '.charter'), SECRET)).toEqual([]);
    expect((await cli(root, 'stop')).code).toBe(0);
    expect(filesContaining(join(root, '.charter'), SECRET)).toEqual([]);
  }, 60_000);

  it('outputs that do not satisfy the declaration fail the step with invalid_outputs, listing every problem', async () => {
    const root = project();
    expect((await cli(root, 'start')).code).toBe(0);
    const runId = await submit(root, 'strict');
    const failed = await until(root, runId, (r) => r.finished_at !== null);
    expect(failed.state).toBe('failed');
    expect(failed.reason).toBe(
      'invalid_outputs: line 3: expected name=value or name<<DELIMITER; version: required; count: expected an integer, got "many"; extra: not a declared output of this step (declared: count, version)',
    );
    expect(failed.steps[0]).toMatchObject({
      state: 'failed',
      exit_code: 0,
      reason: failed.reason,
      outputs: {},
    });
    expect(failed.steps[1]?.state).toBe('pending');
    const text = await cli(root, 'runs', 'show', runId);
    expect(text.stdout).toContain('reason:       invalid_outputs: line 3: expected name=value');
    const logs = await cli(root, 'logs', runId);
    expect(logs.stdout).toContain('step.finished build: invalid_outputs (exit code 0)');
  }, 30_000);

  it('a step that replaces its output folder by a link, or its file by a FIFO, harms nothing and is told why', async () => {
    const root = project();
    expect((await cli(root, 'start')).code).toBe(0);
    const runId = await submit(root, 'hostile');
    const failed = await until(root, runId, (r) => r.finished_at !== null);
    // The link was removed, not followed: what it pointed at is still there.
    expect(readdirSync(join(root, 'keep'))).toEqual(['sentinel']);
    expect(failed.steps[0]).toMatchObject({ state: 'succeeded', outputs: {} });
    expect(failed.state).toBe('failed');
    expect(failed.reason).toBe(
      'invalid_outputs: CHARTER_OUTPUT was replaced by something that is not a file',
    );
    expect((await cli(root, 'status')).code).toBe(0);
  }, 30_000);
});
