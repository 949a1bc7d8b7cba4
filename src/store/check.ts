/**
 * `store check`: an integrity check of the store file, run by the CLI itself (SQLite's WAL lets
 * it read beside a running daemon). `quick_check` by default, `integrity_check` with `full`
 * (also compares every index with its table). Also says whether the file matches identity.json.
 */
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { errorMessage } from '../errors/error-message.js';
import { readIdentity } from './identity.js';
import { latestSchemaVersion } from './migrations.js';
import { quickCheck } from './store.js';

export interface StoreCheckReport {
  readonly store_path: string;
  readonly ok: boolean;
  readonly check: 'quick_check' | 'integrity_check';
  /** What is wrong, at most 10 lines; empty when ok. */
  readonly problems: readonly string[];
  readonly size_bytes: number;
  readonly wal_bytes: number;
  readonly schema_version: number | null;
  readonly latest_schema_version: number;
  readonly daemon_id: string | null;
  /** The id identity.json names (null without one). */
  readonly identity_daemon_id: string | null;
  readonly duration_ms: number;
}

export function checkStore(storePath: string, identityPath: string, full: boolean): StoreCheckReport {
  const started = performance.now();
  const identity = readIdentity(identityPath);
  const size = (path: string) => (existsSync(path) ? statSync(path).size : 0);
  const problems: string[] = [];
  let schemaVersion: number | null = null;
  let daemonId: string | null = null;
  if (!existsSync(storePath) || size(storePath) === 0) {
    problems.push(`${storePath} is ${existsSync(storePath) ? 'empty' : 'missing'}`);
  } else {
    let db: Database.Database | undefined;
    try {
      db = new Database(storePath, { fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      schemaVersion = Number(db.pragma('user_version', { simple: true }));
      problems.push(...quickCheck(db, full));
      try {
        daemonId =
          db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'daemon_id'").get()?.value ??
          null;
      } catch (error) {
        problems.push(`the daemon id cannot be read: ${errorMessage(error)}`);
      }
    } catch (error) {
      problems.push(errorMessage(error));
    } finally {
      db?.close();
    }
  }
  if (identity !== undefined && daemonId !== null && daemonId !== identity.daemon_id) {
    problems.push(`the store belongs to daemon ${daemonId}, identity.json names ${identity.daemon_id}`);
  }
  return {
    store_path: storePath,
    ok: problems.length === 0,
    check: full ? 'integrity_check' : 'quick_check',
    problems,
    size_bytes: size(storePath),
    wal_bytes: size(`${storePath}-wal`),
    schema_version: schemaVersion,
    latest_schema_version: latestSchemaVersion,
    daemon_id: daemonId,
    identity_daemon_id: identity?.daemon_id ?? null,
    duration_ms: Math.round(performance.now() - started),
  };
}
