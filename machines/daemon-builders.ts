/**
 * The root machine's pure builders: its first context, the lifecycle entries it journals, the
 * answers it gives, and how it folds in what the link and a stop request say. Named, so that the
 * chart in daemon.machine.ts reads like its table in docs/architecture.md. No I/O.
 */
import type { ErrorCode } from '../src/errors/catalogue.js';
import { emptyRunCounts } from '../src/protocol/run-counts.js';
import type {
  ControlActorEvent,
  DaemonContext,
  DaemonEvent,
  DaemonInput,
  DaemonOutput,
  JournalParams,
  RecoveryReport,
  RunCommandEvent,
} from './daemon-types.js';
import type { LinkReport } from './gateway-link.machine.js';
import type { RetentionReport } from './retention.machine.js';
import { executing, holdsSlot } from './run-registry.js';
import type { RunInput, RunPlan } from './run-types.js';

interface Args {
  readonly context: DaemonContext;
}

export function initialContext(input: DaemonInput): DaemonContext {
  return {
    facts: input.facts,
    drainTimeoutMs: input.drainTimeoutMs,
    commandsInFlight: {},
    submitting: 0,
    maxRuns: input.maxRuns,
    maxQueuedRuns: input.maxQueuedRuns,
    runs: {},
    liveCounts: emptyRunCounts(),
    queue: [],
    restoring: [],
    finished: { succeeded: 0, failed: 0, cancelled: 0 },
    gateway: {
      state: input.facts.gatewayUrl === null ? 'offline' : 'connecting',
      since: input.facts.startedAt,
      lastError: null,
      connId: null,
      retryAt: null,
    },
    previousShutdown: null,
    stopReason: null,
    drainTimedOut: false,
    failure: null,
    retention: input.retention ?? null,
  };
}

/** What recovery found: how the previous daemon ended, the runs to restore, the finished counts. */
export function recovered(
  report: RecoveryReport,
): Pick<DaemonContext, 'previousShutdown' | 'restoring' | 'finished'> {
  return { previousShutdown: report.previousShutdown, restoring: report.runs, finished: report.finished };
}

/** How the daemon ended: exit code 1 when something failed. */
export function outputOf(context: DaemonContext): DaemonOutput {
  return {
    exitCode: context.failure === null ? 0 : 1,
    failure: context.failure,
    drainTimedOut: context.drainTimedOut,
  };
}

// ---- the lifecycle entries ---------------------------------------------------------------------

export function daemonStarted({ context }: Args): JournalParams {
  return {
    type: 'daemon.started',
    data: {
      pid: context.facts.pid,
      version: context.facts.version,
      epoch: context.facts.epoch,
      previous_shutdown: context.previousShutdown,
      restored_runs: context.restoring.length,
    },
  };
}

export function daemonStopping({ context }: Args): JournalParams {
  return {
    type: 'daemon.stopping',
    data: { reason: context.stopReason, executing_runs: executing(context) },
  };
}

export function daemonStopped({ context }: Args): JournalParams {
  return {
    type: 'daemon.stopped',
    data: {
      reason: context.stopReason,
      drain_timed_out: context.drainTimedOut,
      abandoned_work: Object.entries(context.runs)
        .filter(([, run]) => holdsSlot(run.state))
        .map(([runId]) => `run:${runId}`),
      failure: context.failure,
    },
  };
}

// ---- answers -------------------------------------------------------------------------------------

export const DRAINING_NO_RUNS = {
  code: 'DRAINING',
  message: 'the daemon is stopping and accepts no new runs',
} as const satisfies { code: ErrorCode; message: string };
export const DRAINING_NO_PRUNE = {
  code: 'DRAINING',
  message: 'the daemon is stopping: no prune now',
} as const satisfies { code: ErrorCode; message: string };
export const NO_RETENTION = {
  code: 'INTERNAL',
  message: 'this daemon was started without retention',
} as const satisfies { code: ErrorCode; message: string };

