import { cutText, MAX_ERROR_HINT_BYTES, MAX_ERROR_MESSAGE_BYTES } from '../protocol/field-limits.js';
import { type ErrorCode, errorCatalogue, isErrorCode } from './catalogue.js';

/**
 * Marks CharterErrors by a registered symbol rather than by class identity: the bundled CLI
 * commands and the modules they load lazily each carry their own copy of this class.
 */
const BRAND = Symbol.for('charter-daemon.CharterError');

/** An error from the catalogue: a stable code, a specific message and the next step for the user. */
export class CharterError extends Error {
  readonly [BRAND] = true;
  readonly code: ErrorCode;
  readonly hint: string;
  readonly exitCode: number;

  constructor(code: ErrorCode, message?: string, options?: { hint?: string; cause?: unknown }) {
    const spec = errorCatalogue[code];
    super(message ?? spec.title, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CharterError';
    this.code = code;
    this.hint = options?.hint ?? spec.hint;
    this.exitCode = spec.exitCode;
  }

  /** The `{code, message, hint}` object sent over the control socket, within the wire's sizes. */
  toWire(): { code: ErrorCode; message: string; hint: string } {
    return boundWireError({ code: this.code, message: this.message, hint: this.hint });
  }

  /** Rebuilds an error received over the wire; unknown codes (a newer daemon) become INTERNAL. */
  static fromWire(wire: { code: string; message: string; hint?: string | undefined }): CharterError {
    const code = isErrorCode(wire.code) ? wire.code : 'INTERNAL';
    return new CharterError(code, wire.message, wire.hint === undefined ? undefined : { hint: wire.hint });
  }
}

/** Ends a message cut by {@link boundWireError}. */
export const MESSAGE_CUT_MARKER = '… [message cut at 64 KiB]';

/**
 * An error as sent on the wire, cut to the documented sizes: a message of at most 64 KiB and a
 * hint of at most 4 KiB (UTF-8), cut on a character boundary and marked. The last line of
 * defence: the lists in messages are already bounded where they are made.
 */
export function boundWireError<W extends { message: string; hint?: string | undefined }>(wire: W): W {
  const message = cutText(wire.message, MAX_ERROR_MESSAGE_BYTES, MESSAGE_CUT_MARKER);
  const hint = wire.hint === undefined ? undefined : cutText(wire.hint, MAX_ERROR_HINT_BYTES, '…');
  if (message === wire.message && hint === wire.hint) return wire;
  return { ...wire, message, ...(hint === undefined ? {} : { hint }) };
}

export function isCharterError(error: unknown): error is CharterError {
  return typeof error === 'object' && error !== null && (error as { [BRAND]?: unknown })[BRAND] === true;
}

/** True for a CharterError with the given code (whichever copy of the class made it). */
export function hasCode(error: unknown, code: ErrorCode): error is CharterError {
  return isCharterError(error) && error.code === code;
}
