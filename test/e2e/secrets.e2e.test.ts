/**
 * Secrets stay secret, end to end: the built CLI, a real daemon, real steps and the test gateway.
 * A workflow takes a secret input and a secret answer (from the CLI and from the gateway); its
 * steps check them, print them every way they can (plainly, on stderr, split across two writes,
 * across a 64 KiB chunk boundary, `env`), and use them again after a restart at a gate. None of
 * the secrets, nor the gateway token, may then be found in any file under `.charter/` (before and
 * after a clean stop), in any CLI output, or in any event the gateway received.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  recordingCli,
} from '../support/cli.js';

const TOKEN = 'tok-e2e-GATEWAY-5150-xyzzy';
const PASSWORD = 'Pa55-w0rd-e2e-7731-abc';
const CODE = 'c0de-answer-9921-def';
const GW_PASSWORD = 'gw-Pa55-w0rd-3377-qrs';
const GW_CODE = 'gw-c0de-answer-1299-tuv';
const SECRETS = [TOKEN, PASSWORD, CODE, GW_PASSWORD, GW_CODE];

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const MANIFEST = `id: vault
name: Vault
inputs:
  password: { type: secret, required: true }
  pw_hash: { type: string, required: true }
  code_hash: { type: string, required: true }
`;

/** Checks and prints the secrets every way a step can; `tag` names the step in its markers. */
function printingStep(tag: string): string {
  return `
      set -eu
      P="$CHARTER_INPUT_PASSWORD"; C="$CHARTER_STEP_ASK_CODE"
      [ "$(printf %s "$P" | sha256sum | cut -d' ' -f1)" = "$CHARTER_INPUT_PW_HASH" ] && echo "${tag}_PASSWORD_OK"
      [ "$(printf %s "$C" | sha256sum | cut -d' ' -f1)" = "$CHARTER_INPUT_CODE_HASH" ] && echo "${tag}_CODE_OK"
      if [ -z "\${CHARTER_GATEWAY_TOKEN:-}" ]; then echo "${tag}_NO_GATEWAY_TOKEN"; fi
      grep -q '"password": "\\*\\*\\*"' "$CHARTER_CONTEXT" && echo "${tag}_CONTEXT_MASKED"
      echo "plain: $P and $C"
      echo "stderr: $P" >&2
      half="\${P%????????}"; rest="\${P#"$half"}"
      printf '%s' "split: $half"; sleep 0.3; printf '%s\\n' "$rest"
      # A fresh 64 KiB output chunk that ends 5 characters into the code.
      sleep 0.3; head -c 65531 /dev/zero | tr '\\0' x; printf '%s\\n' "$C"
      env
      # The daemon's token obtained another way (its own environment): masked all the same.
      tr '\\0' '\\n' < /proc/$PPID/environ | grep '^CHARTER_GATEWAY_TOKEN=' || true
      echo "${tag}_DONE"`;
}

const PLAN = `steps:
  - id: ask
    input:
      prompt: The code?
      fields:
        code: { type: secret, required: true }
  - id: use
    run: |${printingStep('USE')}
  - id: hold
    gate: { prompt: Go on after the restart? }
  - id: again
    run: |${printingStep('AGAIN')}
`;

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function project(): string {
  const root = makeProject();
  cleanups.push(() => destroyProject(root));
  mkdirSync(join(root, 'workflows', 'vault'), { recursive: true });
  writeFileSync(join(root, 'workflows', 'vault', 'manifest.yml'), MANIFEST);
  writeFileSync(join(root, 'workflows', 'vault', 'plan.yml'), PLAN);
  return root;
}

/** Every CLI call of the test, so that their output can be searched for the secret at the end. */
const { calls: outputs, cli, show } = recordingCli({ CHARTER_GATEWAY_TOKEN: TOKEN });

