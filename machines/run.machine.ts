/**
 * One run of a workflow, as a child actor of the root (`systemId: run:<id>`).
 *
 * queued ──admit──▶ running ──(run step ok)──▶ running … ──▶ succeeded
 *   ▲                 │ │ └─(gate / input step)─▶ waiting ──decided/answered──▶ queued
 *   │                 │ └─(step failed / timed out)─▶ failed
 *   └─cancel─▶ cancelled ◀─ cancelling ◀─cancel─┘      waiting ──cancel / deny──▶ cancelled / failed
 *
 * The machine decides; it does no I/O. A `run` step executes in a spawned callback actor (`step`,
 * provided by the wiring) that reports output and its outcome; every transition is a
 * `checkpoint` (provided: one store transaction of the run's new state and its event); the
 * root is told of every state change (`run.state`) so it can count slots and answer status.
 * Runs need a slot from the root to execute steps (`run.admit`): waiting runs hold none.
 */
import { assign, enqueueActions, fromCallback, sendParent, sendTo, setup } from 'xstate';
import type { ErrorCode } from '../src/errors/catalogue.js';
import type { RunState, WireError } from '../src/protocol/control.js';
import type { OutputChunk, StepOutcome } from '../src/protocol/steps.js';

/** The part of a workflow step the machine decides on (a workflow `Step` satisfies it). */
export interface PlannedStep {
  readonly id: string;
  readonly kind: 'run' | 'gate' | 'input';
  readonly retryOnRestart?: boolean;
}

/** The part of a workflow the machine needs; the shared, frozen definition satisfies it. */
export interface RunPlan {
  readonly id: string;
  readonly steps: readonly PlannedStep[];
}

export type { OutputChunk, StepOutcome };

/** Where a (restored) run starts. */
export type RunResume = 'queued' | 'waiting';

export interface RunInput {
  readonly runId: string;
  readonly plan: RunPlan;
  readonly stepIndex: number;
  readonly attempt: number;
  readonly resume: RunResume;
}

export interface RunContext {
  readonly runId: string;
  readonly plan: RunPlan;
  stepIndex: number;
  /** Attempt of the current step (a `retry_on_restart` step re-runs with attempt + 1). */
  attempt: number;
  reason: string | null;
  /** Who cancelled the run and why (recorded once the step's processes are gone). */
  cancel: { reason: string; by: string | null } | null;
  /** Where the run started (new and restored queued runs: queued; restored paused runs: waiting). */
  readonly resume: RunResume;
  /** Whether `run.started` was recorded (the first admission to a slot). */
  started: boolean;
}

/** The answer to a command (a gate decision, answers, a cancel), for the caller that sent it. */
export type CommandReply =
  | { readonly result: { readonly run_id: string; readonly state: RunState } }
  | { readonly error: WireError };

/** A command's answer, addressed by the key of the call (socket) or command (gateway) it answers. */
export interface CommandAnswer {
  readonly key: string;
  readonly reply: CommandReply;
}

/** One durable transition: the run's new state and the event that records it. */
export interface Checkpoint {
  /**
   * The command this transition applies, answered in the same transaction (a gateway command's
   * result is journaled with its effect) and only then to its caller: nothing is ever reported
   * applied that a crash could undo.
   */
  readonly answer?: CommandAnswer;
  readonly event: { readonly type: string; readonly data: Record<string, unknown> };
  /** A second event recorded in the same transaction (a step that fails and fails its run). */
  readonly followedBy?: { readonly type: string; readonly data: Record<string, unknown> };
  readonly run?: {
    readonly state?: RunState;
    readonly reason?: string | null;
    readonly stepIndex?: number;
    readonly attempt?: number;
    /** The waiting step (its kind and prompt come from the definition), or null when not waiting. */
    readonly waitingAt?: number | null;
    /** Answers of an input step, to store under its step id. */
    readonly answers?: { readonly stepId: string; readonly values: Record<string, unknown> };
    readonly finished?: boolean;
  };
  readonly step?: {
    readonly idx: number;
    readonly state: 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
    readonly attempt?: number;
    readonly exitCode?: number | null;
    readonly reason?: string | null;
    readonly started?: boolean;
    readonly finished?: boolean;
  };
}

