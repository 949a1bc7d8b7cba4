/**
 * Fault injection in command handling, against the built daemon: `CHARTER_DAEMON_CRASH_AT` makes
 * it SIGKILL itself at one precise step (stored, acknowledged, applied, settled, run stored), a
 * daemon is started again without the switch, and the gateway reconnects. Whatever the step,
 * every stored command has exactly one result, every `applied` result has its effect in the
 * run's history, the run moves on, and nothing is applied twice. The CLI's `resume` keeps the
 * same promise: a decision it may have been told of is found after the crash.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CommandKind, GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import { assertBuilt, destroyProject, runCli } from '../support/cli.js';
import {
  type CommandResult,
  caughtUpStore,
  commandResults,
  faultProject,
  GATEWAY_TOKEN,
  runLog,
  showRun,
  startDaemon,
  submitRun,
  untilRun,
  waitForDeath,
  waitForRunEvent,
} from '../support/fault-daemon.js';

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(): Promise<GatewayPeer> {
  const peer = await GatewayPeer.start({ token: GATEWAY_TOKEN, hbMs: 500 });
  cleanups.push(() => peer.stop());
  return peer;
}

function project(): string {
  const root = faultProject();
  cleanups.push(() => destroyProject(root));
  return root;
}

/** The daemon started after the crash says the previous one ended uncleanly. */
async function expectRestartAfterCrash(peer: GatewayPeer): Promise<void> {
  await peer.waitFor(
    () => peer.events.filter((event) => event.type === 'daemon.started').length === 2,
    10_000,
    'the second daemon.started',
  );
  const started = peer.events.filter((event) => event.type === 'daemon.started').at(-1);
  expect(started?.data).toMatchObject({ previous_shutdown: 'unclean' });
}

/**
 * Every command in the inbox is settled and has exactly one result (not counting `duplicate`
 * answers to resends), in the journal and at the gateway, which holds every stored event once.
 */
async function expectEveryCommandAnsweredOnce(root: string, peer: GatewayPeer): Promise<CommandResult[]> {
  const { inbox, journal } = await caughtUpStore(root, peer);
  expect(peer.events.slice(0, journal.length).map((event) => [event.seq, event.type])).toEqual(
    journal.map((event) => [event.seq, event.type]),
  );
  expect(peer.conflictingDuplicates()).toEqual([]);
  expect(inbox.filter((row) => row.status === 'pending')).toEqual([]);
  const atGateway = commandResults(peer.events);
  const journaled = journal
    .filter((event) => event.type === 'command.result')
    .map((event) => JSON.parse(event.data) as CommandResult);
  for (const results of [atGateway, journaled]) {
    for (const row of inbox) {
      const own = results.filter((result) => result.cmd_id === row.cmd_id && result.status !== 'duplicate');
      expect(
        own.map((result) => result.status),
        `results of ${row.cmd_id}`,
      ).toEqual([row.status]);
    }
    // No result for a command the inbox does not hold.
    const known = new Set(inbox.map((row) => row.cmd_id));
    expect(results.filter((result) => !known.has(result.cmd_id))).toEqual([]);
  }
  return atGateway;
}

/** The run's history holds `type` exactly once (the effect was recorded, and only once). */
async function expectEffectOnce(root: string, runId: string, type: string): Promise<void> {
  const log = await runLog(root, runId);
  expect(
    log.filter((entry) => entry.type === type),
    `${type} in the history of ${runId}`,
  ).toHaveLength(1);
}

const COMMANDS: Record<
  Exclude<CommandKind, 'run.start'>,
  { workflow: string; args: Record<string, unknown>; effect: string; final: string }
> = {
  'gate.decide': {
    workflow: 'hold',
    args: { step_id: 'hold', decision: 'approve', by: 'ops' },
    effect: 'gate.decided',
    final: 'succeeded',
  },
  'input.submit': {
    workflow: 'ask',
    args: { step_id: 'ask', answers: { n: 3 }, by: 'ops' },
    effect: 'input.submitted',
    final: 'succeeded',
  },
  'run.cancel': {
    workflow: 'hold',
    args: { reason: 'called off', by: 'ops' },
    effect: 'run.cancelled',
    final: 'cancelled',
  },
};

