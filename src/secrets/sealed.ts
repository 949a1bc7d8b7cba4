/**
 * How a secret value is kept in stored inputs and answers: an envelope
 * `{"$secret": "v1:<key id>:<base64 of iv | tag | ciphertext>"}` in place of the value (see
 * secret-box.ts for the cipher). Inputs and answers are otherwise scalars, so any object among
 * them is an envelope. Every shape that leaves the engine (events, `runs show`, the inspector)
 * shows `***` instead, through {@link redactSealed}.
 *
 * Pure: no I/O, no crypto; the store and the protocol side import it.
 */

export const SEALED_KEY = '$secret';
/** What a secret is shown as, wherever a value would be shown. */
export const REDACTED_SECRET = '***';

export interface SealedSecret {
  readonly [SEALED_KEY]: string;
}

export function isSealed(value: unknown): value is SealedSecret {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return (
    keys.length === 1 && keys[0] === SEALED_KEY && typeof (value as SealedSecret)[SEALED_KEY] === 'string'
  );
}

/**
 * A copy of `value` in which every envelope is `***` (the same object when there is none).
 * Walks plain data only (what JSON holds); depth is bounded by what was accepted as JSON.
 */
export function redactSealed<T>(value: T): T {
  return redact(value) as T;
}

function redact(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (isSealed(value)) return REDACTED_SECRET;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, index) => {
      const redacted = redact(item);
      if (redacted !== item) {
        copy ??= [...value];
        copy[index] = redacted;
      }
    });
    return copy ?? value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const redacted = redact(item);
    if (redacted !== item) {
      copy ??= { ...(value as Record<string, unknown>) };
      copy[key] = redacted;
    }
  }
  return copy ?? value;
}
