/**
 * Automatic retries of a run step (`retry:`), on the real run machine with a fake step runner and
 * a simulated clock: which failures are retried, the backoff and its cap, the limit, the
 * checkpoints that journal each wait, cancel during a wait, a restored wait; and step outputs
 * across attempts (only the final attempt's are the step's, `invalid_outputs` is never retried).
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, SimulatedClock } from 'xstate';
import {
  type Checkpoint,
  type CommandAnswer,
  type PlannedStep,
  type RunPlan,
  type RunStateReport,
  runMachine,
  type StepOutcome,
  type StepRunnerEvent,
  type StepRunnerInput,
} from '../../machines/run.machine.js';
import { retryWaitMs } from '../../machines/run-retry.js';
import type { RetryPolicy } from '../../src/workflow/definition.js';

const T0 = Date.parse('2026-11-25T10:00:00.000Z');

function policy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return {
    limit: 3,
    delayMs: 5000,
    backoff: 2,
    maxDelayMs: 3_600_000,
    on: { anyFailure: true, exitCodes: [], timeout: false },
    ...overrides,
  };
}

function planWith(retry: RetryPolicy | null): RunPlan {
  const build: PlannedStep = { id: 'build', kind: 'run', retry };
  return { id: 'wf', steps: [build, { id: 'publish', kind: 'run' }] };
}

function harness(retry: RetryPolicy | null, options: { retryDueAt?: number; attempt?: number } = {}) {
  const checkpoints: Checkpoint[] = [];
  const reports: RunStateReport['state'][] = [];
  const answers: CommandAnswer[] = [];
  const started: StepRunnerInput[] = [];
  const stopped: number[] = [];
  const clock = new SimulatedClock();
  clock.set(T0);
  const machine = runMachine.provide({
    actors: {
      stepRunner: fromCallback<StepRunnerEvent, StepRunnerInput>(({ input }) => {
        started.push(input);
        return () => stopped.push(input.attempt);
      }),
    },
    actions: {
      checkpoint: (_args, params) => checkpoints.push(params),
      recordOutput: () => undefined,
      report: (_args, params) => reports.push(params.state),
      answer: (_args, params) => answers.push(params),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      runId: 'r01',
      plan: planWith(retry),
      stepIndex: 0,
      attempt: options.attempt ?? 1,
      resume: 'queued',
      now: () => clock.now(),
      ...(options.retryDueAt === undefined ? {} : { retryDueAt: options.retryDueAt }),
    },
  }).start();
  const events = () =>
    checkpoints.flatMap((c) => (c.followedBy ? [c.event.type, c.followedBy.type] : [c.event.type]));
  const retrying = () =>
    checkpoints.flatMap((c) => (c.followedBy?.type === 'step.retrying' ? [c.followedBy.data] : []));
  const attempts = () => started.map((s) => s.attempt);
  const inRetryWait = () => actor.getSnapshot().matches({ running: 'retrying' });
  const exit = (outcome: StepOutcome) => actor.send({ type: 'step.exited', outcome });
  return {
    actor,
    clock,
    checkpoints,
    reports,
    answers,
    started,
    stopped,
    events,
    retrying,
    attempts,
    inRetryWait,
    exit,
  };
}

const code = (exitCode: number): StepOutcome => ({ kind: 'exited', exitCode });

describe('run machine: retries', () => {
  it('retries a failed attempt after the delay, growing by backoff, and succeeds', () => {
    const h = harness(policy());
    h.actor.send({ type: 'run.admit' });
    h.exit(code(1));
    expect(h.inRetryWait()).toBe(true);
    expect(h.actor.getSnapshot().value).toEqual({ running: 'retrying' });
    expect(h.stopped).toEqual([1]); // the failed attempt's child is gone: no process while waiting

    h.clock.increment(4999);
    expect(h.attempts()).toEqual([1]);
    h.clock.increment(1);
    expect(h.attempts()).toEqual([1, 2]);
    expect(h.actor.getSnapshot().matches({ running: 'executing' })).toBe(true);

    h.exit(code(1));
    h.clock.increment(9999); // 5 s × 2
    expect(h.attempts()).toEqual([1, 2]);
    h.clock.increment(1);
    expect(h.attempts()).toEqual([1, 2, 3]);
    h.exit(code(0));
    expect(h.actor.getSnapshot().context.stepIndex).toBe(1);
    expect(h.started.at(-1)).toMatchObject({ stepIndex: 1, attempt: 1 }); // the next step starts at 1

    expect(h.retrying()).toEqual([
      {
        step_id: 'build',
        attempt: 1,
        next_attempt: 2,
        max_attempts: 4,
        in_ms: 5000,
        due_at: new Date(T0 + 5000).toISOString(),
        reason: 'step_failed: exit code 1',
      },
      {
        step_id: 'build',
        attempt: 2,
        next_attempt: 3,
        max_attempts: 4,
        in_ms: 10_000,
        due_at: new Date(T0 + 5000 + 10_000).toISOString(),
        reason: 'step_failed: exit code 1',
      },
    ]);
    // The run stays running (holding its slot) throughout.
    expect(h.reports).toEqual(['queued', 'running']);
    expect(h.events()).toEqual([
      'run.started',
      'step.started',
      'step.finished',
      'step.retrying',
      'step.started',
      'step.finished',
      'step.retrying',
      'step.started',
      'step.finished',
      'step.started',
    ]);
  });

  it('records the wait on the step row with the journal entry, and each new attempt resets the row', () => {
    const h = harness(policy({ limit: 1 }));
    h.actor.send({ type: 'run.admit' });
    h.exit(code(7));
    const retry = h.checkpoints.at(-1);
    expect(retry).toMatchObject({
      event: { type: 'step.finished', data: { step_id: 'build', exit_code: 7, outcome: 'exited' } },
      followedBy: { type: 'step.retrying' },
      step: {
        idx: 0,
        state: 'retrying',
        exitCode: 7,
        reason: 'step_failed: exit code 7 (attempt 1 of 2)',
        finished: true,
        retryAt: new Date(T0 + 5000).toISOString(),
      },
    });
    expect(retry?.run).toBeUndefined(); // the run stays as it is: running
    h.clock.increment(5000);
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: { type: 'step.started', data: { step_id: 'build', index: 0, attempt: 2 } },
      run: { state: 'running', attempt: 2 },
      step: {
        state: 'running',
        attempt: 2,
        started: true,
        archiveAttempt: true,
        finished: false,
        exitCode: null,
        reason: null,
        retryAt: null,
      },
    });
  });

  it('caps each wait at max_delay', () => {
    const p = policy({ limit: 5, delayMs: 1000, backoff: 3, maxDelayMs: 5000 });
    expect([1, 2, 3, 4, 5].map((attempt) => retryWaitMs(p, attempt))).toEqual([1000, 3000, 5000, 5000, 5000]);
    expect([1, 2, 3].map((attempt) => retryWaitMs(policy({ backoff: 1 }), attempt))).toEqual([
      5000, 5000, 5000,
    ]);
    const h = harness(p);
    h.actor.send({ type: 'run.admit' });
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      h.exit(code(1));
      const before = h.clock.now();
      while (h.attempts().length === attempt) h.clock.increment(500);
      waits.push(h.clock.now() - before);
    }
    expect(waits).toEqual([1000, 3000, 5000, 5000]);
    expect(h.retrying().map((data) => data.in_ms)).toEqual([1000, 3000, 5000, 5000]);
  });

  it('fails the run once the limit is reached, naming the last attempt', () => {
    const h = harness(policy({ limit: 3, delayMs: 100, backoff: 1 }));
    h.actor.send({ type: 'run.admit' });
    for (let attempt = 1; attempt <= 3; attempt++) {
      h.exit(code(3));
      h.clock.increment(100);
    }
    expect(h.attempts()).toEqual([1, 2, 3, 4]);
    h.exit(code(3));
    expect(h.actor.getSnapshot().value).toBe('failed');
    expect(h.actor.getSnapshot().context.reason).toBe('step_failed: exit code 3 (attempt 4 of 4)');
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: { type: 'step.finished' },
      followedBy: { type: 'run.failed', data: { reason: 'step_failed: exit code 3 (attempt 4 of 4)' } },
      step: { state: 'failed', exitCode: 3 },
    });
    h.clock.increment(3_600_000);
    expect(h.attempts()).toHaveLength(4); // no timer left behind
  });

  it('retries only the exit codes listed in on', () => {
    const listed = harness(policy({ on: { anyFailure: false, exitCodes: [3, 75], timeout: false } }));
    listed.actor.send({ type: 'run.admit' });
    listed.exit(code(75));
    expect(listed.inRetryWait()).toBe(true);
    listed.clock.increment(5000);
    listed.exit(code(2));
    expect(listed.actor.getSnapshot().value).toBe('failed');
    expect(listed.actor.getSnapshot().context.reason).toBe('step_failed: exit code 2 (attempt 2 of 4)');
    // Codes only: a timeout or a signal is not covered.
    for (const outcome of [
      { kind: 'timed_out', timeoutMs: 1000 },
      { kind: 'signalled', signal: 'SIGKILL' },
    ] as const) {
      const h = harness(policy({ on: { anyFailure: false, exitCodes: [3], timeout: false } }));
      h.actor.send({ type: 'run.admit' });
      h.exit(outcome);
      expect(h.actor.getSnapshot().value).toBe('failed');
    }
  });

  it('any covers exit codes and signals, not timeouts; timeout covers timeouts', () => {
    const any = harness(policy());
    any.actor.send({ type: 'run.admit' });
    any.exit({ kind: 'signalled', signal: 'SIGKILL' });
    expect(any.inRetryWait()).toBe(true);
    const anyTimeout = harness(policy());
    anyTimeout.actor.send({ type: 'run.admit' });
    anyTimeout.exit({ kind: 'timed_out', timeoutMs: 1000 });
    expect(anyTimeout.actor.getSnapshot().value).toBe('failed');
    expect(anyTimeout.actor.getSnapshot().context.reason).toBe(
      'timeout: the step ran longer than 1000 ms (attempt 1 of 4)',
    );

    const timeout = harness(policy({ on: { anyFailure: false, exitCodes: [], timeout: true } }));
    timeout.actor.send({ type: 'run.admit' });
    timeout.exit({ kind: 'timed_out', timeoutMs: 1000 });
    expect(timeout.inRetryWait()).toBe(true);
    expect(timeout.retrying()[0]?.reason).toBe('timeout: the step ran longer than 1000 ms');
    timeout.clock.increment(5000);
    timeout.exit(code(1));
    expect(timeout.actor.getSnapshot().value).toBe('failed');
  });

  it('never retries a step that could not start, nor a step without retry', () => {
    const spawn = harness(policy());
    spawn.actor.send({ type: 'run.admit' });
    spawn.exit({ kind: 'spawn_failed', message: 'secrets unavailable: x' });
    expect(spawn.actor.getSnapshot().value).toBe('failed');
    const plain = harness(null);
    plain.actor.send({ type: 'run.admit' });
    plain.exit(code(1));
    expect(plain.actor.getSnapshot().value).toBe('failed');
    expect(plain.actor.getSnapshot().context.reason).toBe('step_failed: exit code 1'); // as before
  });

  it('a cancel during an attempt cancels the run, never retried', () => {
    const h = harness(policy());
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'run.cancel', key: 'c', reason: 'enough' });
    h.exit({ kind: 'cancelled', reason: 'enough' });
    expect(h.actor.getSnapshot().value).toBe('cancelled');
    h.clock.increment(3_600_000);
    expect(h.attempts()).toEqual([1]);
  });

  it('a cancel while waiting to retry cancels at once and the next attempt never starts', () => {
    const h = harness(policy());
    h.actor.send({ type: 'run.admit' });
    h.exit(code(1));
    h.clock.increment(2000);
    h.actor.send({ type: 'run.cancel', key: 'c1', reason: 'enough', by: 'ana' });
    expect(h.actor.getSnapshot().value).toBe('cancelled');
    expect(h.actor.getSnapshot().context.reason).toBe('cancelled: enough');
    expect(h.answers).toEqual([{ key: 'c1', reply: { result: { run_id: 'r01', state: 'cancelled' } } }]);
    expect(h.checkpoints.at(-1)).toMatchObject({
      answer: { key: 'c1' },
      event: {
        type: 'run.cancelled',
        data: { reason: 'enough', by: 'ana', step_id: 'build', while: 'retrying' },
      },
      run: { state: 'cancelled', finished: true },
      step: { idx: 0, state: 'cancelled', retryAt: null },
    });
    expect(h.reports).toEqual(['queued', 'running', 'cancelled']);
    h.clock.increment(3_600_000);
    expect(h.attempts()).toEqual([1]);
  });

  it('a restored run resumes the wait from its due time once admitted', () => {
    // Attempt 2 failed; attempt 3 is due 4 s after "now" (the daemon restarted 6 s into a 10 s wait).
    const h = harness(policy(), { attempt: 2, retryDueAt: T0 + 4000 });
    expect(h.actor.getSnapshot().value).toBe('queued');
    h.actor.send({ type: 'run.admit' });
    expect(h.inRetryWait()).toBe(true);
    expect(h.events()).toEqual([]); // nothing to record: not a second run.started, not a step.started
    h.clock.increment(3999);
    expect(h.attempts()).toEqual([]);
    h.clock.increment(1);
    expect(h.attempts()).toEqual([3]);
    expect(h.events()).toEqual(['step.started']);
  });

  it('a restored run whose due time has passed starts its next attempt at once', () => {
    const h = harness(policy(), { attempt: 1, retryDueAt: T0 - 60_000 });
    h.actor.send({ type: 'run.admit' });
    h.clock.increment(0);
    expect(h.attempts()).toEqual([2]);
  });

  it('a restored wait can be cancelled', () => {
    const h = harness(policy(), { attempt: 1, retryDueAt: T0 + 4000 });
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'run.cancel', key: 'c', reason: 'stop' });
    expect(h.actor.getSnapshot().value).toBe('cancelled');
    h.clock.increment(10_000);
    expect(h.attempts()).toEqual([]);
  });
});

describe('run machine: retries and step outputs', () => {
  const report = (values: Record<string, unknown>, problems: string[] = []) => ({ values, problems });

  it('a retried attempt records its outputs but passes none on; the final attempt’s are the step’s', () => {
    const h = harness(policy({ limit: 1 }));
    h.actor.send({ type: 'run.admit' });
    expect(h.checkpoints.at(-1)?.step).toMatchObject({ state: 'running', attempt: 1, outputs: null });
    h.actor.send({ type: 'step.exited', outcome: code(1), outputs: report({ version: 'bad' }) });
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: { type: 'step.finished', data: { outcome: 'exited', outputs: { version: 'bad' } } },
      followedBy: { type: 'step.retrying' },
      // Recorded on the row (state retrying: never passed on), and so archived with attempt 1.
      step: { state: 'retrying', outputs: { version: 'bad' } },
    });
    h.clock.increment(5000);
    // The new attempt starts with cleared outputs, its predecessor's go to the step's history.
    expect(h.checkpoints.at(-1)?.step).toMatchObject({
      state: 'running',
      attempt: 2,
      archiveAttempt: true,
      outputs: null,
    });
    h.actor.send({ type: 'step.exited', outcome: code(0), outputs: report({ version: 'good' }) });
    // The last checkpoint is the next step's start.
    expect(h.checkpoints.at(-2)).toMatchObject({
      event: { type: 'step.finished', data: { outcome: 'succeeded', outputs: { version: 'good' } } },
      step: { state: 'succeeded', outputs: { version: 'good' } },
    });
    expect(h.started.at(-1)).toMatchObject({ stepIndex: 1, attempt: 1 });
  });

  it('never retries invalid_outputs, even with on: any: the run fails at once', () => {
    const h = harness(policy({ limit: 3 }));
    h.actor.send({ type: 'run.admit' });
    h.actor.send({
      type: 'step.exited',
      outcome: code(0),
      outputs: report({ count: 'many' }, ['count: expected an integer, got "many"']),
    });
    expect(h.inRetryWait()).toBe(false);
    expect(h.actor.getSnapshot().value).toBe('failed');
    const reason = 'invalid_outputs: count: expected an integer, got "many" (attempt 1 of 4)';
    expect(h.actor.getSnapshot().context.reason).toBe(reason);
    expect(h.checkpoints.at(-1)).toMatchObject({
      event: { type: 'step.finished', data: { exit_code: 0, outcome: 'invalid_outputs' } },
      followedBy: { type: 'run.failed', data: { reason } },
      step: { state: 'failed', exitCode: 0, reason, outputs: { count: 'many' } },
    });
    expect(h.retrying()).toEqual([]);
    h.clock.increment(3_600_000);
    expect(h.attempts()).toEqual([1]);
  });

  it('a failed exit whose outputs also have problems is retried as the exit code says', () => {
    const h = harness(policy({ limit: 1, on: { anyFailure: false, exitCodes: [75], timeout: false } }));
    h.actor.send({ type: 'run.admit' });
    h.actor.send({ type: 'step.exited', outcome: code(75), outputs: report({}, ['version: required']) });
    expect(h.inRetryWait()).toBe(true);
    expect(h.checkpoints.at(-1)?.step).toMatchObject({
      state: 'retrying',
      reason: 'step_failed: exit code 75 (attempt 1 of 2)',
    });
  });
});
