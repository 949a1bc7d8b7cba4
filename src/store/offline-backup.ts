/** `store backup` when no daemon runs: the copy is read from the store file directly. */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CharterError } from '../errors/charter-error.js';
import { backupDatabase } from './backup.js';

export async function backupStoppedStore(
  storePath: string,
  destination: string,
): Promise<{
  path: string;
  bytes: number;
  duration_ms: number;
  daemon_id: string;
  last_seq: number;
  online: false;
}> {
  if (!existsSync(storePath))
    throw new CharterError('STORE_MISSING', `${storePath} does not exist: nothing to back up`);
  const db = new Database(storePath, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return { ...(await backupDatabase(db, destination)), online: false };
  } finally {
    db.close();
  }
}