describe.each(['command.stored', 'command.acked', 'command.applied'])('kill -9 at %s', (point) => {
  it.each(Object.keys(COMMANDS) as (keyof typeof COMMANDS)[])(
    'a gateway %s of a waiting run: one result, its effect recorded once, the run moves on',
    async (kind) => {
      const spec = COMMANDS[kind];
      const peer = await gateway();
      const root = project();
      await startDaemon(root, { gateway: peer, crashAt: point });
      await peer.waitForConnection(10_000);
      const runId = await submitRun(root, spec.workflow);
      await waitForRunEvent(peer, runId, 'run.waiting');

      peer.sendCommand({ cmd_id: `cmd-${kind}`, kind, run_id: runId, args: spec.args });
      await waitForDeath(root);
      await startDaemon(root, { gateway: peer });
      await expectRestartAfterCrash(peer);

      const run = await untilRun(root, runId, (r) => r.state === spec.final, `reached ${spec.final}`);
      expect(run.waiting).toBeNull();
      const results = await expectEveryCommandAnsweredOnce(root, peer);
      expect(results).toEqual([
        expect.objectContaining({ cmd_id: `cmd-${kind}`, status: 'applied', run_id: runId }),
      ]);
      await expectEffectOnce(root, runId, spec.effect);
      if (kind === 'input.submit') expect(run.answers).toEqual({ ask: { n: 3 } });
    },
  );
});

describe('kill -9 at command.settled (a refused command)', () => {
  it('a gate.decide for an unknown run: one rejected result, nothing applied', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, { gateway: peer, crashAt: 'command.settled' });
    await peer.waitForConnection(10_000);
    peer.sendCommand({
      cmd_id: 'cmd-unknown-run',
      kind: 'gate.decide',
      run_id: 'r01M80000000000000000000000', // well formed, but no such run
      args: { step_id: 'hold', decision: 'approve' },
    });
    await waitForDeath(root);
    await startDaemon(root, { gateway: peer });
    await expectRestartAfterCrash(peer);
    const results = await expectEveryCommandAnsweredOnce(root, peer);
    expect(results).toEqual([
      expect.objectContaining({
        cmd_id: 'cmd-unknown-run',
        status: 'rejected',
        error: expect.objectContaining({ code: 'UNKNOWN_RUN' }),
      }),
    ]);
  });

  it('a gate.decide for the wrong step: one rejected result, the run keeps waiting, a right one then applies', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, { gateway: peer, crashAt: 'command.settled' });
    await peer.waitForConnection(10_000);
    const runId = await submitRun(root, 'hold');
    await waitForRunEvent(peer, runId, 'run.waiting');
    peer.sendCommand({
      cmd_id: 'cmd-wrong-step',
      kind: 'gate.decide',
      run_id: runId,
      args: { step_id: 'after', decision: 'approve' },
    });
    await waitForDeath(root);
    await startDaemon(root, { gateway: peer });
    await expectRestartAfterCrash(peer);
    await peer.waitFor(
      () => commandResults(peer.events).some((result) => result.cmd_id === 'cmd-wrong-step'),
      10_000,
      'the refusal upstream',
    );
    expect(await showRun(root, runId)).toMatchObject({ state: 'waiting', waiting: { step_id: 'hold' } });
    expect((await runLog(root, runId)).filter((entry) => entry.type === 'gate.decided')).toEqual([]);

    peer.sendCommand({
      cmd_id: 'cmd-right-step',
      kind: 'gate.decide',
      run_id: runId,
      args: { step_id: 'hold', decision: 'approve' },
    });
    await untilRun(root, runId, (r) => r.state === 'succeeded', 'succeeded');
    const results = await expectEveryCommandAnsweredOnce(root, peer);
    expect(results.map(({ cmd_id, status, error }) => ({ cmd_id, status, code: error?.code }))).toEqual([
      { cmd_id: 'cmd-wrong-step', status: 'rejected', code: 'RUN_NOT_WAITING' },
      { cmd_id: 'cmd-right-step', status: 'applied', code: undefined },
    ]);
    await expectEffectOnce(root, runId, 'gate.decided');
  });
});

