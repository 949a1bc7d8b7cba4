/** Telling a damaged store from other store failures. */
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';

/** SQLite's codes for a file that is damaged or not a database (extended codes included). */
export function isCorruptionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/** STORE_CORRUPT naming the file; the catalogue's hint names the next step (`store recover`). */
export function corruptStoreError(path: string, error: unknown): CharterError {
  // No `cause`: its message is in ours already (pino would print it twice).
  return new CharterError('STORE_CORRUPT', `${path} is damaged: ${errorMessage(error)}`);
}
