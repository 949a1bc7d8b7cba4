/**
 * Flags whose value is a JSON object (`run --inputs-json`, `submit-input --answers`): parsed
 * with the nesting bound every JSON edge of charter-daemon has, so a hostile value is an
 * INVALID_FLAG, never a stack overflow further on.
 */
import { CharterError } from '../errors/charter-error.js';
import { parseBoundedJson } from '../protocol/json-limits.js';

/** Parses `--<flag>` as a JSON object; throws INVALID_FLAG naming the flag and what is wrong. */
export function parseJsonObjectFlag(flag: string, text: string, example: string): Record<string, unknown> {
  const parsed = parseBoundedJson(text);
  if (!parsed.ok) throw new CharterError('INVALID_FLAG', `--${flag}: ${parsed.message}`);
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CharterError(
      'INVALID_FLAG',
      `--${flag}: expected a JSON object such as '${example}', got ${
        Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`
      }`,
    );
  }
  return value as Record<string, unknown>;
}
