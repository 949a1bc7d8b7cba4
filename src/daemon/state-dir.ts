/**
 * Preparing `.charter/daemon/` (and the fallback socket directory for deep project paths) and
 * clearing what a killed daemon left behind. Only ever called while holding the project lock,
 * so anything found here is stale by construction.
 */
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { CharterError } from '../errors/charter-error.js';
import type { DaemonPaths } from '../project/paths.js';
import { readRuntimeFile } from '../project/runtime-file.js';

/** Creates a private (0700) directory, refusing symlinks and directories owned by someone else. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stats = lstatSync(dir);
  if (!stats.isDirectory()) throw new CharterError('STATE_DIR_UNSAFE', `${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new CharterError(
      'STATE_DIR_UNSAFE',
      `${dir} is owned by uid ${stats.uid}, not by you (uid ${uid})`,
    );
  }
  if ((stats.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

export interface StaleState {
  /** pid recorded by a daemon that did not exit cleanly, if any. */
  readonly stalePid: number | null;
  readonly removedSocket: boolean;
}

/** Removes the runtime file and socket of a dead daemon. Call with the lock held. */
export function clearStaleState(paths: DaemonPaths): StaleState {
  const runtime = readRuntimeFile(paths.runtimeFile);
  rmSync(paths.runtimeFile, { force: true });
  let removedSocket = false;
  try {
    const stats = lstatSync(paths.socketPath);
    if (!stats.isSocket()) {
      throw new CharterError('STATE_DIR_UNSAFE', `${paths.socketPath} exists and is not a socket; remove it`);
    }
    rmSync(paths.socketPath);
    removedSocket = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return { stalePid: runtime?.pid ?? null, removedSocket };
}

export function prepareStateDirs(paths: DaemonPaths): void {
  ensurePrivateDir(paths.stateDir);
  if (paths.socketIsFallback) ensurePrivateDir(dirname(paths.socketPath));
}
