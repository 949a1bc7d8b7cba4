/**
 * The dev gateway's bearer token: read from `--token-file FILE` (trimmed, as the daemon reads
 * its `--gateway-token-file`, src/gateway/token.ts), or else the one kept for the port in a
 * private (0700) directory of the user, or else a fresh random one written there (0600) for the
 * daemon's `--gateway-token-file`. Keeping it means a daemon reconnects to a restarted dev
 * gateway with the token it already has. The token itself is never printed; only where it is.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';

/** A token file larger than this is refused (a token is a line, not a document). */
const MAX_TOKEN_FILE_BYTES = 4096;

export interface DevToken {
  readonly token: string;
  /** The absolute path of the file holding it: what the daemon's --gateway-token-file gets. */
  readonly file: string;
  /** Given with --token-file, kept from an earlier start on the port, or new. */
  readonly origin: 'given' | 'kept' | 'new';
}

/** Reads the token of `--token-file`; INVALID_FLAG when it cannot be used. */
export function readTokenFile(path: string): DevToken {
  const file = resolve(path);
  let text: string;
  try {
    const stats = lstatSync(file);
    if (!stats.isFile()) throw new Error('not a regular file');
    if (stats.size > MAX_TOKEN_FILE_BYTES) throw new Error(`larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CharterError('INVALID_FLAG', `--token-file ${file}: cannot be read: ${errorMessage(error)}`, {
      hint: 'Give a readable file holding the token on one line, or leave --token-file out for a generated one.',
    });
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) {
    throw new CharterError(
      'INVALID_FLAG',
      `--token-file ${file}: expected the token alone on one line (${token === '' ? 'the file is empty' : 'it holds spaces or several lines'})`,
      { hint: 'Put only the token in the file (a trailing newline is fine).' },
    );
  }
  return { token, file, origin: 'given' };
}

/**
 * Where a generated token goes: `$XDG_RUNTIME_DIR/charter-dev-gateway/` (private to the user
 * by design), else `<tmp>/charter-dev-gateway-<uid>/`; one file per port, so dev gateways on
 * other ports never overwrite each other's token.
 */
export function generatedTokenPath(port: number, env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  const dir =
    runtime !== undefined && runtime !== ''
      ? join(runtime, 'charter-dev-gateway')
      : join(tmpdir(), `charter-dev-gateway-${process.getuid?.() ?? 'user'}`);
  return join(dir, `token-${port}`);
}

/**
 * The token kept in `file` by an earlier start, if it can be trusted: a regular file of the
 * user's, readable by nobody else, in a private directory of the user's, holding one token.
 * Anything else is null (and a new token replaces it).
 */
export function readKeptToken(file: string): DevToken | null {
  try {
    const uid = process.getuid?.();
    const dir = lstatSync(resolve(file, '..'));
    const stats = lstatSync(file);
    const ours = (entry: { uid: number }) => uid === undefined || entry.uid === uid;
    if (!dir.isDirectory() || !ours(dir) || (dir.mode & 0o077) !== 0) return null;
    if (!stats.isFile() || !ours(stats) || (stats.mode & 0o077) !== 0) return null;
    if (stats.size > MAX_TOKEN_FILE_BYTES) return null;
    const token = readFileSync(file, 'utf8').trim();
    if (token === '' || /\s/.test(token)) return null;
    return { token, file: resolve(file), origin: 'kept' };
  } catch {
    return null;
  }
}

/** A fresh random token. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Writes `token` to `file` (0600) through a private rename, in a directory made or checked
 * 0700 and owned by the user (a directory someone else planted in /tmp is refused).
 */
export function writeTokenFile(file: string, token: string): DevToken {
  const dir = resolve(file, '..');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stats = lstatSync(dir);
    if (!stats.isDirectory()) throw new Error(`${dir} is not a directory`);
    const uid = process.getuid?.();
    if (uid !== undefined && stats.uid !== uid)
      throw new Error(`${dir} belongs to uid ${stats.uid}, not to you`);
    if ((stats.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${token}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, file);
  } catch (error) {
    throw new CharterError(
      'INVALID_FLAG',
      `cannot write the generated token to ${file}: ${errorMessage(error)}`,
      {
        hint: 'Give a token of your own with --token-file FILE.',
      },
    );
  }
  return { token, file: resolve(file), origin: 'new' };
}
