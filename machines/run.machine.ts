/**
 * One run of a workflow, as a child actor of the root (`systemId: run:<id>`).
 *
 * queued ──admit──▶ running ──(run step ok)──▶ running … ──▶ succeeded
 *   ▲                 │ │ └─(gate / input step)─▶ waiting ──decided/answered──▶ queued
 *   │                 │ └─(step failed / timed out)─▶ failed
 *   └─cancel─▶ cancelled ◀─ cancelling ◀─cancel─┘      waiting ──cancel / deny──▶ cancelled / failed
 *
 * Inside running: choosing ──▶ executing ──(attempt failed, `retry:` covers it)──▶ retrying
 * ──(retryWait)──▶ executing (attempt + 1); cancel while retrying ──▶ cancelled at once.
 *
 * The machine decides; it does no I/O. A `run` step executes in a spawned callback actor (`step`,
 * provided by the wiring) that reports output and its outcome; every transition is a
 * `checkpoint` (provided: one store transaction of the run's new state and its event); the
 * root is told of every state change (`run.state`) so it can count slots and answer status.
 * Runs need a slot from the root to execute steps (`run.admit`): waiting runs hold none.
 */
import { assign, enqueueActions, fromCallback, sendParent, sendTo, setup } from 'xstate';
import type { RunState } from '../src/protocol/control.js';
import {
  applied,
  cancelledWhilePaused,
  cancelledWhileRetrying,
  cancelledWhileRunning,
  currentStep,
  describeAttemptFailure,
  gateApproved,
  gateDenied,
  inputSubmitted,
  invalidOutputs,
  notWaitingFor,
  outputOfStep,
  runCancelling,
  runStarted,
  runSucceeded,
  runWaiting,
  stepFailed,
  stepRetrying,
  stepStarted,
  stepSucceeded,
  waitsAt,
} from './run-checkpoints.js';
import { retryWaitMs, shouldRetry } from './run-retry.js';
import type {
  Checkpoint,
  CommandAnswer,
  OutputChunk,
  PlannedStep,
  RunContext,
  RunEvent,
  RunInput,
  RunReport,
  StepRunnerEvent,
  StepRunnerInput,
} from './run-types.js';

export type * from './run-types.js';

