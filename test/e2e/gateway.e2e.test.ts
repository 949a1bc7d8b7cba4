/**
 * The real daemon and a real charter.v1 gateway peer on 127.0.0.1: events go up exactly once and
 * in order across gateway restarts and daemon crashes; commands come down and are applied once;
 * credentials, zombies and garbage are handled without losing anything or crashing.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import type { StatusJson } from '../../commands/status.js';
import { ControlConnection } from '../../src/client/connection.js';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import { daemonPaths } from '../../src/project/paths.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
  waitUntil,
} from '../support/cli.js';
import { pollUntil } from '../support/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(options: ConstructorParameters<typeof Object>[0] = {}): Promise<GatewayPeer> {
  const peer = await GatewayPeer.start({ token: 'tok-e2e-SECRET', hbMs: 500, ...(options as object) });
  cleanups.push(() => peer.stop());
  return peer;
}

function project(): string {
  const root = makeProject();
  cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
  cleanups.push(() => destroyProject(root));
  return root;
}

async function startDaemon(root: string, peer: GatewayPeer, token = 'tok-e2e-SECRET'): Promise<void> {
  const result = await runCli(['start', '--project-path', root, '--gateway', peer.url], {
    env: { CHARTER_GATEWAY_TOKEN: token },
  });
  expect(result.code, result.stderr).toBe(0);
}

async function status(root: string): Promise<Extract<StatusJson, { running: true }>> {
  const result = await runCli(['status', '--json', '--project-path', root]);
  if (result.code !== 0) throw new Error(`status failed (${result.code}): ${result.stdout} ${result.stderr}`);
  const json = parseJson<StatusJson>(result.stdout);
  if (!json.running) throw new Error('daemon not running');
  return json;
}

async function waitUntilState(root: string, state: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(
    async () => (await status(root)).gateway,
    (gateway) => gateway.state === state,
    { timeoutMs, what: `the link to be ${state}`, everyMs: 100 },
  );
}

async function waitForBacklogZero(root: string, timeoutMs = 15_000): Promise<void> {
  await pollUntil(
    async () => (await status(root)).gateway,
    (gateway) => gateway.state === 'authed' && gateway.backlog === 0,
    { timeoutMs, what: 'the backlog to drain', everyMs: 100 },
  );
}

function expectExactlyOnceInOrder(peer: GatewayPeer): void {
  const seqs = peer.events.map((event) => event.seq);
  expect(seqs).toEqual(seqs.map((_, index) => index + 1));
  expect(peer.runSeqViolations()).toEqual([]);
}

describe('gateway link (charter.v1)', () => {
  it('authenticates, ships the lifecycle and run events in order, and reports the link in status', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    await waitUntil(
      () => peer.events.some((e) => e.type === 'daemon.started'),
      5000,
      'daemon.started upstream',
    );

    const run = await runCli(['run', 'greet', '--input', 'name=Ana', '--json', '--project-path', root]);
    expect(run.code, run.stderr).toBe(0);
    const { run_id: runId } = parseJson<{ run_id: string }>(run.stdout);
    await peer.waitFor(
      () => peer.events.some((e) => e.run_id === runId && e.type === 'run.waiting'),
      5000,
      'run.waiting',
    );
    expectExactlyOnceInOrder(peer);

    const current = await status(root);
    expect(current.gateway).toMatchObject({ state: 'authed', url: peer.url, backlog: 0 });
    expect(current.gateway.conn_id).toBeTruthy();
  });

  it('replays everything after gateway restarts, exactly once and in order', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    const runIds: string[] = [];
    for (let restart = 0; restart < 5; restart++) {
      const run = await runCli([
        'run',
        'greet',
        '--input',
        `name=R${restart}`,
        '--json',
        '--project-path',
        root,
      ]);
      runIds.push(parseJson<{ run_id: string }>(run.stdout).run_id);
      await peer.restart();
    }
    await peer.waitFor(
      () => runIds.every((id) => peer.events.some((e) => e.run_id === id && e.type === 'run.waiting')),
      15_000,
      'every run to reach the gateway',
    );
    expectExactlyOnceInOrder(peer);
    expect(peer.protocolErrors).toEqual([]);
  });

  it('20 gateway restarts while runs emit 10,000 events: every seq once, in order, runs in run_seq order', async () => {
    const peer = await gateway();
    const root = project();
    mkdirSync(join(root, 'workflows/park'), { recursive: true });
    writeFileSync(join(root, 'workflows/park/manifest.yml'), 'id: park\nname: Park\n');
    writeFileSync(
      join(root, 'workflows/park/plan.yml'),
      'steps:\n  - id: hold\n    gate: { prompt: Hold }\n',
    );
    writeFileSync(join(root, 'charter.yml'), 'name: e2e\ndaemon:\n  max_queued_runs: 10000\n');
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    const connection = await ControlConnection.open({
      socketPath: daemonPaths(root).socketPath,
      clientVersion: 'test',
    });
    cleanups.push(() => connection.close());

    // A gateway deploy drains first (4013: reconnect at once); every fifth restart is a crash.
    let restarts = 0;
    const restarter = (async () => {
      while (restarts < 20) {
        await peer.waitForConnection(30_000);
        await new Promise((r) => setTimeout(r, 100));
        if (restarts % 5 !== 4) peer.close(4013, 'deploying');
        await peer.restart();
        restarts += 1;
      }
    })();
    // 5,000 runs × (run.queued + run.waiting) = 10,000 run events.
    for (let batch = 0; batch < 25; batch++) {
      await Promise.all(
        Array.from({ length: 200 }, () =>
          connection.request('run.submit', { workflow_id: 'park', inputs: {} }, z.unknown(), {
            timeoutMs: 30_000,
          }),
        ),
      );
    }
    await restarter;
    expect(restarts).toBe(20);
    await waitForBacklogZero(root, 60_000);
    const runEvents = peer.events.filter((e) => e.run_id !== null);
    expect(runEvents.length).toBeGreaterThanOrEqual(10_000);
    expectExactlyOnceInOrder(peer);
    expect(peer.protocolErrors).toEqual([]);
  }, 120_000);

  it('wrong token: rejected, and the token appears in no log file', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer, 'tok-WRONG-should-never-be-logged');
    await waitUntilState(root, 'rejected', 5000);
    const current = await status(root);
    expect(JSON.stringify(current)).not.toContain('tok-WRONG');
    expect(current.gateway.last_error).toContain('401');
    const stateDir = join(root, '.charter/daemon');
    for (const file of readdirSync(stateDir).filter((f) => /^daemon\.(log|out)/.test(f))) {
      expect(readFileSync(join(stateDir, file), 'utf8'), file).not.toContain('tok-WRONG');
    }
  });

  it('rejected recovers at once when the token file changes (no wait for the 30 s retry)', async () => {
    const peer = await gateway();
    const root = project();
    const tokenFile = join(root, 'gateway.token');
    writeFileSync(tokenFile, 'tok-stale\n', { mode: 0o600 });
    const started = await runCli([
      'start',
      '--project-path',
      root,
      '--gateway',
      peer.url,
      '--gateway-token-file',
      tokenFile,
    ]);
    expect(started.code, started.stderr).toBe(0);
    await waitUntilState(root, 'rejected');
    writeFileSync(tokenFile, 'tok-e2e-SECRET\n');
    // Well inside the rejected state's 30 s retry: only the token change can have brought it.
    await peer.waitForConnection(10_000);
    expect((await status(root)).gateway.state).toBe('authed');
    for (const file of readdirSync(join(root, '.charter/daemon')).filter((f) =>
      /^daemon\.(log|out)/.test(f),
    )) {
      expect(readFileSync(join(root, '.charter/daemon', file), 'utf8'), file).not.toContain('tok-e2e-SECRET');
    }
  });

  it('kill -9 mid-stream: nothing the daemon stored is lost', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    peer.stopAcking();
    for (let i = 0; i < 5; i++)
      await runCli(['run', 'greet', '--input', `name=K${i}`, '--project-path', root]);
    const [pid] = daemonPids(root);
    process.kill(pid ?? 0, 'SIGKILL');
    await waitUntil(() => daemonPids(root).length === 0, 5000, 'the daemon to die');
    peer.resumeAcking();
    await startDaemon(root, peer);
    await peer.waitFor(
      () => peer.events.filter((e) => e.type === 'daemon.started').length === 2,
      10_000,
      'the second start upstream',
    );
    // Every event of the store is at the gateway, once, in order.
    await waitForBacklogZero(root);
    expectExactlyOnceInOrder(peer);
    const runsQueued = peer.events.filter((e) => e.type === 'run.queued').length;
    expect(runsQueued).toBe(5);
  });

  it('a zombie gateway is detected and the link reconnects', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    const before = peer.connections.length;
    const zombieSince = Date.now();
    peer.zombie(true);
    const logPath = join(root, '.charter/daemon/daemon.log');
    const timeoutLine = () =>
      readFileSync(logPath, 'utf8')
        .split('\n')
        .find(
          (line) =>
            line.includes('heartbeat timeout') &&
            Date.parse((JSON.parse(line) as { time: string }).time) >= zombieSince,
        );
    await waitUntil(() => timeoutLine() !== undefined, 5000, 'the daemon to notice the zombie');
    // The 2 × hb_ms rule itself is proven with a simulated clock in the link machine's tests;
    // here: the real daemon detects a silent peer on its own (its log says so) and reconnects.
    expect(timeoutLine()).toContain('heartbeat timeout');
    peer.zombie(false);
    await peer.waitFor(() => peer.connections.length > before, 10_000, 'a new connection');
    await peer.waitForConnection(10_000);
  });

  it('malformed, oversized and unknown frames never crash the daemon', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    const [pid] = daemonPids(root);
    // Each bad frame must cost the connection (the daemon closes it) and nothing else.
    const survives = async (what: string, send: () => void) => {
      const before = peer.connections.length;
      const dropped = peer.connections.at(-1);
      send();
      await peer.waitFor(
        () => dropped?.closedAt !== null,
        10_000,
        `the daemon to drop the link after ${what}`,
      );
      await peer.waitFor(() => peer.connections.length > before, 15_000, `a new connection after ${what}`);
      await peer.waitForConnection(15_000);
      expect(daemonPids(root), what).toEqual([pid]);
    };
    await survives('invalid JSON', () => peer.sendRaw('{not json'));
    await survives('an unknown op', () => peer.sendRaw(JSON.stringify({ op: 'teleport', x: 1 })));
    await survives('an oversized frame', () => peer.sendOversized());
    // 100 two-byte characters: echoed in the close reason, which must stay within 123 bytes.
    await survives('a long non-ASCII op', () => peer.sendRaw(JSON.stringify({ op: 'é'.repeat(100) })));
    expect(daemonPids(root)).toEqual([pid]);
    expect((await status(root)).state).toBe('serving');
  });

  it('a command replayed with the same cmd_id is applied once', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, peer);
    await peer.waitForConnection(5000);
    peer.sendCommand({
      cmd_id: 'cmd-1',
      kind: 'run.start',
      args: { workflow_id: 'greet', inputs: { name: 'Gw' } },
    });
    peer.sendCommand({
      cmd_id: 'cmd-1',
      kind: 'run.start',
      args: { workflow_id: 'greet', inputs: { name: 'Gw' } },
    });
    peer.sendCommand({ cmd_id: 'cmd-2', kind: 'run.start', args: { workflow_id: 'nope' } });
    await peer.waitFor(
      () => peer.events.filter((e) => e.type === 'command.result').length >= 3,
      5000,
      'three command results',
    );
    const results = peer.events
      .filter((e) => e.type === 'command.result')
      .map((e) => e.data as { cmd_id: string; status: string; run_id?: string; error?: { code: string } });
    expect(
      results
        .filter((r) => r.cmd_id === 'cmd-1')
        .map((r) => r.status)
        .sort(),
    ).toEqual(['applied', 'duplicate']);
    expect(results.find((r) => r.cmd_id === 'cmd-2')).toMatchObject({
      status: 'rejected',
      error: { code: 'UNKNOWN_WORKFLOW' },
    });
    const runId = results.find((r) => r.status === 'applied')?.run_id;
    await peer.waitFor(
      () => peer.events.some((e) => e.run_id === runId && e.type === 'run.waiting'),
      5000,
      'the run',
    );
    expect(peer.events.filter((e) => e.type === 'run.queued')).toHaveLength(1);

    // A gate decision from the gateway goes through the same checks.
    peer.sendCommand({
      cmd_id: 'cmd-3',
      kind: 'gate.decide',
      run_id: runId,
      args: { step_id: 'confirm', decision: 'approve', by: 'ops' },
    });
    await peer.waitFor(
      () => peer.events.some((e) => e.type === 'gate.decided' && e.run_id === runId),
      5000,
      'the decision',
    );
  });
});
