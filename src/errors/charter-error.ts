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

  /** The `{code, message, hint}` object sent over the control socket. */
  toWire(): { code: ErrorCode; message: string; hint: string } {
    return { code: this.code, message: this.message, hint: this.hint };
  }

  /** Rebuilds an error received over the wire; unknown codes (a newer daemon) become INTERNAL. */
  static fromWire(wire: { code: string; message: string; hint?: string | undefined }): CharterError {
    const code = isErrorCode(wire.code) ? wire.code : 'INTERNAL';
    return new CharterError(code, wire.message, wire.hint === undefined ? undefined : { hint: wire.hint });
  }
}

export function isCharterError(error: unknown): error is CharterError {
  return typeof error === 'object' && error !== null && (error as { [BRAND]?: unknown })[BRAND] === true;
}

/** True for a CharterError with the given code (whichever copy of the class made it). */
export function hasCode(error: unknown, code: ErrorCode): error is CharterError {
  return isCharterError(error) && error.code === code;
}