/**
 * Commands carry the key their answer goes back under and, for a gate decision or answers, the
 * step they were checked against: a run that has moved on since answers RUN_NOT_WAITING instead
 * of applying them to another step.
 */
export type RunCommand =
  | { type: 'run.cancel'; key: string; reason: string; by?: string }
  | {
      type: 'gate.decide';
      key: string;
      stepId: string | null;
      decision: 'approve' | 'deny';
      by?: string;
      comment?: string;
    }
  | {
      type: 'input.submit';
      key: string;
      stepId: string | null;
      answers: Record<string, unknown>;
      by?: string;
    };

export type RunEvent =
  | { type: 'run.admit' }
  | RunCommand
  | { type: 'step.output'; chunk: OutputChunk }
  | { type: 'step.exited'; outcome: StepOutcome };

/** What the root hears from a run: its state changes, and its answers to commands. */
export type RunReport =
  | {
      type: 'run.state';
      runId: string;
      state: RunState;
      /** The step the run waits at, when waiting. */
      waitingFor: { kind: 'gate' | 'input'; stepId: string } | null;
    }
  | ({ type: 'run.answer'; runId: string } & CommandAnswer);

export type RunStateReport = Extract<RunReport, { type: 'run.state' }>;

export interface StepRunnerInput {
  readonly runId: string;
  readonly stepIndex: number;
  readonly attempt: number;
}

export type StepRunnerEvent = { type: 'step.cancel'; reason: string };

const currentStep = (context: RunContext): PlannedStep | undefined => context.plan.steps[context.stepIndex];

function describeFailure(outcome: StepOutcome): string {
  switch (outcome.kind) {
    case 'exited':
      return `step_failed: exit code ${outcome.exitCode}`;
    case 'signalled':
      return `step_failed: killed by ${outcome.signal}`;
    case 'timed_out':
      return `timeout: the step ran longer than ${outcome.timeoutMs} ms`;
    case 'spawn_failed':
      return `step_failed: ${outcome.message}`;
    case 'cancelled':
      return `cancelled: ${outcome.reason}`;
  }
}

/** A command's successful answer: the state the run has reached by taking it. */
function applied(context: RunContext, event: RunEvent, state: RunState): CommandAnswer {
  return { key: (event as RunCommand).key, reply: { result: { run_id: context.runId, state } } };
}

/** Why a gate decision or answers cannot be taken in the run's present state. */
function notWaitingFor(context: RunContext, event: RunEvent, where: string): CommandAnswer {
  const wanted = event.type === 'gate.decide' ? 'a gate decision' : 'answers';
  const named = 'stepId' in event && event.stepId !== null ? ` at step "${event.stepId}"` : '';
  return {
    key: (event as RunCommand).key,
    reply: {
      error: {
        code: 'RUN_NOT_WAITING' satisfies ErrorCode,
        message: `run ${context.runId} ${where}: it is not waiting for ${wanted}${named}`,
      },
    },
  };
}

function cancelledWhileRunning({ context }: { context: RunContext }): Checkpoint {
  return {
    event: {
      type: 'run.cancelled',
      data: {
        reason: context.cancel?.reason ?? null,
        by: context.cancel?.by ?? null,
        step_id: currentStep(context)?.id,
        while: 'running',
      },
    },
    run: { state: 'cancelled', reason: context.reason, finished: true },
    step: { idx: context.stepIndex, state: 'cancelled', finished: true, reason: context.reason },
  };
}

