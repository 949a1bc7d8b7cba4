/**
 * Validating control-protocol messages against the committed JSON Schema
 * (docs/control.v1.schema.json) with ajv, the way a client in another language would use the
 * file: one document, its entry points reached by JSON pointer.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { CONTROL_SCHEMA_RELATIVE_PATH, repoRoot } from '../../src/protocol/export-schema.js';

/** The document's top-level keys that are entry points, not JSON Schema keywords. */
const ENTRY_POINTS = ['protocol', 'request', 'response', 'error', 'connection_error', 'methods'];
const SCHEMA_KEY = 'control.v1';

export interface ControlSchemaValidator {
  /** The committed document, parsed. */
  readonly document: { methods: Record<string, { streams: boolean }> } & Record<string, unknown>;
  readonly request: ValidateFunction;
  readonly response: ValidateFunction;
  readonly connectionError: ValidateFunction;
  readonly error: ValidateFunction;
  /** The params, or the result (of each item, for a stream), of a method; throws for an unknown one. */
  params(method: string): ValidateFunction;
  result(method: string): ValidateFunction;
}

export function loadControlSchema(): ControlSchemaValidator {
  const document = JSON.parse(
    readFileSync(join(repoRoot(), CONTROL_SCHEMA_RELATIVE_PATH), 'utf8'),
  ) as ControlSchemaValidator['document'];
  // Strict: an unknown keyword, format or a sloppy type in the schema is an error, not a warning.
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  ajv.addVocabulary(ENTRY_POINTS);
  ajv.addSchema(document, SCHEMA_KEY);
  const compiled = new Map<string, ValidateFunction>();
  const at = (pointer: string): ValidateFunction => {
    let validate = compiled.get(pointer);
    if (validate === undefined) {
      validate = ajv.compile({ $ref: `${SCHEMA_KEY}#${pointer}` });
      compiled.set(pointer, validate);
    }
    return validate;
  };
  const ofMethod = (method: string, part: 'params' | 'result'): ValidateFunction => {
    if (!Object.hasOwn(document.methods, method)) throw new Error(`no method ${method} in the schema`);
    return at(`/methods/${method}/${part}`);
  };
  return {
    document,
    request: at('/request'),
    response: at('/response'),
    connectionError: at('/connection_error'),
    error: at('/error'),
    params: (method) => ofMethod(method, 'params'),
    result: (method) => ofMethod(method, 'result'),
  };
}

/** ajv's errors of the last validation, in one line each (for assertion messages). */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((error) => `${error.instancePath || '/'} ${error.message ?? ''}`).join('; ');
}
