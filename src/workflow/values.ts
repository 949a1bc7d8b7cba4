/**
 * Checking and coercing run inputs (at submission) and input-step answers (when they are given).
 * Values come as JSON (any type) or as strings from the CLI (`--input retries=3`): a string is
 * coerced by the declared type, a JSON value of the right type passes as it is.
 */
import type { z } from 'zod';
import {
  capProblems,
  headChars,
  jsonBytes,
  MAX_ANSWERS_JSON_BYTES,
  MAX_FIELD_NAME_CHARS,
  MAX_INPUTS_JSON_BYTES,
  MAX_VALUE_CHARS,
} from '../protocol/field-limits.js';
import type { FieldSpecSchema } from '../protocol/runs.js';
import type { FieldSpec } from './definition.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };

export type Value = string | number | boolean;

/** The protocol's form of a field: what clients are shown of an input or an input-step field. */
export type WireFieldSpec = z.infer<typeof FieldSpecSchema>;

/**
 * Checks run inputs against the workflow's input specs. Every problem is found, each starting
 * with the input name; the first MAX_LISTED_PROBLEMS are listed and the rest counted, so the
 * error stays small whatever was sent. Absent optional inputs take their default, or are left
 * out without one. A string value is at most MAX_VALUE_CHARS, and all inputs together at most
 * MAX_INPUTS_JSON_BYTES as JSON after coercion and defaults (src/protocol/field-limits.ts).
 */
export function coerceInputs(
  specs: Readonly<Record<string, FieldSpec>>,
  raw: Readonly<Record<string, unknown>>,
): Checked<Record<string, Value>> {
  return check(specs, raw, 'input', 'this workflow takes no inputs', MAX_INPUTS_JSON_BYTES);
}

/** Checks the answers to an input step against its fields; same rules as {@link coerceInputs}. */
export function checkAnswers(
  fields: Readonly<Record<string, FieldSpec>>,
  raw: Readonly<Record<string, unknown>>,
): Checked<Record<string, Value>> {
  return check(fields, raw, 'field', 'this step has no fields', MAX_ANSWERS_JSON_BYTES);
}

export function fieldToWire(spec: FieldSpec): WireFieldSpec {
  return {
    type: spec.type,
    required: spec.required,
    description: spec.description,
    values: spec.values === null ? null : [...spec.values],
  };
}

function check(
  specs: Readonly<Record<string, FieldSpec>>,
  raw: Readonly<Record<string, unknown>>,
  noun: 'input' | 'field',
  noneKnown: string,
  maxJsonBytes: number,
): Checked<Record<string, Value>> {
  const problems: string[] = [];
  const value: Record<string, Value> = {};
  for (const [name, spec] of Object.entries(specs)) {
    // null counts as absent: a JSON client may send `"note": null` for "no value".
    const given = Object.hasOwn(raw, name) ? raw[name] : undefined;
    if (given === undefined || given === null) {
      if (spec.default !== undefined) value[name] = spec.default;
      else if (spec.required) problems.push(`${name}: required`);
      continue;
    }
    const coerced = coerceValue(spec, given);
    if (coerced.ok) value[name] = coerced.value;
    else problems.push(`${name}: ${coerced.problem}`);
  }
  const unknown = Object.keys(raw)
    .filter((name) => !Object.hasOwn(specs, name))
    .sort();
  if (unknown.length > 0) {
    const known = Object.keys(specs).sort();
    const hint = known.length > 0 ? `known: ${known.join(', ')}` : noneKnown;
    // A name longer than any field name is shown cut: it can only be unknown.
    for (const name of unknown) problems.push(`${describeName(name)}: unknown ${noun} (${hint})`);
  }
  if (problems.length === 0) {
    const bytes = jsonBytes(value) ?? Number.POSITIVE_INFINITY;
    if (bytes > maxJsonBytes) {
      problems.push(
        `(all ${noun}s): ${bytes.toLocaleString('en-US')} bytes as JSON, at most ${maxJsonBytes.toLocaleString('en-US')} (${maxJsonBytes / 1024} KiB)`,
      );
    }
  }
  return problems.length > 0 ? { ok: false, problems: capProblems(problems) } : { ok: true, value };
}

function describeName(name: string): string {
  return name.length > MAX_FIELD_NAME_CHARS ? `${headChars(name, MAX_FIELD_NAME_CHARS)}…` : name;
}

export type Coerced = { ok: true; value: Value } | { ok: false; problem: string };

const INTEGER_TEXT = /^[+-]?\d+$/;
const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE_TEXT = new Set(['true', '1', 'yes']);
const FALSE_TEXT = new Set(['false', '0', 'no']);

/** Coerces one present (non-null) value by its spec's type. */
export function coerceValue(spec: FieldSpec, given: unknown): Coerced {
  if (typeof given === 'string' && given.length > MAX_VALUE_CHARS) {
    return {
      ok: false,
      problem: `a value is at most ${MAX_VALUE_CHARS.toLocaleString('en-US')} characters, got ${given.length.toLocaleString('en-US')}`,
    };
  }
  switch (spec.type) {
    case 'string':
      return typeof given === 'string' ? ok(given) : refuse('expected a string', given);
    case 'secret':
      // Never echoed: not even what kind of wrong value it was beyond its JSON type.
      if (typeof given !== 'string')
        return { ok: false, problem: `expected a string (a secret), got ${jsonType(given)}` };
      return given === '' ? { ok: false, problem: 'a secret must not be empty' } : ok(given);
    case 'boolean': {
      if (typeof given === 'boolean') return ok(given);
      if (typeof given === 'string') {
        const text = given.trim().toLowerCase();
        if (TRUE_TEXT.has(text)) return ok(true);
        if (FALSE_TEXT.has(text)) return ok(false);
      }
      return refuse('expected true or false (or yes/no, 1/0)', given);
    }
    case 'integer': {
      const number = typeof given === 'string' && INTEGER_TEXT.test(given.trim()) ? Number(given) : given;
      if (typeof number === 'number' && Number.isInteger(number)) {
        return Number.isSafeInteger(number)
          ? ok(number)
          : refuse(`must be between ${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}`, given);
      }
      return refuse('expected an integer', given);
    }
    case 'number': {
      const number = typeof given === 'string' && NUMBER_TEXT.test(given.trim()) ? Number(given) : given;
      if (typeof number === 'number' && Number.isFinite(number)) return ok(number);
      return refuse('expected a number', given);
    }
    case 'enum': {
      const values = spec.values ?? [];
      if (typeof given === 'string' && values.includes(given)) return ok(given);
      return { ok: false, problem: `must be one of ${values.join(', ')}` };
    }
  }
}

function ok(value: Value): Coerced {
  return { ok: true, value };
}

function refuse(expected: string, given: unknown): Coerced {
  return { ok: false, problem: `${expected}, got ${describeValue(given)}` };
}

/** The JSON type of a value, and nothing of the value itself. */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A short, printable description of a value for a problem message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}
