import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock, waitFor } from 'xstate';
import {
  type ControlActorEvent,
  type DaemonFacts,
  daemonMachine,
  type JournalParams,
  type RecoveryReport,
} from '../../machines/daemon.machine.js';

const facts: DaemonFacts = {
  pid: 4242,
  version: '9.9.9',
  startedAt: '2026-01-01T00:00:00.000Z',
  daemonId: 'daemon-id',
  epoch: 3,
  projectRoot: '/project',
  socketPath: '/project/.charter/daemon/daemon.sock',
  storePath: '/project/.charter/daemon/state.db',
  logPath: '/project/.charter/daemon/daemon.log',
  gatewayUrl: null,
  inspectorUrl: null,
};

function recovery(previousShutdown: RecoveryReport['previousShutdown']): RecoveryReport {
  return { previousShutdown, runs: [], finished: { succeeded: 0, failed: 0, cancelled: 0 } };
}

interface Harness {
  actor: ReturnType<typeof createActor<typeof daemonMachine>>;
  clock: SimulatedClock;
  journal: JournalParams[];
  replies: ControlActorEvent[];
  effects: string[];
}

function start(options: { recovery?: () => Promise<RecoveryReport>; drainTimeoutMs?: number } = {}): Harness {
  const journal: JournalParams[] = [];
  const replies: ControlActorEvent[] = [];
  /** The wiring's effects, in order, with the journal entries among them. */
  const effects: string[] = [];
  const clock = new SimulatedClock();
  const machine = daemonMachine.provide({
    actors: {
      controlServer: fromCallback<ControlActorEvent, undefined>(({ receive }) => {
        receive((event) => replies.push(event));
      }),
      recoverState: fromPromise(options.recovery ?? (async () => recovery('clean'))),
    },
    actions: {
      journal: (_args, params) => {
        journal.push(params);
        effects.push(params.type);
      },
      announceReady: () => effects.push('ready'),
      stopStateWatch: () => effects.push('state watch stopped'),
    },
  });
  const actor = createActor(machine, {
    input: { facts, drainTimeoutMs: options.drainTimeoutMs ?? 5000, maxRuns: 2, maxQueuedRuns: 3 },
    clock,
  });
  actor.start();
  return { actor, clock, journal, replies, effects };
}

/** A run whose one step is executing (its step runner is the machine's default: it never exits). */
function executingRun(h: Harness, runId: string): void {
  h.actor.send({
    type: 'run.submit',
    key: `k-${runId}`,
    runId,
    plan: { id: 'one', steps: [{ id: 'work', kind: 'run' }] },
    inputs: {},
  });
  expect(h.actor.getSnapshot().context.runs[runId]?.state).toBe('running');
}

function finishStep(h: Harness, runId: string): void {
  h.actor.system.get(`run:${runId}`)?.send({ type: 'step.exited', outcome: { kind: 'exited', exitCode: 0 } });
}

async function serving(h: Harness): Promise<void> {
  await waitFor(h.actor, (s) => s.matches({ booting: 'listening' }));
  h.actor.send({ type: 'control.listening' });
  expect(h.actor.getSnapshot().value).toBe('serving');
}

