/**
 * The run machine's pure builders: what each transition records (its `checkpoint`), and the
 * answers to commands. Named, so that the chart in run.machine.ts reads like the state table in
 * docs/architecture.md. No I/O.
 */
import type { ErrorCode } from '../src/errors/catalogue.js';
import type { RunState } from '../src/protocol/control.js';
import { attemptSuffix, maxAttempts, retryWaitMs } from './run-retry.js';
import type {
  Checkpoint,
  CommandAnswer,
  OutputChunk,
  PlannedStep,
  RunCommand,
  RunContext,
  RunEvent,
  StepOutcome,
} from './run-types.js';

/** What a builder gets from XState: the context and the event of the transition. */
interface Args {
  readonly context: RunContext;
  readonly event: RunEvent;
}

export const currentStep = (context: RunContext): PlannedStep | undefined =>
  context.plan.steps[context.stepIndex];

export function describeFailure(outcome: StepOutcome): string {
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

/**
 * Why a step that ended failed: its outcome, or, when it exited 0, its outputs
 * (`invalid_outputs: line 3: …; version: required`).
 */
export function describeStepFailure(event: Extract<RunEvent, { type: 'step.exited' }>): string {
  if (invalidOutputs(event)) return `invalid_outputs: ${event.outputs?.problems.join('; ') ?? ''}`;
  return describeFailure(event.outcome);
}

/**
 * Exit code 0, and yet what the step wrote to CHARTER_OUTPUT does not satisfy it: the step
 * fails `invalid_outputs`, and is never retried (see docs/workflows.md#retries).
 */
export function invalidOutputs(event: Extract<RunEvent, { type: 'step.exited' }>): boolean {
  const { outcome, outputs } = event;
  return (
    outcome.kind === 'exited' &&
    outcome.exitCode === 0 &&
    outputs !== undefined &&
    outputs.problems.length > 0
  );
}

/** The outputs an ended step reported, as they are recorded (none when it reported none). */
function endedOutputs(event: RunEvent): Readonly<Record<string, unknown>> {
  return event.type === 'step.exited' ? (event.outputs?.values ?? {}) : {};
}

/**
 * Why the current attempt failed (its outcome, or its outputs: see {@link describeStepFailure});
 * for a step with retries, also which attempt it was.
 */
export function describeAttemptFailure(
  context: RunContext,
  event: Extract<RunEvent, { type: 'step.exited' }>,
): string {
  return `${describeStepFailure(event)}${attemptSuffix(currentStep(context)?.retry, context.attempt)}`;
}

/** A command's successful answer: the state the run has reached by taking it. */
export function applied(context: RunContext, event: RunEvent, state: RunState): CommandAnswer {
  return { key: (event as RunCommand).key, reply: { result: { run_id: context.runId, state } } };
}

/** Why a gate decision or answers cannot be taken in the run's present state. */
export function notWaitingFor(context: RunContext, event: RunEvent, where: string): CommandAnswer {
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

export function cancelledWhileRunning({ context }: { context: RunContext }): Checkpoint {
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
export function cancelledWhilePaused(where: 'queued' | 'waiting') {
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

/** A cancel while the step waits to retry: no process runs, so the run is cancelled at once. */
export function cancelledWhileRetrying({ context, event }: Args): Checkpoint {
  const cancel = event as Extract<RunEvent, { type: 'run.cancel' }>;
  const reason = `cancelled: ${cancel.reason}`;
  return {
    answer: applied(context, event, 'cancelled'),
    event: {
      type: 'run.cancelled',
      data: {
        reason: cancel.reason,
        by: cancel.by ?? null,
        step_id: currentStep(context)?.id,
        while: 'retrying',
      },
    },
    run: { state: 'cancelled', reason, finished: true, waitingAt: null },
    // The attempt that failed keeps its end and exit code; the step ends cancelled.
    step: { idx: context.stepIndex, state: 'cancelled', reason, retryAt: null },
  };
}

export const waitsAt = (context: RunContext): string => {
  const step = currentStep(context);
  return `waits at ${step?.kind ?? 'a'} step "${step?.id ?? '?'}"`;
};

/** The `gate.decided` event of a decision on the current step. */
export function gateDecided(context: RunContext, event: RunEvent): Checkpoint['event'] {
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

export function gateApproved({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
  return {
    answer: applied(context, event, 'queued'),
    event: gateDecided(context, event),
    run: { state: 'queued', stepIndex: context.stepIndex + 1, waitingAt: null },
    step: { idx: context.stepIndex, state: 'succeeded', finished: true, reason: 'approved' },
  };
}

export function gateDenied({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
  return {
    answer: applied(context, event, 'failed'),
    event: gateDecided(context, event),
    step: { idx: context.stepIndex, state: 'failed', finished: true, reason: 'denied' },
    followedBy: { type: 'run.failed', data: { reason: 'gate_denied', step_id: currentStep(context)?.id } },
    run: { state: 'failed', reason: 'gate_denied', finished: true, waitingAt: null },
  };
}

export function inputSubmitted({ context, event }: { context: RunContext; event: RunEvent }): Checkpoint {
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

export function runStarted({ context }: Args): Checkpoint {
  return {
    event: { type: 'run.started', data: { workflow_id: context.plan.id, steps: context.plan.steps.length } },
  };
}

export function runSucceeded({ context }: Args): Checkpoint {
  return {
    event: { type: 'run.succeeded', data: { steps: context.plan.steps.length } },
    run: { state: 'succeeded', reason: null, finished: true, waitingAt: null },
  };
}

/** The run reached a gate or an input step: it waits there, holding no slot. */
export function runWaiting({ context }: Args): Checkpoint {
  const step = currentStep(context);
  return {
    event: { type: 'run.waiting', data: { step_id: step?.id, kind: step?.kind } },
    run: { state: 'waiting', stepIndex: context.stepIndex, waitingAt: context.stepIndex },
    step: { idx: context.stepIndex, state: 'waiting', attempt: 1, started: true },
  };
}

export function stepStarted({ context }: Args): Checkpoint {
  return {
    event: {
      type: 'step.started',
      data: { step_id: currentStep(context)?.id, index: context.stepIndex, attempt: context.attempt },
    },
    run: { state: 'running', stepIndex: context.stepIndex, attempt: context.attempt, waitingAt: null },
    step: {
      idx: context.stepIndex,
      state: 'running',
      attempt: context.attempt,
      started: true,
      // A new attempt starts without outputs: an earlier attempt's are in its step.finished
      // event, and in the step's history with the rest of that attempt.
      outputs: null,
      // A later attempt: the step row is this attempt's; the one before goes to its history.
      ...(context.attempt > 1
        ? { archiveAttempt: true, finished: false, exitCode: null, reason: null, retryAt: null }
        : {}),
    },
  };
}

/** The step succeeded; its outputs are recorded with it, and so passed on to later steps. */
export function stepSucceeded({ context, event }: Args): Checkpoint {
  const outputs = endedOutputs(event);
  return {
    event: {
      type: 'step.finished',
      data: { step_id: currentStep(context)?.id, exit_code: 0, outcome: 'succeeded', outputs },
    },
    // The next step starts at attempt 1 (a restored run reads the attempt from the run row).
    run: { stepIndex: context.stepIndex + 1, attempt: 1 },
    step: { idx: context.stepIndex, state: 'succeeded', exitCode: 0, finished: true, outputs },
  };
}

/**
 * The step failed, and so does the run: two events, one transaction. Its outputs are recorded
 * (they help to see why) but never passed on: only a succeeded step's are.
 */
export function stepFailed({ context, event }: Args): Checkpoint {
  const outcome = (event as Extract<RunEvent, { type: 'step.exited' }>).outcome;
  const exitCode = outcome.kind === 'exited' ? outcome.exitCode : null;
  const stepId = currentStep(context)?.id;
  const outputs = endedOutputs(event);
  // Exit code 0 and yet failed: its outputs did not satisfy the step.
  const kind = outcome.kind === 'exited' && outcome.exitCode === 0 ? 'invalid_outputs' : outcome.kind;
  return {
    event: { type: 'step.finished', data: { step_id: stepId, exit_code: exitCode, outcome: kind, outputs } },
    step: {
      idx: context.stepIndex,
      state: 'failed',
      exitCode,
      reason: context.reason,
      finished: true,
      outputs,
    },
    followedBy: { type: 'run.failed', data: { reason: context.reason, step_id: stepId } },
    run: { state: 'failed', reason: context.reason, finished: true },
  };
}

/**
 * The attempt failed and will be retried: it ends (`step.finished`), and `step.retrying` says
 * when the next one is due, in one transaction with the due time on the step row, which is what
 * a restarted daemon resumes the wait from. `context.retryDueAt` is already set.
 */
export function stepRetrying({ context, event }: Args): Checkpoint {
  const exited = event as Extract<RunEvent, { type: 'step.exited' }>;
  const { outcome } = exited;
  const exitCode = outcome.kind === 'exited' ? outcome.exitCode : null;
  const step = currentStep(context);
  const inMs = step?.retry == null ? 0 : retryWaitMs(step.retry, context.attempt);
  const dueAt = context.retryDueAt ?? context.now() + inMs;
  const reason = describeAttemptFailure(context, exited);
  const retryAt = new Date(dueAt).toISOString();
  // The failed attempt's outputs are recorded (they help to see why) and never passed on: the
  // next attempt starts without them and they go to the step's history with this attempt.
  const outputs = endedOutputs(event);
  return {
    event: {
      type: 'step.finished',
      data: { step_id: step?.id, exit_code: exitCode, outcome: outcome.kind, outputs },
    },
    followedBy: {
      type: 'step.retrying',
      data: {
        step_id: step?.id,
        attempt: context.attempt,
        next_attempt: context.attempt + 1,
        max_attempts: step?.retry == null ? null : maxAttempts(step.retry),
        in_ms: inMs,
        due_at: retryAt,
        reason: describeFailure(outcome),
      },
    },
    step: { idx: context.stepIndex, state: 'retrying', exitCode, reason, finished: true, retryAt, outputs },
  };
}

/** A cancel while a step runs: recorded now; `run.cancelled` follows once its processes are gone. */
export function runCancelling({ context, event }: Args): Checkpoint {
  const cancel = event as Extract<RunEvent, { type: 'run.cancel' }>;
  return {
    answer: applied(context, event, 'cancelling'),
    event: {
      type: 'run.cancelling',
      data: { reason: cancel.reason, by: cancel.by ?? null, step_id: currentStep(context)?.id },
    },
    run: { state: 'cancelling', reason: `cancelled: ${cancel.reason}` },
  };
}

/** A chunk of the current step's output, to record. */
export function outputOfStep({ context, event }: Args): { stepId: string; chunk: OutputChunk } {
  return {
    stepId: currentStep(context)?.id ?? '',
    chunk: (event as Extract<RunEvent, { type: 'step.output' }>).chunk,
  };
}