async function untilRun(root: string, runId: string, check: (run: RunDetail) => boolean): Promise<RunDetail> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const run = await show(root, runId);
    if (check(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} never got there: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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

function expectNowhereUnder(dir: string, when: string): void {
  for (const secret of SECRETS) expect(filesContaining(dir, secret), `${when}: ${secret}`).toEqual([]);
}

describe('secrets', () => {
  it('never appear in the state directory, CLI output or gateway events; steps still get them, across a restart', async () => {
    const peer = await GatewayPeer.start({ token: TOKEN, hbMs: 500 });
    cleanups.push(() => peer.stop());
    const root = project();
    const start = async () => {
      const started = await cli(root, 'start', '--gateway', peer.url);
      expect(started.code, started.stderr).toBe(0);
      await peer.waitForConnection(5000);
    };
    await start();

    // One run from the CLI…
    const run = await cli(
      root,
      'run',
      'vault',
      '--input',
      `password=${PASSWORD}`,
      '--input',
      `pw_hash=${sha256(PASSWORD)}`,
      '--input',
      `code_hash=${sha256(CODE)}`,
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const cliRun = parseJson<{ run_id: string }>(run.stdout).run_id;
    await untilRun(root, cliRun, (r) => r.state === 'waiting');
    const answered = await cli(root, 'submit-input', cliRun, '--answers', JSON.stringify({ code: CODE }));
    expect(answered.code, answered.stderr).toBe(0);

    // …and one from the gateway.
    peer.sendCommand({
      cmd_id: 'start-1',
      kind: 'run.start',
      args: {
        workflow_id: 'vault',
        inputs: { password: GW_PASSWORD, pw_hash: sha256(GW_PASSWORD), code_hash: sha256(GW_CODE) },
      },
    });
    const startResult = () =>
      peer.events.find(
        (e) => e.type === 'command.result' && (e.data as { cmd_id: string }).cmd_id === 'start-1',
      )?.data as { status: string; run_id?: string } | undefined;
    await peer.waitFor(() => startResult() !== undefined, 10_000, 'the run.start result');
    expect(startResult()?.status, JSON.stringify(startResult())).toBe('applied');
    const gwRun = startResult()?.run_id as string;
    await untilRun(root, gwRun, (r) => r.state === 'waiting');
    expect(gwRun).toBeTruthy();
    peer.sendCommand({
      cmd_id: 'answer-1',
      kind: 'input.submit',
      run_id: gwRun,
      args: { step_id: 'ask', answers: { code: GW_CODE } },
    });

    await peer.waitFor(
      () =>
        peer.events.some(
          (e) => e.type === 'command.result' && (e.data as { cmd_id: string }).cmd_id === 'answer-1',
        ),
      10_000,
      'the input.submit result',
    );
    const answerResult = peer.events.find(
      (e) => e.type === 'command.result' && (e.data as { cmd_id: string }).cmd_id === 'answer-1',
    )?.data;
    expect(answerResult, JSON.stringify(answerResult)).toMatchObject({ status: 'applied' });
    for (const id of [cliRun, gwRun]) {
      const waiting = await untilRun(root, id, (r) => r.state === 'waiting' && r.current_step === 'hold');
      expect(waiting.inputs.password).toBe('***');
      expect(waiting.answers.ask).toEqual({ code: '***' });
    }
    // While the daemon runs (WAL and all): nothing in clear.
    expectNowhereUnder(join(root, '.charter'), 'while running');

    // A restart with both runs parked at the gate.
    const stopped = await cli(root, 'stop');
    expect(stopped.code, stopped.stderr).toBe(0);
    expectNowhereUnder(join(root, '.charter'), 'after a clean stop');
    await start();
    expect((await cli(root, 'resume', cliRun, '--approve')).code).toBe(0);
    peer.sendCommand({
      cmd_id: 'go-1',
      kind: 'gate.decide',
      run_id: gwRun,
      args: { step_id: 'hold', decision: 'approve' },
    });

    for (const id of [cliRun, gwRun]) {
      const done = await untilRun(root, id, (r) => r.finished_at !== null);
      expect(done.state, JSON.stringify(done)).toBe('succeeded');
      const logs = await cli(root, 'logs', id);
      expect(logs.code, logs.stderr).toBe(0);
      for (const tag of ['USE', 'AGAIN']) {
        for (const marker of ['PASSWORD_OK', 'CODE_OK', 'NO_GATEWAY_TOKEN', 'CONTEXT_MASKED', 'DONE']) {
          expect(logs.stdout, `${tag}_${marker}`).toContain(`${tag}_${marker}`);
        }
      }
      expect(logs.stdout).toContain('plain: *** and ***');
      expect(logs.stderr).toContain('stderr: ***');
      expect(logs.stdout).toContain('split: ***');
      expect(logs.stdout).toContain('CHARTER_GATEWAY_TOKEN=***');
      await cli(root, 'logs', id, '--json');
    }
    await cli(root, 'runs', 'list', '--json');
    await cli(root, 'status', '--json');
    await peer.waitFor(
      () => peer.events.filter((e) => e.type === 'run.succeeded').length === 2,
      10_000,
      'both runs upstream',
    );

    const upstream = JSON.stringify(peer.events);
    for (const secret of SECRETS) expect(upstream.includes(secret), `gateway events: ${secret}`).toBe(false);
    expect(peer.events.find((e) => e.type === 'run.queued' && e.run_id === gwRun)?.data).toMatchObject({
      inputs: { password: '***' },
    });
    expect(peer.events.find((e) => e.type === 'input.submitted' && e.run_id === cliRun)?.data).toMatchObject({
      answers: { code: '***' },
    });
    for (const output of outputs) {
      for (const secret of SECRETS) {
        expect(
          output.stdout.includes(secret) || output.stderr.includes(secret),
          `CLI output: ${secret}`,
        ).toBe(false);
      }
    }
    expectNowhereUnder(join(root, '.charter'), 'while running, after the restart');
    expect((await cli(root, 'stop')).code).toBe(0);
    expectNowhereUnder(join(root, '.charter'), 'after the last stop');
    const keyFile = join(root, '.charter', 'daemon', 'secrets.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  }, 90_000);

  it('a run whose key file is lost fails with a clear reason; the daemon serves on', async () => {
    const root = project();
    expect((await cli(root, 'start')).code).toBe(0);
    const run = await cli(
      root,
      'run',
      'vault',
      '--input',
      `password=${PASSWORD}`,
      '--input',
      'pw_hash=x',
      '--input',
      'code_hash=y',
      '--json',
    );
    const runId = parseJson<{ run_id: string }>(run.stdout).run_id;
    await untilRun(root, runId, (r) => r.state === 'waiting');
    expect((await cli(root, 'submit-input', runId, '--answers', JSON.stringify({ code: CODE }))).code).toBe(
      0,
    );
    await untilRun(root, runId, (r) => r.state === 'waiting' && r.current_step === 'hold');
    expect((await cli(root, 'stop')).code).toBe(0);
    rmSync(join(root, '.charter', 'daemon', 'secrets.key'));
    expect((await cli(root, 'start')).code).toBe(0);
    expect((await cli(root, 'resume', runId, '--approve')).code).toBe(0);
    const failed = await untilRun(root, runId, (r) => r.finished_at !== null);
    expect(failed.state).toBe('failed');
    expect(failed.reason).toMatch(/secrets unavailable: the key file .*secrets\.key is missing/);
    expect(daemonPids(root)).toHaveLength(1);
    expect((await cli(root, 'status', '--json')).code).toBe(0);
  }, 60_000);
});