export function queueFullError(context: DaemonContext): { code: ErrorCode; message: string } {
  return { code: 'QUEUE_FULL', message: `${context.maxQueuedRuns} runs are already waiting for a slot` };
}

export function controlFailed(message: string): { message: string } {
  return { message: `control socket failed: ${message}` };
}

export function runGoneError(runId: string): { code: ErrorCode; message: string } {
  return { code: 'RUN_FINISHED', message: `run ${runId} has already finished` };
}

/** Why a decision or answers do not fit what the run waits for, as the registry knows it. */
export function notWaitingError(
  context: DaemonContext,
  event: RunCommandEvent,
): { code: ErrorCode; message: string } {
  const run = context.runs[event.runId];
  const wanted = event.command.type === 'gate.decide' ? 'a gate decision' : 'answers';
  const stepId = event.command.type === 'run.cancel' ? null : event.command.stepId;
  const atStep = stepId === null ? '' : ` at step "${stepId}"`;
  const where = run?.waitingFor
    ? `waits at ${run.waitingFor.kind} step "${run.waitingFor.stepId}"`
    : `is ${run?.state ?? 'unknown'}`;
  return {
    code: 'RUN_NOT_WAITING',
    message: `run ${event.runId} ${where}: it is not waiting for ${wanted}${atStep}`,
  };
}

/** RUN_FINISHED for every command sent to a run that ended before answering it. */
export function unansweredCommands(
  context: DaemonContext,
  runId: string,
  state: string,
): ControlActorEvent[] {
  return Object.entries(context.commandsInFlight)
    .filter(([, commandRun]) => commandRun === runId)
    .map(([key]) => ({
      type: 'control.reply',
      key,
      reply: {
        error: {
          code: 'RUN_FINISHED' satisfies ErrorCode,
          message: `run ${runId} has already finished: ${state}`,
        },
      },
    }));
}

/** A prune's outcome, for every caller it answers. */
export function pruneReplies(event: RetentionReport): ControlActorEvent[] {
  return event.keys.map((key) => ({
    type: 'control.reply',
    key,
    reply:
      event.type === 'store.pruned'
        ? { result: event.report }
        : {
            error: { code: 'STORE_FAILED' satisfies ErrorCode, message: `pruning failed: ${event.message}` },
          },
  }));
}

export function stopAccepted(context: DaemonContext, alreadyStopping: boolean) {
  return {
    pid: context.facts.pid,
    already_stopping: alreadyStopping,
    drain_timeout_ms: context.drainTimeoutMs,
  };
}

// ---- folding in what others say ----------------------------------------------------------------

/** Why the daemon stops and how long it may drain, from a signal or a stop request. */
export function stopRequested(
  context: DaemonContext,
  event: DaemonEvent,
): Partial<Pick<DaemonContext, 'stopReason' | 'drainTimeoutMs'>> {
  if (event.type === 'daemon.stop') {
    return { stopReason: event.reason, drainTimeoutMs: event.timeoutMs ?? context.drainTimeoutMs };
  }
  if (event.type === 'control.request' && event.method === 'stop') {
    return {
      stopReason: 'stop requested',
      drainTimeoutMs: event.params.timeout_ms ?? context.drainTimeoutMs,
    };
  }
  return {};
}

/** The link as it reports itself; `since` moves only when the state's name changes. */
export function gatewayAfter(
  gateway: DaemonContext['gateway'],
  event: Extract<LinkReport, { type: 'gateway.status' }>,
): DaemonContext['gateway'] {
  return {
    state: event.state,
    since: event.state === gateway.state ? gateway.since : new Date(event.at).toISOString(),
    lastError: event.lastError,
    connId: event.connId,
    retryAt: event.retryInMs === null ? null : event.at + event.retryInMs,
  };
}

/** A new run's actor input: from its first step, first attempt, queued. */
export function newRun(runId: string, plan: RunPlan): RunInput {
  return { runId, plan, stepIndex: 0, attempt: 1, resume: 'queued' };
}
