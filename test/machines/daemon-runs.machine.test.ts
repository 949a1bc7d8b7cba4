/**
 * The root machine with real run actors (fake step runners): submission, slots and the FIFO
 * queue, commands checked against what each run waits for, restore at boot, drain with runs.
 */
import { describe, expect, it } from 'vitest';
import { type AnyActorRef, createActor, fromCallback, fromPromise, SimulatedClock, waitFor } from 'xstate';
import {
  type ControlActorEvent,
  type DaemonFacts,
  daemonMachine,
  type RecoveryReport,
} from '../../machines/daemon.machine.js';
import {
  type RunInput,
  type RunPlan,
  runMachine,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';
import { runShardMachine } from '../../machines/run-shard.machine.js';

const facts: DaemonFacts = {
  pid: 7,
  version: '1.0.0',
  startedAt: '2026-01-01T00:00:00.000Z',
  daemonId: 'd',
  epoch: 1,
  projectRoot: '/p',
  socketPath: '/p/s',
  storePath: '/p/db',
  logPath: '/p/log',
  gatewayUrl: null,
  inspectorUrl: null,
};

const oneStep: RunPlan = { id: 'one', steps: [{ id: 'work', kind: 'run' }] };
const gated: RunPlan = {
  id: 'gated',
  steps: [
    { id: 'approve', kind: 'gate' },
    { id: 'details', kind: 'input' },
  ],
};

async function harness(
  options: {
    maxRuns?: number;
    maxQueuedRuns?: number;
    restore?: RunInput[];
    brokenStore?: boolean;
    fullDisk?: boolean;
    /** What the wiring does when the daemon is ready (it applies pending gateway commands). */
    onReady?: (root: AnyActorRef) => void;
  } = {},
) {
  const crashes: string[] = [];
  /** Checkpoints and replies in the order they happened. */
  const trail: string[] = [];
  const replies: ControlActorEvent[] = [];
  const persisted: string[] = [];
  const running = new Set<string>();
  const clock = new SimulatedClock();
  const run = runMachine.provide({
    actors: {
      stepRunner: fromCallback<StepRunnerEvent, StepRunnerInput>(({ input }) => {
        running.add(input.runId);
        return () => running.delete(input.runId);
      }),
    },
    actions: {
      checkpoint: (_args, params) => {
        if (options.brokenStore && params.event.type === 'step.started') throw new Error('disk full');
        trail.push(
          `checkpoint ${params.event.type}${params.answer ? ` answering ${params.answer.key}` : ''}`,
        );
      },
      recordOutput: () => undefined,
    },
  });
  const recovery: RecoveryReport = {
    previousShutdown: 'clean',
    runs: options.restore ?? [],
    finished: { succeeded: 5, failed: 0, cancelled: 0 },
  };
  const machine = daemonMachine.provide({
    actors: {
      controlServer: fromCallback<ControlActorEvent, undefined>(({ receive }) => {
        receive((event) => {
          replies.push(event);
          trail.push(`reply ${event.key}`);
        });
      }),
      recoverState: fromPromise(async () => recovery),
      runShard: runShardMachine.provide({
        actors: { run },
        actions: { recordCrash: (_args, params) => crashes.push(`${params.runId}: ${params.message}`) },
      }),
    },
    actions: {
      journal: () => undefined,
      announceReady: ({ self }) => options.onReady?.(self),
      persistRun: ({ self }, params) => {
        if (options.fullDisk) {
          self.send({
            type: 'run.storeFailed',
            key: params.key,
            runId: params.runId,
            error: { code: 'DISK_FULL', message: 'the disk holding /p/db is full (SQLITE_FULL)' },
          });
          return;
        }
        persisted.push(params.runId);
        self.send({ type: 'run.stored', key: params.key, runId: params.runId, plan: params.plan });
      },
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      facts,
      drainTimeoutMs: 1000,
      maxRuns: options.maxRuns ?? 2,
      maxQueuedRuns: options.maxQueuedRuns ?? 3,
    },
  }).start();
  await waitFor(actor, (s) => s.matches({ booting: 'listening' }));
  actor.send({ type: 'control.listening' });
  const submit = (runId: string, plan: RunPlan = oneStep) =>
    actor.send({ type: 'run.submit', key: `k-${runId}`, runId, plan, inputs: {} });
  const finishStep = (runId: string, exitCode = 0) =>
    actor.system.get(`run:${runId}`)?.send({ type: 'step.exited', outcome: { kind: 'exited', exitCode } });
  const replyFor = (key: string) => replies.filter((r) => r.key === key).at(-1)?.reply;
  const runs = () => actor.getSnapshot().context.runs;
  const status = () => {
    actor.send({ type: 'control.request', key: 'status', method: 'status', params: {} });
    return (replyFor('status') as { result: { runs: Record<string, number> } }).result.runs;
  };
  return { actor, clock, submit, finishStep, replyFor, runs, running, persisted, status, crashes, trail };
}

describe('root machine with runs', () => {
  it('persists, spawns and acknowledges a submission, then admits it to a slot', async () => {
    const h = await harness();
    h.submit('r1');
    expect(h.persisted).toEqual(['r1']);
    expect(h.replyFor('k-r1')).toEqual({ result: { run_id: 'r1', state: 'queued' } });
    expect(h.actor.system.get('run:r1')).toBeDefined();
    expect(h.runs().r1?.state).toBe('running');
    expect(h.running).toEqual(new Set(['r1']));
    h.finishStep('r1');
    expect(h.runs().r1).toBeUndefined();
    expect(h.actor.system.get('run:r1')).toBeUndefined(); // its actor is released
    expect(h.status()).toMatchObject({ succeeded: 6, running: 0 });
  });

  it('executes at most maxRuns at once and admits the queue first come, first served', async () => {
    const h = await harness({ maxRuns: 2, maxQueuedRuns: 10 });
    for (const id of ['a', 'b', 'c', 'd']) h.submit(id);
    expect([...h.running].sort()).toEqual(['a', 'b']);
    expect(h.actor.getSnapshot().context.queue).toEqual(['c', 'd']);
    expect(h.status()).toMatchObject({ running: 2, queued: 2 });
    h.finishStep('b');
    expect([...h.running].sort()).toEqual(['a', 'c']);
    h.finishStep('a', 1);
    expect([...h.running].sort()).toEqual(['c', 'd']);
    expect(h.status()).toMatchObject({ running: 2, queued: 0, failed: 1, succeeded: 6 });
  });

  it('refuses a submission when the queue is full', async () => {
    const h = await harness({ maxRuns: 1, maxQueuedRuns: 2 });
    for (const id of ['a', 'b', 'c']) h.submit(id);
    h.submit('d');
    expect(h.replyFor('k-d')).toMatchObject({ error: { code: 'QUEUE_FULL' } });
    expect(h.persisted).toEqual(['a', 'b', 'c']);
    expect(h.actor.system.get('run:d')).toBeUndefined();
  });

  it('waiting runs hold no slot; commands are checked against what the run waits for', async () => {
    const h = await harness({ maxRuns: 1 });
    h.submit('g', gated);
    expect(h.runs().g).toEqual({ state: 'waiting', waitingFor: { kind: 'gate', stepId: 'approve' } });
    h.submit('x');
    expect(h.running).toEqual(new Set(['x'])); // the slot went to x

    const command = (key: string, stepId: string | null, cmd: object) =>
      h.actor.send({ type: 'run.command', runId: 'g', command: { ...cmd, key, stepId } as never });
    command('ans', null, { type: 'input.submit', key: 'k', stepId: null, answers: {} });
    expect(h.replyFor('ans')).toMatchObject({ error: { code: 'RUN_NOT_WAITING' } });
    command('wrong-step', 'other', { type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
    expect(h.replyFor('wrong-step')).toMatchObject({ error: { code: 'RUN_NOT_WAITING' } });
    command('ok', 'approve', { type: 'gate.decide', key: 'k', stepId: null, decision: 'approve' });
    expect(h.replyFor('ok')).toEqual({ result: { run_id: 'g', state: 'queued' } });
    // Approved, it needs a slot again: x holds the only one.
    expect(h.runs().g?.state).toBe('queued');
    h.finishStep('x');
    expect(h.runs().g).toEqual({ state: 'waiting', waitingFor: { kind: 'input', stepId: 'details' } });
    command('answers', null, { type: 'input.submit', key: 'k', stepId: null, answers: { n: 1 } });
    expect(h.runs().g).toBeUndefined(); // done: both steps were pauses
    command('late', null, { type: 'run.cancel', key: 'k', reason: 'x' });
    expect(h.replyFor('late')).toMatchObject({ error: { code: 'RUN_FINISHED' } });
  });

  it('cancel of a running run replies cancelling; the slot frees when its process is gone', async () => {
    const h = await harness({ maxRuns: 1 });
    h.submit('a');
    h.submit('b');
    h.actor.send({
      type: 'run.command',
      runId: 'a',
      command: { type: 'run.cancel', key: 'c', reason: 'stop' },
    });
    expect(h.replyFor('c')).toEqual({ result: { run_id: 'a', state: 'cancelling' } });
    expect(h.runs().a?.state).toBe('cancelling');
    expect(h.running).toEqual(new Set(['a'])); // b still waits: a holds the slot until it is gone
    h.actor.system
      .get('run:a')
      ?.send({ type: 'step.exited', outcome: { kind: 'cancelled', reason: 'stop' } });
    expect(h.running).toEqual(new Set(['b']));
    expect(h.status()).toMatchObject({ cancelled: 1 });
  });

  it('a run whose actor throws (say, a failing store) fails alone: the daemon keeps serving', async () => {
    const h = await harness({ maxRuns: 1, brokenStore: true });
    h.submit('doomed');
    h.submit('next', gated);
    expect(h.crashes).toEqual(['doomed: disk full']);
    expect(h.actor.getSnapshot().value).toBe('serving');
    expect(h.runs().doomed).toBeUndefined();
    expect(h.status()).toMatchObject({ failed: 1, running: 0, waiting: 1 });
  });

  it('answers a command only after the checkpoint that records its effect (and names it)', async () => {
    const h = await harness({ maxRuns: 1 });
    h.submit('g', gated);
    h.actor.send({
      type: 'run.command',
      runId: 'g',
      command: { type: 'gate.decide', key: 'ok', stepId: 'approve', decision: 'approve' },
    });
    const decided = h.trail.indexOf('checkpoint gate.decided answering ok');
    expect(decided).toBeGreaterThan(-1);
    expect(h.trail.indexOf('reply ok')).toBeGreaterThan(decided);
    h.actor.send({
      type: 'run.command',
      runId: 'g',
      command: { type: 'run.cancel', key: 'cx', reason: 'no' },
    });
    expect(h.trail.indexOf('reply cx')).toBeGreaterThan(
      h.trail.indexOf('checkpoint run.cancelled answering cx'),
    );
    expect(h.replyFor('cx')).toEqual({ result: { run_id: 'g', state: 'cancelled' } });
    expect(h.actor.getSnapshot().context.commandsInFlight).toEqual({});
  });

  it('a run that has moved on refuses a decision meant for an earlier step, through the root', async () => {
    const h = await harness({ maxRuns: 1 });
    h.submit('g', gated);
    h.actor.send({
      type: 'run.command',
      runId: 'g',
      command: { type: 'gate.decide', key: 'first', stepId: 'approve', decision: 'approve' },
    });
    expect(h.runs().g?.waitingFor).toEqual({ kind: 'input', stepId: 'details' });
    // A second decision that was checked while the run still waited at the gate reaches the run
    // late (straight to the actor, as after a race with the run's own report): refused, answered.
    h.actor.system
      .get('run:g')
      ?.send({ type: 'gate.decide', key: 'second', stepId: 'approve', decision: 'approve' });
    expect(h.replyFor('second')).toMatchObject({ error: { code: 'RUN_NOT_WAITING' } });
    h.actor.system
      .get('run:g')
      ?.send({ type: 'input.submit', key: 'stale', stepId: 'other-step', answers: {} });
    expect(h.replyFor('stale')).toMatchObject({ error: { code: 'RUN_NOT_WAITING' } });
    expect(h.runs().g?.state).toBe('waiting');
  });

  it('a store that cannot take a new run answers the submitter and keeps serving', async () => {
    const h = await harness({ fullDisk: true, maxQueuedRuns: 1 });
    h.submit('a');
    expect(h.replyFor('k-a')).toMatchObject({ error: { code: 'DISK_FULL' } });
    h.submit('b');
    expect(h.replyFor('k-b')).toMatchObject({ error: { code: 'DISK_FULL' } }); // not QUEUE_FULL
    expect(h.actor.getSnapshot().value).toBe('serving');
    expect(h.actor.system.get('run:a')).toBeUndefined();
    expect(h.actor.getSnapshot().context.submitting).toBe(0);
    expect(h.status()).toMatchObject({ queued: 0 });
  });

  it('restores runs at boot: waiting ones wait, queued ones are admitted', async () => {
    const h = await harness({
      restore: [
        { runId: 'w', plan: gated, stepIndex: 1, attempt: 1, resume: 'waiting' },
        { runId: 'q', plan: oneStep, stepIndex: 0, attempt: 2, resume: 'queued' },
      ],
    });
    expect(h.runs().w).toEqual({ state: 'waiting', waitingFor: { kind: 'input', stepId: 'details' } });
    expect(h.running).toEqual(new Set(['q']));
    expect(h.actor.getSnapshot().context.restoring).toEqual([]);
  });

  it('a pending command applied as the daemon becomes ready reaches a restored run before it reports', async () => {
    const h = await harness({
      restore: [{ runId: 'w', plan: gated, stepIndex: 1, attempt: 1, resume: 'waiting' }],
      // As the wiring does for gateway commands stored before a crash: sent at once, in the
      // serving entry, before the restored run has told the root what it waits for.
      onReady: (root) =>
        root.send({
          type: 'run.command',
          runId: 'w',
          command: { type: 'input.submit', key: 'gw:pending', stepId: 'details', answers: { n: 1 } },
        }),
    });
    expect(h.replyFor('gw:pending')).toEqual({ result: { run_id: 'w', state: 'queued' } });
  });

  it('draining refuses submissions, waits for executing runs (not waiting ones), then stops', async () => {
    const h = await harness({ maxRuns: 2 });
    h.submit('busy');
    h.submit('paused', gated);
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    expect(h.actor.getSnapshot().value).toBe('draining');
    h.submit('late');
    expect(h.replyFor('k-late')).toMatchObject({ error: { code: 'DRAINING' } });
    h.finishStep('busy');
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.running.size).toBe(0);
  });

  it('the drain timeout stops a daemon whose run never finishes, and its step is stopped', async () => {
    const h = await harness();
    h.submit('stuck');
    h.actor.send({ type: 'daemon.stop', reason: 'SIGTERM' });
    h.clock.increment(1000);
    expect(h.actor.getSnapshot().output).toMatchObject({ drainTimedOut: true });
    expect(h.running.size).toBe(0); // the step runner's cleanup ran (it kills the process group)
  });
});