describe('kill -9 at run.stored (a gateway run.start)', () => {
  it('the run is stored once, answered once, and runs after the restart', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, { gateway: peer, crashAt: 'run.stored' });
    await peer.waitForConnection(10_000);
    peer.sendCommand({ cmd_id: 'cmd-start', kind: 'run.start', args: { workflow_id: 'hold' } });
    await waitForDeath(root);
    await startDaemon(root, { gateway: peer });
    await expectRestartAfterCrash(peer);

    await peer.waitFor(
      () => peer.events.some((event) => event.type === 'run.waiting'),
      10_000,
      'the run to reach its gate',
    );
    const results = await expectEveryCommandAnsweredOnce(root, peer);
    const runId = results[0]?.run_id ?? '';
    expect(results).toEqual([
      expect.objectContaining({ cmd_id: 'cmd-start', status: 'applied', run_id: runId }),
    ]);
    const runs = await runCli(['runs', 'list', '--json', '--project-path', root]);
    expect(runs.code, runs.stderr).toBe(0);
    expect((JSON.parse(runs.stdout) as { runs: { run_id: string }[] }).runs.map((run) => run.run_id)).toEqual(
      [runId],
    );
    expect(peer.events.filter((event) => event.type === 'run.queued').map((event) => event.run_id)).toEqual([
      runId,
    ]);
    expect(await showRun(root, runId)).toMatchObject({ state: 'waiting', waiting: { step_id: 'hold' } });
  });
});

describe('kill -9 after a duplicate is stored (command.stored, second pass)', () => {
  it('a cmd_id re-sent under a new dseq gets exactly one duplicate result, and is applied once', async () => {
    const peer = await gateway();
    const root = project();
    await startDaemon(root, { gateway: peer, crashAt: 'command.stored:2' });
    await peer.waitForConnection(10_000);
    const runId = await submitRun(root, 'hold');
    await waitForRunEvent(peer, runId, 'run.waiting');
    const decide = {
      cmd_id: 'cmd-twice',
      kind: 'gate.decide',
      run_id: runId,
      args: { step_id: 'hold', decision: 'approve' },
    } as const;
    peer.sendCommand(decide);
    // Finished before the crash: a step killed with the daemon would fail the run (interrupted).
    await waitForRunEvent(peer, runId, 'run.succeeded');
    peer.sendCommand(decide); // the same cmd_id under dseq 2: the second pass kills the daemon
    await waitForDeath(root);
    await startDaemon(root, { gateway: peer });
    await expectRestartAfterCrash(peer);

    await peer.waitFor(
      () => commandResults(peer.events).some((result) => result.status === 'duplicate'),
      10_000,
      'the duplicate result upstream',
    );
    expect(await showRun(root, runId)).toMatchObject({ state: 'succeeded' });
    const results = await expectEveryCommandAnsweredOnce(root, peer);
    expect(results.map(({ cmd_id, status }) => ({ cmd_id, status }))).toEqual([
      { cmd_id: 'cmd-twice', status: 'applied' },
      { cmd_id: 'cmd-twice', status: 'duplicate' },
    ]);
    // The gateway may forget dseq 2: the daemon holds it as applied.
    expect(peer.connections.at(-1)?.closedAt).toBeNull();
    await expectEffectOnce(root, runId, 'gate.decided');
  });
});

describe('the CLI across kill -9 at command.applied', () => {
  it('resume --approve: the CLI gets an error, and after the restart the run is past the gate', async () => {
    const root = project();
    await startDaemon(root, { crashAt: 'command.applied' });
    const runId = await submitRun(root, 'hold');
    await untilRun(root, runId, (r) => r.state === 'waiting', 'waiting');

    const resumed = await runCli(['resume', runId, '--approve', '--json', '--project-path', root]);
    expect(resumed.code, resumed.stdout).not.toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ error: { code: 'DAEMON_NOT_ANSWERING' } });
    await waitForDeath(root);
    await startDaemon(root);
    // A CLI that would have been told "approved" finds it approved.
    const run = await untilRun(root, runId, (r) => r.state === 'succeeded', 'succeeded');
    expect(run.steps.map((step) => step.state)).toEqual(['succeeded', 'succeeded']);
    await expectEffectOnce(root, runId, 'gate.decided');
  });
});
