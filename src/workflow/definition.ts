/**
 * A loaded, validated workflow: `workflows/<id>/manifest.yml` plus `workflows/<id>/plan.yml`.
 * Every object here is deeply frozen: one definition is shared by all the runs that use it.
 * See docs/workflows.md for the YAML format these types are read from.
 */

/**
 * The type of a workflow input or of an input-step field. A `secret` is a string that is
 * encrypted at rest, shown as `***` everywhere and masked in step output (src/secrets/).
 */
export type ValueType = 'string' | 'boolean' | 'integer' | 'number' | 'enum' | 'secret';

export const VALUE_TYPES: readonly ValueType[] = Object.freeze([
  'string',
  'boolean',
  'integer',
  'number',
  'enum',
  'secret',
] as const);

/** A typed value: a workflow input or a field of an input step. */
export interface FieldSpec {
  readonly type: ValueType;
  readonly required: boolean;
  /**
   * Used when the value is absent; matches `type` (one of `values` for `enum`); never with
   * `required`, never for a `secret` (it would sit in clear in the workflow file).
   */
  readonly default?: string | number | boolean;
  readonly description: string | null;
  /** The allowed values of an `enum`; null for every other type. */
  readonly values: readonly string[] | null;
}

/** A shell command, run with `sh -c` in the project root. */
export interface RunStep {
  readonly kind: 'run';
  readonly id: string;
  readonly command: string;
  /** null: no time limit. */
  readonly timeoutMs: number | null;
  /** Extra environment variables for the command. */
  readonly env: Readonly<Record<string, string>>;
  /** 'python': the step needs the project runtime `.charter/.venv`. */
  readonly runtime: 'python' | null;
  /** Run the step again when the daemon restarted while it was running (instead of failing the run). */
  readonly retryOnRestart: boolean;
  /**
   * The outputs the step declares (`outputs:`, typed like inputs), or null: then it may write any
   * names, all strings. See src/workflow/step-outputs.ts.
   */
  readonly outputs: Readonly<Record<string, FieldSpec>> | null;
  /** Automatic retries of a failed attempt (`retry:`); null: a failed attempt fails the run. */
  readonly retry: RetryPolicy | null;
}

/**
 * `retry:` of a run step. Attempt n (1, 2, …) that fails as `on` says is followed, after
 * min(delayMs × backoff^(n−1), maxDelayMs), by attempt n + 1, up to attempt limit + 1.
 */
export interface RetryPolicy {
  /** Retries after the first attempt (1–10): the step runs at most limit + 1 times. */
  readonly limit: number;
  /** The wait before the first retry. */
  readonly delayMs: number;
  /** Each further wait is the previous one times this (≥ 1; 1: a constant wait). */
  readonly backoff: number;
  /** No wait is longer than this. */
  readonly maxDelayMs: number;
  readonly on: RetryOn;
}

/** Which failed attempts are retried (a cancelled attempt never is). */
export interface RetryOn {
  /**
   * `any`: every non-zero exit code, and death by a signal the daemon did not send. Never an
   * attempt that exited 0 and failed `invalid_outputs` (a contract error, not a flaky exit).
   */
  readonly anyFailure: boolean;
  /** These exit codes (1–255). */
  readonly exitCodes: readonly number[];
  /** `timeout`: an attempt stopped by the step's `timeout`. */
  readonly timeout: boolean;
}

/** A checkpoint: the run waits until someone approves (continue) or denies (the run fails). */
export interface GateStep {
  readonly kind: 'gate';
  readonly id: string;
  readonly prompt: string;
}

/** A checkpoint that waits for typed answers; later run steps see them as environment variables. */
export interface InputStep {
  readonly kind: 'input';
  readonly id: string;
  readonly prompt: string;
  readonly fields: Readonly<Record<string, FieldSpec>>;
}

export type Step = RunStep | GateStep | InputStep;
export type StepKind = Step['kind'];

export interface Workflow {
  readonly id: string;
  readonly name: string;
  readonly description: string | null;
  readonly inputs: Readonly<Record<string, FieldSpec>>;
  /** At least one; ids unique. */
  readonly steps: readonly Step[];
  /** Absolute path of `workflows/<id>/`. */
  readonly dir: string;
}

/** Freezes an object graph of plain objects and arrays in place and returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The part of an environment variable name made from a name or id: upper-cased, other than A-Z 0-9 → `_`. */
export function envVarPart(text: string): string {
  return text.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** `CHARTER_INPUT_<NAME>`: how a run step sees a workflow input (`dry-run` → `CHARTER_INPUT_DRY_RUN`). */
export function inputEnvVar(name: string): string {
  return `CHARTER_INPUT_${envVarPart(name)}`;
}

/**
 * `CHARTER_STEP_<STEP>_<FIELD>`: how a run step sees an answer given to an earlier input step, and
 * an output of an earlier run step.
 */
export function stepFieldEnvVar(stepId: string, field: string): string {
  return `CHARTER_STEP_${envVarPart(stepId)}_${envVarPart(field)}`;
}
