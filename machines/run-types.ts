/**
 * The run machine's types: its plan, input, context, events, checkpoints and reports. Shared by
 * the machine, its builders (run-checkpoints.ts), the root and the wiring.
 */
import type { RunState, WireError } from '../src/protocol/control.js';
import type { OutputChunk, StepOutcome } from '../src/protocol/steps.js';
import type { RetryPolicy } from '../src/workflow/definition.js';

export type { OutputChunk, StepOutcome };

/** The part of a workflow step the machine decides on (a workflow `Step` satisfies it). */
export interface PlannedStep {
  readonly id: string;
  readonly kind: 'run' | 'gate' | 'input';
  readonly retryOnRestart?: boolean;
  /** Automatic retries of a failed attempt (run steps only). */
  readonly retry?: RetryPolicy | null;
}

/** The part of a workflow the machine needs; the shared, frozen definition satisfies it. */
export interface RunPlan {
  readonly id: string;
  readonly steps: readonly PlannedStep[];
}

/** Where a (restored) run starts. */
export type RunResume = 'queued' | 'waiting';

export interface RunInput {
  readonly runId: string;
  readonly plan: RunPlan;
  readonly stepIndex: number;
  readonly attempt: number;
  readonly resume: RunResume;
  /**
   * A restored run whose step was waiting to retry: when attempt + 1 is due (epoch ms, as
   * stored with its `step.retrying`). Once admitted the run waits out what is left of it.
   */
  readonly retryDueAt?: number;
  /** Epoch milliseconds: due times are stamped with it. Default `Date.now`; tests pass a simulated clock's. */
  readonly now?: () => number;
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
  /** While the current step waits to retry: when its next attempt is due (epoch ms); else null. */
  retryDueAt: number | null;
  readonly now: () => number;
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
    readonly state: 'running' | 'waiting' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';
    readonly attempt?: number;
    readonly exitCode?: number | null;
    readonly reason?: string | null;
    readonly started?: boolean;
    /** true: the step (or its attempt) ended now; false: clear the end of a previous attempt. */
    readonly finished?: boolean;
    /** The outputs of the attempt that ended, as stored (secrets sealed); null clears them. */
    readonly outputs?: Readonly<Record<string, unknown>> | null;
    /** When the next attempt is due (ISO 8601) while the step waits to retry; null clears it. */
    readonly retryAt?: string | null;
    /**
     * A new attempt begins: keep the previous one (start, end, exit code, reason, outputs) in the
     * step's history.
     */
    readonly archiveAttempt?: boolean;
  };
}

/**
 * What a run step wrote to its CHARTER_OUTPUT file, read by the step child once the process
 * ended (src/workflow/step-outputs.ts). A step that exits 0 with problems fails
 * (`invalid_outputs: …`); the values are recorded either way, and passed on to later steps only
 * by a step that succeeded.
 */
export interface StepOutputsReport {
  /** As they are to be stored: secret values sealed, the others with the run's secrets masked. */
  readonly values: Readonly<Record<string, unknown>>;
  /** Every problem, bounded (the first few, then how many more). */
  readonly problems: readonly string[];
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
  | { type: 'step.exited'; outcome: StepOutcome; outputs?: StepOutputsReport };

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

/** What a step child is started with: the step itself (the workflow's full definition of it). */
export interface StepRunnerInput {
  readonly runId: string;
  readonly workflowId: string;
  /** The run's plan: which other steps' answers and outputs the step's outputs must not shadow. */
  readonly plan: RunPlan;
  readonly step: PlannedStep;
  readonly stepIndex: number;
  readonly attempt: number;
}

export type StepRunnerEvent = { type: 'step.cancel'; reason: string };
