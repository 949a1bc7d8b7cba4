/**
 * How deeply nested JSON charter-daemon accepts, wherever JSON comes in (CLI flags, control
 * socket lines, gateway frames). V8's `JSON.parse` copes with any depth, but `JSON.stringify`,
 * zod and every recursive walk of a value overflow the stack a few thousand levels down, so
 * deep values are refused at the edge, before anything walks them. Nothing charter-daemon
 * exchanges needs more than a handful of levels.
 *
 * Depth counts the arrays and objects enclosing the deepest value: `1` and `"x"` are 0 deep,
 * `[]` and `{}` 1 deep, `{"a": [1]}` 2 deep. The walkers below are iterative, so they are safe
 * on any input. Pure: no I/O, nothing imported but the one error-message helper (the gateway
 * transport imports this too).
 */
import { errorMessage } from '../errors/error-message.js';

/** The deepest nesting of arrays and objects accepted in any JSON document (see docs/control-protocol.md). */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }

/**
 * True when the JSON text opens more than `max` arrays/objects inside one another. Brackets in
 * strings (escaped quotes included) do not count. For valid JSON this is exactly its depth; for
 * invalid JSON it bounds what a parser would nest before it fails.
 */
export function jsonTextDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH)
        i++; // the escaped character, whatever it is, cannot end the string
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) {
      inString = true;
    } else if (code === OPEN_BRACKET || code === OPEN_BRACE) {
      depth++;
      if (depth > max) return true;
    } else if ((code === CLOSE_BRACKET || code === CLOSE_BRACE) && depth > 0) {
      depth--;
    }
  }
  return false;
}

/** True when a value (parsed JSON, or anything of plain arrays and objects) nests deeper than `max`. */
export function valueDepthExceeds(value: unknown, max: number): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [1];
  for (;;) {
    const current = values.pop();
    const depth = depths.pop();
    if (depth === undefined) return false;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > max) return true;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) {
      // Scalars need no visit: only containers can be too deep.
      if (typeof child === 'object' && child !== null) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
}

/**
 * `JSON.parse` that refuses text nested deeper than `max` before parsing it. The message says
 * what is wrong (without the text) for the caller to prefix with where the JSON came from.
 */
export function parseBoundedJson(
  text: string,
  max: number = MAX_JSON_DEPTH,
): { ok: true; value: unknown } | { ok: false; message: string } {
  if (jsonTextDepthExceeds(text, max)) {
    return { ok: false, message: `nested more than ${max} levels deep (JSON nesting is limited to ${max})` };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return {
      ok: false,
      message: `not valid JSON (${errorMessage(error)})`,
    };
  }
}
