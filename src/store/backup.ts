/**
 * A consistent copy of the store through SQLite's online backup API: pages are copied in steps
 * while writers go on (a write during the copy restarts the pages it touched), so the copy is
 * one committed state of the store. Written to a private temporary file beside the target and
 * renamed into place: a reader never sees half a backup, and the file is 0600 from the start.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CharterError } from '../errors/charter-error.js';

export interface BackupFacts {
  readonly path: string;
  readonly bytes: number;
  readonly duration_ms: number;
  readonly daemon_id: string;
  readonly last_seq: number;
}

/** Copies `db` to `destination` (absolute, not existing yet). */
export async function backupDatabase(db: Database.Database, destination: string): Promise<BackupFacts> {
  const started = performance.now();
  if (existsSync(destination)) {
    throw new CharterError('INVALID_PARAMS', `${destination} exists already: name a new file`);
  }
  if (!existsSync(dirname(destination))) {
    throw new CharterError('INVALID_PARAMS', `the folder ${dirname(destination)} does not exist`);
  }
  const temp = `${destination}.partial-${process.pid}`;
  // Private from the first byte: the copy holds every run's inputs and output.
  closeSync(openSync(temp, 'w', 0o600));
  try {
    await db.backup(temp);
    chmodSync(temp, 0o600);
    const copy = new Database(temp, { fileMustExist: true });
    let facts: { daemon_id: string; last_seq: number };
    try {
      // One file on its own: no WAL beside it.
      copy.pragma('journal_mode = DELETE');
      facts = {
        daemon_id:
          copy.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'daemon_id'").get()
            ?.value ?? '',
        last_seq:
          copy.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM journal').get()?.seq ?? 0,
      };
    } finally {
      copy.close();
    }
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, destination);
    return {
      path: destination,
      bytes: statSync(destination).size,
      duration_ms: Math.round(performance.now() - started),
      ...facts,
    };
  } catch (error) {
    rmSync(temp, { force: true });
    rmSync(`${temp}-journal`, { force: true });
    throw error;
  }
}
