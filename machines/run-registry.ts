/**
 * The root's registry of live runs: each run's state as it last reported it, the counts by
 * state beside it, and the FIFO queue of runs waiting for a slot. Updated **in place**, on
 * purpose: with 10,000 runs parked at gates a run event must cost O(1), not a copy of the map
 * (the root's `assign` actions hand the same objects back). `status` reads the counts, never the
 * map. Plain functions over plain data, unit-tested without actors.
 */
import type { RunState } from '../src/protocol/control.js';
import { isFinalRunState } from '../src/protocol/run-counts.js';
import type { DaemonContext, RunCommandEvent, RunEntry } from './daemon-types.js';
import type { RunInput, RunStateReport } from './run-types.js';

/** The part of the root's context the registry owns. */
export type RunRegistry = Pick<DaemonContext, 'runs' | 'liveCounts' | 'queue'>;
/** Commands sent to runs and not answered yet (key → run id), also updated in place. */
type CommandsInFlight = Pick<DaemonContext, 'commandsInFlight'>;

/** Runs executing a step: each holds one of the --max-runs slots. */
export function executing(context: RunRegistry): number {
  return context.liveCounts.running + context.liveCounts.cancelling;
}

/** Moves a run in the registry and its counts (in place: see DaemonContext.runs). */
export function setRun(context: RunRegistry, runId: string, entry: RunEntry | undefined): void {
  const previous = context.runs[runId];
  if (previous !== undefined) context.liveCounts[previous.state] -= 1;
  if (entry === undefined) {
    delete context.runs[runId];
    return;
  }
  context.runs[runId] = entry;
  context.liveCounts[entry.state] += 1;
}

/** A new or restored run: in the registry, and in line for a slot when it starts queued. */
export function register(
  context: RunRegistry,
  runId: string,
  state: RunState,
  waitingFor: RunEntry['waitingFor'] = null,
): void {
  setRun(context, runId, { state, waitingFor });
  if (state === 'queued') context.queue.push(runId);
}

/**
 * What a restored run waits for, known from its input: a command for it may be checked before
 * the run has reported itself (pending gateway commands are applied as the daemon starts serving).
 */
export function restoredWaitingFor(run: RunInput): RunEntry['waitingFor'] {
  const step = run.plan.steps[run.stepIndex];
  if (run.resume !== 'waiting' || step === undefined || step.kind === 'run') return null;
  return { kind: step.kind, stepId: step.id };
}

/** Runs in these states execute a step and hold one of the --max-runs slots. */
export function holdsSlot(state: RunState): boolean {
  return state === 'running' || state === 'cancelling';
}

/**
 * Applies a run's report; returns the final state when the run has ended (it has left the
 * registry, and the queue if it was in it), else null.
 */
export function track(
  context: RunRegistry,
  report: RunStateReport,
): 'succeeded' | 'failed' | 'cancelled' | null {
  const previous = context.runs[report.runId];
  if (previous === undefined) return null;
  if (isFinalRunState(report.state)) {
    setRun(context, report.runId, undefined);
    if (previous.state === 'queued') context.queue = context.queue.filter((id) => id !== report.runId);
    return report.state;
  }
  setRun(context, report.runId, { state: report.state, waitingFor: report.waitingFor });
  // Back in the queue (after a gate or an input): last in line.
  if (report.state === 'queued' && previous.state !== 'queued') context.queue.push(report.runId);
  return null;
}

/** The queued runs that get a slot now, oldest first (at most `maxRuns` execute at once). */
export function freeSlotsFor(context: RunRegistry, maxRuns: number): string[] {
  return context.queue.slice(0, Math.max(0, maxRuns - executing(context)));
}

/** Marks runs that were given a slot as running, and takes them off the head of the queue. */
export function markAdmitted(context: RunRegistry, admitted: readonly string[]): void {
  for (const runId of admitted) {
    const run = context.runs[runId];
    if (run !== undefined) setRun(context, runId, { ...run, state: 'running' });
  }
  context.queue = context.queue.slice(admitted.length);
}

/** Whether a decision or answers fit what the run waits for, as it last reported. */
export function waitsFor(context: RunRegistry, event: RunCommandEvent): boolean {
  if (event.command.type === 'run.cancel') return true;
  const run = context.runs[event.runId];
  const kind = event.command.type === 'gate.decide' ? 'gate' : 'input';
  const stepId = event.command.stepId;
  return (
    run?.state === 'waiting' &&
    run.waitingFor?.kind === kind &&
    (stepId === null || stepId === run.waitingFor.stepId)
  );
}

export function rememberCommand(context: CommandsInFlight, key: string, runId: string): CommandsInFlight {
  context.commandsInFlight[key] = runId;
  return { commandsInFlight: context.commandsInFlight };
}

export function forgetCommand(context: CommandsInFlight, key: string): CommandsInFlight {
  delete context.commandsInFlight[key];
  return { commandsInFlight: context.commandsInFlight };
}