describe('daemon root machine', () => {
  it('boots: recovers, spawns the control actor, serves once the socket listens, journals the start', async () => {
    const h = start({ recovery: async () => recovery('unclean') });
    expect(h.actor.getSnapshot().matches({ booting: 'recovering' })).toBe(true);
    await waitFor(h.actor, (s) => s.matches({ booting: 'listening' }));
    expect(h.actor.getSnapshot().children.control).toBeDefined();
    expect(h.actor.system.get('control')).toBeDefined();
    expect(h.journal).toEqual([]);
    h.actor.send({ type: 'control.listening' });
    expect(h.actor.getSnapshot().value).toBe('serving');
    expect(h.journal).toEqual([
      {
        type: 'daemon.started',
        data: { pid: 4242, version: '9.9.9', epoch: 3, previous_shutdown: 'unclean', restored_runs: 0 },
      },
    ]);
  });

  it('stops with a failure when recovery fails', async () => {
    const h = start({
      recovery: async () => {
        throw new Error('disk on fire');
      },
    });
    const output = await waitFor(h.actor, (s) => s.status === 'done').then((s) => s.output);
    expect(output).toEqual({ exitCode: 1, failure: 'recovery failed: disk on fire', drainTimedOut: false });
    expect(h.journal.map((entry) => entry.type)).toEqual(['daemon.stopped']);
  });

  it('stops with a failure when the control socket cannot bind', async () => {
    const h = start();
    await waitFor(h.actor, (s) => s.matches({ booting: 'listening' }));
    h.actor.send({ type: 'control.failed', message: 'EADDRINUSE' });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.actor.getSnapshot().output).toMatchObject({
      exitCode: 1,
      failure: 'control socket failed: EADDRINUSE',
    });
  });

  it('a stop signal while booting stops at once, cleanly', async () => {
    const h = start();
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.actor.getSnapshot().output).toEqual({ exitCode: 0, failure: null, drainTimedOut: false });
    expect(h.journal.at(-1)).toMatchObject({ type: 'daemon.stopped', data: { reason: 'SIGTERM' } });
  });

  it('answers status through the control actor with the facts, the state and run counts', async () => {
    const h = start();
    await serving(h);
    h.actor.send({ type: 'control.request', key: 'k1', method: 'status', params: {} });
    expect(h.replies).toHaveLength(1);
    const reply = h.replies[0];
    expect(reply?.key).toBe('k1');
    expect(reply?.reply).toMatchObject({
      result: {
        pid: 4242,
        state: 'serving',
        version: '9.9.9',
        daemon_id: 'daemon-id',
        gateway: { state: 'offline', url: null },
        runs: { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 },
        inspector: null,
      },
    });
  });

  it('a stop request drains and, with nothing in flight, stops at once', async () => {
    const h = start();
    await serving(h);
    h.actor.send({ type: 'control.request', key: 'k2', method: 'stop', params: {} });
    expect(h.replies.at(-1)).toEqual({
      type: 'control.reply',
      key: 'k2',
      reply: { result: { pid: 4242, already_stopping: false, drain_timeout_ms: 5000 } },
    });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.journal.map((entry) => entry.type)).toEqual([
      'daemon.started',
      'daemon.stopping',
      'daemon.stopped',
    ]);
    expect(h.actor.getSnapshot().output).toEqual({ exitCode: 0, failure: null, drainTimedOut: false });
  });

  it('draining waits for runs executing a step, keeps answering status and repeated stops, then stops', async () => {
    const h = start();
    await serving(h);
    executingRun(h, 'a');
    executingRun(h, 'b');
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    expect(h.actor.getSnapshot().value).toBe('draining');
    expect(h.journal.at(-1)).toEqual({
      type: 'daemon.stopping',
      data: { reason: 'SIGTERM', executing_runs: 2 },
    });

    h.actor.send({ type: 'control.request', key: 's', method: 'status', params: {} });
    expect(h.replies.at(-1)?.reply).toMatchObject({ result: { state: 'draining' } });
    h.actor.send({ type: 'control.request', key: 'again', method: 'stop', params: {} });
    expect(h.replies.at(-1)?.reply).toEqual({
      result: { pid: 4242, already_stopping: true, drain_timeout_ms: 5000 },
    });

    finishStep(h, 'a');
    expect(h.actor.getSnapshot().value).toBe('draining');
    finishStep(h, 'b');
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.actor.getSnapshot().output).toEqual({ exitCode: 0, failure: null, drainTimedOut: false });
  });

  it('the drain timeout (simulated clock) cuts off a run that never finishes its step', async () => {
    const h = start({ drainTimeoutMs: 5000 });
    await serving(h);
    executingRun(h, 'stuck');
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    h.clock.increment(4999);
    expect(h.actor.getSnapshot().value).toBe('draining');
    h.clock.increment(1);
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.actor.getSnapshot().output).toEqual({ exitCode: 0, failure: null, drainTimedOut: true });
    expect(h.journal.at(-1)).toMatchObject({
      type: 'daemon.stopped',
      data: { drain_timed_out: true, abandoned_work: ['run:stuck'] },
    });
  });

  it('a stop request sets its own drain timeout', async () => {
    const h = start({ drainTimeoutMs: 60_000 });
    await serving(h);
    executingRun(h, 'stuck');
    h.actor.send({ type: 'control.request', key: 'k', method: 'stop', params: { timeout_ms: 100 } });
    h.clock.increment(99);
    expect(h.actor.getSnapshot().value).toBe('draining');
    h.clock.increment(1);
    expect(h.actor.getSnapshot().output).toMatchObject({ drainTimedOut: true });
  });

  it('announces readiness on entering serving, after the start is journaled, and stops the state watch on leaving', async () => {
    const h = start();
    await serving(h);
    expect(h.effects).toEqual(['daemon.started', 'ready']);
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    expect(h.effects).toEqual([
      'daemon.started',
      'ready',
      'state watch stopped',
      'daemon.stopping',
      'daemon.stopped',
    ]);
  });

  it('a control socket failure while serving drains and exits non-zero', async () => {
    const h = start();
    await serving(h);
    h.actor.send({ type: 'control.failed', message: 'socket closed' });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.actor.getSnapshot().output).toMatchObject({
      exitCode: 1,
      failure: 'control socket failed: socket closed',
    });
  });
});
