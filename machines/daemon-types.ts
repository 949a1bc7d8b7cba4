/**
 * The root daemon machine's types: its facts, input, context, events and output, and the
 * parameters of its provided actions. Shared by the machine, its helpers and the wiring.
 */
import type { ErrorCode } from '../src/errors/catalogue.js';
import type { ControlReply, RunCounts, RunState, StopParams } from '../src/protocol/control.js';
import type { LinkReport } from './gateway-link.machine.js';
import type { RetentionInput, RetentionReport } from './retention.machine.js';
import type { RunCommand, RunInput, RunPlan, RunReport, RunStateReport } from './run-types.js';

/** Facts about this daemon process, fixed at start. */
export interface DaemonFacts {
  readonly pid: number;
  readonly version: string;
  readonly startedAt: string;
  readonly daemonId: string;
  readonly epoch: number;
  readonly projectRoot: string;
  readonly socketPath: string;
  readonly storePath: string;
  readonly logPath: string;
  readonly gatewayUrl: string | null;
  readonly inspectorUrl: string | null;
}

export interface DaemonInput {
  readonly facts: DaemonFacts;
  /** Default bound on draining; a `stop` request may set its own. */
  readonly drainTimeoutMs: number;
  /** Runs executing steps at once (waiting runs hold no slot). */
  readonly maxRuns: number;
  /** Runs waiting for a slot at most; past it submissions are refused. */
  readonly maxQueuedRuns: number;
  /** When the store is pruned (see retention.machine.ts); absent: no pruning. */
  readonly retention?: RetentionInput;
}

export type FinishedCounts = Pick<RunCounts, 'succeeded' | 'failed' | 'cancelled'>;

/** What the root knows of a live run: enough to count slots and check commands. */
export interface RunEntry {
  state: RunState;
  waitingFor: RunStateReport['waitingFor'];
}

export type PreviousShutdown = 'first-start' | 'clean' | 'unclean';

export interface RecoveryReport {
  readonly previousShutdown: PreviousShutdown;
  readonly runs: readonly RunInput[];
  readonly finished: FinishedCounts;
}

export interface DaemonContext {
  readonly facts: DaemonFacts;
  drainTimeoutMs: number;
  readonly maxRuns: number;
  readonly maxQueuedRuns: number;
  /**
   * Every live run actor, by run id, as last reported by the run. Updated in place, with
   * `liveCounts` beside it, so that a run event costs O(1) with 10,000 runs parked at gates.
   */
  runs: Record<string, RunEntry>;
  liveCounts: RunCounts;
  /** Run ids waiting for a slot, first come first served. */
  queue: string[];
  /**
   * Commands sent to a run and not answered yet, by key → run id. A run answers each once it
   * has recorded the effect; a run that ends first has its unanswered commands answered
   * RUN_FINISHED here, so no caller waits forever.
   */
  commandsInFlight: Record<string, string>;
  /** Submissions accepted and being stored (they count against the queue bound already). */
  submitting: number;
  /** Runs restored at start-up, spawned when the daemon starts serving. */
  restoring: readonly RunInput[];
  finished: FinishedCounts;
  /** The gateway link as it last reported itself. */
  gateway: {
    state: string;
    since: string;
    lastError: string | null;
    connId: string | null;
    retryAt: number | null;
  };
  previousShutdown: PreviousShutdown | null;
  stopReason: string | null;
  drainTimedOut: boolean;
  /** Set when the daemon stops because something failed; the process then exits non-zero. */
  failure: string | null;
  readonly retention: RetentionInput | null;
}

export type ControlRequestEvent =
  | { type: 'control.request'; key: string; method: 'status'; params: Record<string, never> }
  | { type: 'control.request'; key: string; method: 'stop'; params: StopParams }
  | { type: 'control.request'; key: string; method: 'store.prune'; params: { dry_run?: boolean } };

/** A validated submission (the intake checked the workflow and coerced the inputs). */
export type RunSubmitEvent = {
  type: 'run.submit';
  key: string;
  runId: string;
  plan: RunPlan;
  inputs: Record<string, unknown>;
};

/** A validated command for a live run: a gate decision, answers, or a cancel. */
export type RunCommandEvent = {
  type: 'run.command';
  runId: string;
  /** Carries the key of the call it answers and, for decisions and answers, the step meant. */
  command: RunCommand;
};

/** What became of storing a new run (`persistRun` reports it back to the root). */
export type RunStoredEvent =
  | { type: 'run.stored'; key: string; runId: string; plan: RunPlan }
  | { type: 'run.storeFailed'; key: string; runId: string; error: { code: ErrorCode; message: string } };

export type DaemonEvent =
  | ControlRequestEvent
  | RunSubmitEvent
  | RunCommandEvent
  | RunStoredEvent
  | RunReport
  | LinkReport
  | RetentionReport
  | { type: 'control.listening' }
  | { type: 'control.failed'; message: string }
  | { type: 'daemon.stop'; reason: string; timeoutMs?: number };

/** What the control actor receives from the root. */
export type ControlActorEvent = { type: 'control.reply'; key: string; reply: ControlReply };

export interface DaemonOutput {
  readonly exitCode: number;
  readonly failure: string | null;
  readonly drainTimedOut: boolean;
}

export interface PersistRunParams {
  readonly key: string;
  readonly runId: string;
  readonly plan: RunPlan;
  readonly inputs: Record<string, unknown>;
}

export interface JournalParams {
  readonly type: string;
  readonly data: Record<string, unknown>;
}