export const runMachine = setup({
  types: {
    context: {} as RunContext,
    events: {} as RunEvent,
    input: {} as RunInput,
  },
  actors: {
    // Provided by the wiring: runs the step's process, sends step.output / step.exited.
    stepRunner: fromCallback<StepRunnerEvent, StepRunnerInput>(() => undefined),
  },
  actions: {
    /** Persists one transition (run row + step row + journal event, atomically); provided. */
    checkpoint: (_args, _params: Checkpoint) => undefined,
    /** Persists a chunk of step output as a `step.output` event; provided. */
    recordOutput: (_args, _params: { stepId: string; chunk: OutputChunk }) => undefined,
    report: sendParent(({ context }, params: { state: RunState; waiting?: boolean }): RunReport => {
      const step = currentStep(context);
      return {
        type: 'run.state',
        runId: context.runId,
        state: params.state,
        waitingFor:
          params.waiting && step !== undefined && step.kind !== 'run'
            ? { kind: step.kind, stepId: step.id }
            : null,
      };
    }),
    startStep: enqueueActions(({ enqueue, context }) => {
      enqueue.spawnChild('stepRunner', {
        id: 'step',
        input: {
          runId: context.runId,
          workflowId: context.plan.id,
          plan: context.plan,
          step: context.plan.steps[context.stepIndex] as PlannedStep,
          stepIndex: context.stepIndex,
          attempt: context.attempt,
        },
      });
    }),
    stopStep: enqueueActions(({ enqueue, self }) => {
      if (self.getSnapshot().children.step !== undefined) enqueue.stopChild('step');
    }),
    cancelStep: sendTo(
      'step',
      ({ event }): StepRunnerEvent => ({
        type: 'step.cancel',
        reason: event.type === 'run.cancel' ? event.reason : 'cancelled',
      }),
    ),
    /** Answers a command; after its checkpoint, so the answer never runs ahead of the store. */
    answer: sendParent(
      ({ context }, params: CommandAnswer): RunReport => ({
        type: 'run.answer',
        runId: context.runId,
        ...params,
      }),
    ),
    advance: assign({ stepIndex: ({ context }) => context.stepIndex + 1, attempt: 1 }),
    /** The failed attempt is to be retried: its next attempt is due after the policy's wait. */
    planRetry: assign({
      retryDueAt: ({ context }) => {
        const policy = currentStep(context)?.retry;
        return context.now() + (policy == null ? 0 : retryWaitMs(policy, context.attempt));
      },
    }),
    nextAttempt: assign({ attempt: ({ context }) => context.attempt + 1, retryDueAt: null }),
    setReason: assign({ reason: (_args, params: { reason: string }) => params.reason }),
  },
  guards: {
    allStepsDone: ({ context }) => context.stepIndex >= context.plan.steps.length,
    nextIsRun: ({ context }) => currentStep(context)?.kind === 'run',
    nextIsGate: ({ context }) => currentStep(context)?.kind === 'gate',
    resumeWaiting: ({ context }) => context.resume === 'waiting',
    neverStarted: ({ context }) => !context.started,
    /** Exit code 0, and outputs that satisfy the step's declaration. */
    stepSucceeded: ({ event }) =>
      event.type === 'step.exited' &&
      event.outcome.kind === 'exited' &&
      event.outcome.exitCode === 0 &&
      !invalidOutputs(event),
    /**
     * The attempt failed in a way the step's `retry.on` covers, and the limit is not reached.
     * Never an attempt that exited 0 with outputs that break the step's declaration
     * (`invalid_outputs`): a contract error, which another attempt of the same command repeats.
     */
    retryable: ({ context, event }) =>
      event.type === 'step.exited' &&
      !invalidOutputs(event) &&
      shouldRetry(currentStep(context)?.retry, context.attempt, event.outcome),
    /** The step waits to retry (a restored run: its due time came from the store). */
    retryPending: ({ context }) => context.retryDueAt !== null,
    approved: ({ event }) => event.type === 'gate.decide' && event.decision === 'approve',
    /** A decision or answers meant for another step or another kind of step than the run waits at. */
    notForThisStep: ({ context, event }) => {
      if (event.type !== 'gate.decide' && event.type !== 'input.submit') return false;
      const step = currentStep(context);
      const kind = event.type === 'gate.decide' ? 'gate' : 'input';
      return step?.kind !== kind || (event.stepId !== null && event.stepId !== step.id);
    },
  },
  delays: {
    /** A step process must be gone this long after a cancel; it kills with SIGKILL well before. */
    cancelWatchdog: 60_000,
    /** Until the next attempt is due; zero when that time has passed (a restored run). */
    retryWait: ({ context }) => Math.max(0, (context.retryDueAt ?? 0) - context.now()),
  },
}).createMachine({
  id: 'run',
  description: 'One workflow run: its steps, its checkpoints, and its pauses at gates and inputs.',
  context: ({ input }) => ({
    runId: input.runId,
    plan: input.plan,
    stepIndex: input.stepIndex,
    attempt: input.attempt,
    reason: null,
    cancel: null,
    resume: input.resume,
    // A restored run that got past its first step has started before.
    started:
      input.stepIndex > 0 ||
      input.attempt > 1 ||
      input.resume === 'waiting' ||
      input.retryDueAt !== undefined,
    retryDueAt: input.retryDueAt ?? null,
    now: input.now ?? Date.now,
  }),
  initial: 'restoring',
  // States that take a command handle it themselves; anywhere else it is answered, never dropped.
  on: {
    'gate.decide': {
      actions: {
        type: 'answer',
        params: ({ context, event }) => notWaitingFor(context, event, 'has moved on'),
      },
    },
    'input.submit': {
      actions: {
        type: 'answer',
        params: ({ context, event }) => notWaitingFor(context, event, 'has moved on'),
      },
    },
  },
  states: {
    restoring: {
      description: 'Picks the state a new or recovered run starts in.',
      always: [{ guard: 'resumeWaiting', target: 'waiting' }, { target: 'queued' }],
    },
    queued: {
      description: 'Waiting for one of the root’s execution slots (--max-runs).',
      entry: { type: 'report', params: { state: 'queued' } },
      on: {
        'run.admit': [
          {
            guard: 'neverStarted',
            target: 'running',
            actions: [assign({ started: true }), { type: 'checkpoint', params: runStarted }],
          },
          { target: 'running' },
        ],
        'run.cancel': {
          target: 'cancelled',
          actions: [
            { type: 'setReason', params: ({ event }) => ({ reason: `cancelled: ${event.reason}` }) },
            { type: 'checkpoint', params: cancelledWhilePaused('queued') },
            { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelled') },
          ],
        },
      },
    },
    running: {
      description: 'Holding a slot: executing run steps until a pause, the end, or a failure.',
      entry: { type: 'report', params: { state: 'running' } },
      initial: 'choosing',
      states: {
        choosing: {
          always: [
            { guard: 'retryPending', target: 'retrying' },
            {
              guard: 'allStepsDone',
              target: '#run.succeeded',
              actions: { type: 'checkpoint', params: runSucceeded },
            },
            { guard: 'nextIsRun', target: 'executing' },
            {
              target: '#run.waiting',
              actions: { type: 'checkpoint', params: runWaiting },
            },
          ],
        },
        executing: {
          description: 'A run step’s process is running in its own process group.',
          entry: [{ type: 'checkpoint', params: stepStarted }, 'startStep'],
          on: {
            'step.output': { actions: { type: 'recordOutput', params: outputOfStep } },
            'step.exited': [
              {
                guard: 'stepSucceeded',
                target: 'choosing',
                actions: ['stopStep', { type: 'checkpoint', params: stepSucceeded }, 'advance'],
              },
              {
                guard: 'retryable',
                target: 'retrying',
                actions: ['stopStep', 'planRetry', { type: 'checkpoint', params: stepRetrying }],
              },
              {
                target: '#run.failed',
                actions: [
                  'stopStep',
                  {
                    type: 'setReason',
                    params: ({ context, event }) => ({
                      reason: describeAttemptFailure(context, event),
                    }),
                  },
                  { type: 'checkpoint', params: stepFailed },
                ],
              },
            ],
            'run.cancel': {
              target: '#run.cancelling',
              actions: [
                { type: 'setReason', params: ({ event }) => ({ reason: `cancelled: ${event.reason}` }) },
                assign({ cancel: ({ event }) => ({ reason: event.reason, by: event.by ?? null }) }),
                { type: 'checkpoint', params: runCancelling },
                'cancelStep',
                { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelling') },
              ],
            },
          },
        },
        retrying: {
          // The run keeps its slot while it waits: the retry is the step still in progress, so
          // the next attempt starts when it is due rather than behind the queue (a queue wait
          // would stretch the backoff by however long other runs take), and the wait is short
          // (at most an hour, see MAX_RETRY_DELAY_MS). Its due time is on the step row: a
          // restarted daemon resumes the wait (src/runs/recovery.ts), delays are not restored.
          description:
            'The attempt failed and is retried: waiting for the next attempt to be due; no process runs.',
          after: {
            retryWait: { target: 'executing', actions: 'nextAttempt' },
          },
          on: {
            'run.cancel': {
              target: '#run.cancelled',
              actions: [
                { type: 'setReason', params: ({ event }) => ({ reason: `cancelled: ${event.reason}` }) },
                { type: 'checkpoint', params: cancelledWhileRetrying },
                { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelled') },
              ],
            },
          },
        },
      },
    },
    waiting: {
      description: 'Paused at a gate or an input step; holds no slot.',
      entry: { type: 'report', params: { state: 'waiting', waiting: true } },
      on: {
        'gate.decide': [
          {
            guard: 'notForThisStep',
            actions: {
              type: 'answer',
              params: ({ context, event }) => notWaitingFor(context, event, waitsAt(context)),
            },
          },
          {
            guard: 'approved',
            target: 'queued',
            actions: [
              { type: 'checkpoint', params: gateApproved },
              'advance',
              { type: 'answer', params: ({ context, event }) => applied(context, event, 'queued') },
            ],
          },
          {
            target: 'failed',
            actions: [
              { type: 'setReason', params: { reason: 'gate_denied' } },
              { type: 'checkpoint', params: gateDenied },
              { type: 'answer', params: ({ context, event }) => applied(context, event, 'failed') },
            ],
          },
        ],
        'input.submit': [
          {
            guard: 'notForThisStep',
            actions: {
              type: 'answer',
              params: ({ context, event }) => notWaitingFor(context, event, waitsAt(context)),
            },
          },
          {
            target: 'queued',
            actions: [
              { type: 'checkpoint', params: inputSubmitted },
              'advance',
              { type: 'answer', params: ({ context, event }) => applied(context, event, 'queued') },
            ],
          },
        ],
        'run.cancel': {
          target: 'cancelled',
          actions: [
            { type: 'setReason', params: ({ event }) => ({ reason: `cancelled: ${event.reason}` }) },
            { type: 'checkpoint', params: cancelledWhilePaused('waiting') },
            { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelled') },
          ],
        },
      },
    },
    cancelling: {
      description:
        'The step’s process group got SIGTERM (SIGKILL after the grace period); waiting for it to go.',
      entry: { type: 'report', params: { state: 'cancelling' } },
      on: {
        // Already on its way: nothing more to do but say so.
        'run.cancel': {
          actions: { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelling') },
        },
        'step.output': { actions: { type: 'recordOutput', params: outputOfStep } },
        'step.exited': {
          target: 'cancelled',
          actions: ['stopStep', { type: 'checkpoint', params: cancelledWhileRunning }],
        },
      },
      after: {
        cancelWatchdog: {
          target: 'cancelled',
          actions: ['stopStep', { type: 'checkpoint', params: cancelledWhileRunning }],
        },
      },
    },
    succeeded: {
      type: 'final',
      entry: { type: 'report', params: { state: 'succeeded' } },
    },
    failed: {
      type: 'final',
      entry: { type: 'report', params: { state: 'failed' } },
    },
    cancelled: {
      type: 'final',
      entry: { type: 'report', params: { state: 'cancelled' } },
    },
  },
});
