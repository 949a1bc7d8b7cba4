/**
 * Sealing the secret fields of inputs, answers and step outputs (by their specs) when they come
 * in, and opening them when a step's environment is built. Where each value belongs is its
 * additional data: `run:<id>:inputs.<name>`, `run:<id>:answers.<step>.<field>`,
 * `run:<id>:outputs.<step>.<name>`; a gateway command waiting in the inbox,
 * `inbox:<cmd_id>:<inputs|answers>.<name>`.
 */
import type { FieldSpec } from '../workflow/definition.js';
import { isSealed } from './sealed.js';
import type { SecretBox } from './secret-box.js';

export type Scalar = string | number | boolean;

export const inputAad = (runId: string, name: string): string => `run:${runId}:inputs.${name}`;
export const answerAad = (runId: string, stepId: string, field: string): string =>
  `run:${runId}:answers.${stepId}.${field}`;
export const outputAad = (runId: string, stepId: string, name: string): string =>
  `run:${runId}:outputs.${stepId}.${name}`;

/** The values with every field whose spec is `secret` sealed; the others as they are. */
export function sealSecretFields(
  specs: Readonly<Record<string, FieldSpec>>,
  values: Readonly<Record<string, Scalar>>,
  box: SecretBox,
  aadOf: (name: string) => string,
): Record<string, unknown> {
  return mapValues(values, (name, value) =>
    specs[name]?.type === 'secret' && typeof value === 'string' ? box.seal(value, aadOf(name)) : value,
  );
}

/** Every value sealed (or left alone when it already is one); for commands not yet checked. */
export function sealAll(
  values: Readonly<Record<string, unknown>>,
  box: SecretBox,
  aadOf: (name: string) => string,
): Record<string, unknown> {
  return mapValues(values, (name, value) =>
    isSealed(value) ? value : box.seal(JSON.stringify(value), aadOf(name)),
  );
}

/** The inverse of {@link sealAll}. Throws SECRETS_UNAVAILABLE. */
export function openAll(
  values: Readonly<Record<string, unknown>>,
  box: SecretBox,
  aadOf: (name: string) => string,
): Record<string, unknown> {
  return mapValues(values, (name, value) =>
    isSealed(value) ? (JSON.parse(box.open(value, aadOf(name))) as unknown) : value,
  );
}

/** Opened values, and the secrets among them (what a step's output must not show). */
export interface Opened<T> {
  readonly values: T;
  readonly secrets: string[];
}

/** Opens every sealed value of a run's inputs. Throws SECRETS_UNAVAILABLE. */
export function openInputs(
  runId: string,
  inputs: Readonly<Record<string, unknown>>,
  box: SecretBox,
): Opened<Record<string, Scalar>> {
  const secrets: string[] = [];
  const values: Record<string, Scalar> = {};
  for (const [name, value] of Object.entries(inputs)) {
    if (isSealed(value)) {
      const opened = box.open(value, inputAad(runId, name));
      secrets.push(opened);
      values[name] = opened;
    } else {
      values[name] = value as Scalar;
    }
  }
  return { values, secrets };
}

/** Opens every sealed value of a run's answers (by step, then field). Throws SECRETS_UNAVAILABLE. */
export function openAnswers(
  runId: string,
  answers: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  box: SecretBox,
): Opened<Record<string, Record<string, Scalar>>> {
  return openByStep(answers, box, (stepId, field) => answerAad(runId, stepId, field));
}

/** Opens every sealed value of the outputs steps passed on (by step, then name). Throws SECRETS_UNAVAILABLE. */
export function openOutputs(
  runId: string,
  outputs: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  box: SecretBox,
): Opened<Record<string, Record<string, Scalar>>> {
  return openByStep(outputs, box, (stepId, name) => outputAad(runId, stepId, name));
}

function openByStep(
  byStep: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  box: SecretBox,
  aadOf: (stepId: string, name: string) => string,
): Opened<Record<string, Record<string, Scalar>>> {
  const secrets: string[] = [];
  const values: Record<string, Record<string, Scalar>> = {};
  for (const [stepId, fields] of Object.entries(byStep)) {
    const step: Record<string, Scalar> = {};
    for (const [field, value] of Object.entries(fields)) {
      if (isSealed(value)) {
        const opened = box.open(value, aadOf(stepId, field));
        secrets.push(opened);
        step[field] = opened;
      } else {
        step[field] = value as Scalar;
      }
    }
    values[stepId] = step;
  }
  return { values, secrets };
}

/** The same keys, each value replaced by `map(name, value)`. */
function mapValues(
  values: Readonly<Record<string, unknown>>,
  map: (name: string, value: unknown) => unknown,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) out[name] = map(name, value);
  return out;
}