/** A cancel while no process runs (queued or waiting): nothing to wait for, one checkpoint. */
function cancelledWhilePaused(where: 'queued' | 'waiting') {
  return ({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint => {
    const cancel = event.type === 'run.cancel' ? event : { reason: 'cancelled', by: undefined };
    return {
      ...(event.type === 'run.cancel' ? { answer: applied(context, event, 'cancelled') } : {}),
      event: { type: 'run.cancelled', data: { reason: cancel.reason, by: cancel.by ?? null, while: where } },
      run: { state: 'cancelled', reason: `cancelled: ${cancel.reason}`, finished: true, waitingAt: null },
      // A waiting run stands at its gate or input step, which ends with it.
      ...(where === 'waiting'
        ? { step: { idx: context.stepIndex, state: 'cancelled', finished: true } }
        : {}),
    };
  };
}

const waitsAt = (context: RunContext): string => {
  const step = currentStep(context);
  return `waits at ${step?.kind ?? 'a'} step "${step?.id ?? '?'}"`;
};

/** The `gate.decided` event of a decision on the current step. */
function gateDecided(context: RunContext, event: RunEvent): Checkpoint['event'] {
  const decide = event as Extract<RunEvent, { type: 'gate.decide' }>;
  return {
    type: 'gate.decided',
    data: {
      step_id: currentStep(context)?.id,
      decision: decide.decision,
      by: decide.by ?? null,
      comment: decide.comment ?? null,
    },
  };
}

function gateApproved({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
  return {
    answer: applied(context, event, 'queued'),
    event: gateDecided(context, event),
    run: { state: 'queued', stepIndex: context.stepIndex + 1, waitingAt: null },
    step: { idx: context.stepIndex, state: 'succeeded', finished: true, reason: 'approved' },
  };
}

function gateDenied({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
  return {
    answer: applied(context, event, 'failed'),
    event: gateDecided(context, event),
    step: { idx: context.stepIndex, state: 'failed', finished: true, reason: 'denied' },
    followedBy: { type: 'run.failed', data: { reason: 'gate_denied', step_id: currentStep(context)?.id } },
    run: { state: 'failed', reason: 'gate_denied', finished: true, waitingAt: null },
  };
}

function inputSubmitted({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
  const submit = event as Extract<RunEvent, { type: 'input.submit' }>;
  const stepId = currentStep(context)?.id ?? '';
  return {
    answer: applied(context, event, 'queued'),
    event: {
      type: 'input.submitted',
      data: { step_id: stepId, answers: submit.answers, by: submit.by ?? null },
    },
    run: {
      state: 'queued',
      stepIndex: context.stepIndex + 1,
      waitingAt: null,
      answers: { stepId, values: submit.answers },
    },
    step: { idx: context.stepIndex, state: 'succeeded', finished: true },
  };
}

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
        input: { runId: context.runId, stepIndex: context.stepIndex, attempt: context.attempt },
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
    setReason: assign({ reason: (_args, params: { reason: string }) => params.reason }),
  },
  guards: {
    allStepsDone: ({ context }) => context.stepIndex >= context.plan.steps.length,
    nextIsRun: ({ context }) => currentStep(context)?.kind === 'run',
    nextIsGate: ({ context }) => currentStep(context)?.kind === 'gate',
    resumeWaiting: ({ context }) => context.resume === 'waiting',
    neverStarted: ({ context }) => !context.started,
    stepSucceeded: ({ event }) =>
      event.type === 'step.exited' && event.outcome.kind === 'exited' && event.outcome.exitCode === 0,
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
    started: input.stepIndex > 0 || input.attempt > 1 || input.resume === 'waiting',
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
            actions: [
              assign({ started: true }),
              {
                type: 'checkpoint',
                params: ({ context }) => ({
                  event: {
                    type: 'run.started',
                    data: { workflow_id: context.plan.id, steps: context.plan.steps.length },
                  },
                }),
              },
            ],
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
            {
              guard: 'allStepsDone',
              target: '#run.succeeded',
              actions: {
                type: 'checkpoint',
                params: ({ context }) => ({
                  event: { type: 'run.succeeded', data: { steps: context.plan.steps.length } },
                  run: { state: 'succeeded', reason: null, finished: true, waitingAt: null },
                }),
              },
            },
            { guard: 'nextIsRun', target: 'executing' },
            {
              target: '#run.waiting',
              actions: {
                type: 'checkpoint',
                params: ({ context }) => ({
                  event: {
                    type: 'run.waiting',
                    data: { step_id: currentStep(context)?.id, kind: currentStep(context)?.kind },
                  },
                  run: { state: 'waiting', stepIndex: context.stepIndex, waitingAt: context.stepIndex },
                  step: { idx: context.stepIndex, state: 'waiting', attempt: 1, started: true },
                }),
              },
            },
          ],
        },
        executing: {
          description: 'A run step’s process is running in its own process group.',
          entry: [
            {
              type: 'checkpoint',
              params: ({ context }) => ({
                event: {
                  type: 'step.started',
                  data: {
                    step_id: currentStep(context)?.id,
                    index: context.stepIndex,
                    attempt: context.attempt,
                  },
                },
                run: {
                  state: 'running',
                  stepIndex: context.stepIndex,
                  attempt: context.attempt,
                  waitingAt: null,
                },
                step: { idx: context.stepIndex, state: 'running', attempt: context.attempt, started: true },
              }),
            },
            'startStep',
          ],
          on: {
            'step.output': {
              actions: {
                type: 'recordOutput',
                params: ({ context, event }) => ({
                  stepId: currentStep(context)?.id ?? '',
                  chunk: event.chunk,
                }),
              },
            },
            'step.exited': [
              {
                guard: 'stepSucceeded',
                target: 'choosing',
                actions: [
                  'stopStep',
                  {
                    type: 'checkpoint',
                    params: ({ context }) => ({
                      event: {
                        type: 'step.finished',
                        data: { step_id: currentStep(context)?.id, exit_code: 0, outcome: 'succeeded' },
                      },
                      run: { stepIndex: context.stepIndex + 1 },
                      step: { idx: context.stepIndex, state: 'succeeded', exitCode: 0, finished: true },
                    }),
                  },
                  'advance',
                ],
              },
              {
                target: '#run.failed',
                actions: [
                  'stopStep',
                  {
                    type: 'setReason',
                    params: ({ event }) => ({ reason: describeFailure(event.outcome) }),
                  },
                  {
                    type: 'checkpoint',
                    params: ({ context, event }) => ({
                      event: {
                        type: 'step.finished',
                        data: {
                          step_id: currentStep(context)?.id,
                          exit_code: event.outcome.kind === 'exited' ? event.outcome.exitCode : null,
                          outcome: event.outcome.kind,
                        },
                      },
                      step: {
                        idx: context.stepIndex,
                        state: 'failed',
                        exitCode: event.outcome.kind === 'exited' ? event.outcome.exitCode : null,
                        reason: context.reason,
                        finished: true,
                      },
                      followedBy: {
                        type: 'run.failed',
                        data: { reason: context.reason, step_id: currentStep(context)?.id },
                      },
                      run: { state: 'failed', reason: context.reason, finished: true },
                    }),
                  },
                ],
              },
            ],
            'run.cancel': {
              target: '#run.cancelling',
              actions: [
                { type: 'setReason', params: ({ event }) => ({ reason: `cancelled: ${event.reason}` }) },
                assign({ cancel: ({ event }) => ({ reason: event.reason, by: event.by ?? null }) }),
                {
                  type: 'checkpoint',
                  params: ({ context, event }) => ({
                    answer: applied(context, event, 'cancelling'),
                    event: {
                      type: 'run.cancelling',
                      data: { reason: event.reason, by: event.by ?? null, step_id: currentStep(context)?.id },
                    },
                    run: { state: 'cancelling', reason: `cancelled: ${event.reason}` },
                  }),
                },
                'cancelStep',
                { type: 'answer', params: ({ context, event }) => applied(context, event, 'cancelling') },
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
        'step.output': {
          actions: {
            type: 'recordOutput',
            params: ({ context, event }) => ({ stepId: currentStep(context)?.id ?? '', chunk: event.chunk }),
          },
        },
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
