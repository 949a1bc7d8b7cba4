/**
 * The daemon's durable store: one SQLite file holding a little metadata and an append-only
 * journal, runs, and the gateway's outbox cursor and inbox. Every write is one transaction,
 * committed to the WAL before it returns, so whatever a caller was told is stored survives a
 * crash or a SIGKILL of the daemon (synchronous=NORMAL: only a power loss can take the last ones).
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CharterError, isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { GatewayStore } from './gateway-store.js';
import type { JournalEntry, JournalRow, NewJournalEntry, ReadJournalOptions } from './journal-entry.js';
import { latestSchemaVersion, migrations } from './migrations.js';
import { RunStore } from './run-store.js';

export type { JournalEntry, NewJournalEntry, ReadJournalOptions } from './journal-entry.js';

const DEFAULT_READ_LIMIT = 1000;
const MAX_READ_LIMIT = 10_000;

interface InsertParams {
  ts: string;
  run_id: string | null;
  run_seq: number | null;
  type: string;
  data: string;
}

interface ReadParams {
  afterSeq: number;
  type: string | null;
  limit: number;
}

const COLUMNS = 'seq, ts, run_id, run_seq, type, data';

export class Store {
  readonly path: string;
  readonly daemonId: string;

  private readonly db: Database.Database;
  // Prepared once: append and read are the hot path.
  private readonly insertStmt: Database.Statement<[InsertParams]>;
  private readonly readStmt: Database.Statement<[ReadParams], JournalRow>;
  private readonly lastSeqStmt: Database.Statement<[], { seq: number | null }>;
  private readonly lastOfTypesStmt: Database.Statement<[string], JournalRow>;
  private readonly nextEpochStmt: Database.Statement<[], { value: string }>;
  private readonly probeStmt: Database.Statement<[string]>;
  private readonly appendManyTx: (entries: readonly NewJournalEntry[]) => JournalEntry[];
  private readonly runStore: RunStore;
  private readonly gatewayStore: GatewayStore;
  private readonly appendListeners = new Set<(entry: JournalEntry) => void>();

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    this.daemonId = ensureDaemonId(db);
    this.insertStmt = db.prepare(
      'INSERT INTO journal (ts, run_id, run_seq, type, data) VALUES (@ts, @run_id, @run_seq, @type, @data)',
    );
    this.readStmt = db.prepare(
      `SELECT ${COLUMNS} FROM journal WHERE seq > @afterSeq AND (@type IS NULL OR type = @type)
       ORDER BY seq LIMIT @limit`,
    );
    this.lastSeqStmt = db.prepare('SELECT max(seq) AS seq FROM journal');
    // The type list travels as one JSON array so a single prepared statement serves any list.
    this.lastOfTypesStmt = db.prepare(
      `SELECT ${COLUMNS} FROM journal WHERE type IN (SELECT value FROM json_each(?))
       ORDER BY seq DESC LIMIT 1`,
    );
    // One statement, so the read-increment-write cannot interleave with another writer.
    this.nextEpochStmt = db.prepare(
      `INSERT INTO meta (key, value) VALUES ('epoch', '1')
       ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
       RETURNING value`,
    );
    this.probeStmt = db.prepare(
      `INSERT INTO meta (key, value) VALUES ('write_probe', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    );
    this.appendManyTx = db.transaction((entries: readonly NewJournalEntry[]) =>
      entries.map((entry) => this.insert(entry)),
    );
    // Same connection and same journal insert: a run's row changes and its events commit in one
    // transaction.
    this.runStore = new RunStore(db, (entry) => this.insert(entry));
    this.gatewayStore = new GatewayStore(db, (entry) => this.insert(entry));
  }

  /** The gateway's outbox cursor and command inbox. */
  get gateway(): GatewayStore {
    return this.gatewayStore;
  }

  /**
   * Calls `listener` for every entry appended, synchronously and possibly inside a transaction
   * that has not committed yet: treat it as a hint and read the store later (e.g. setImmediate).
   * Returns the function that unsubscribes.
   */
  onAppend(listener: (entry: JournalEntry) => void): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** Durable runs and their steps, whose events go to this journal. */
  get runs(): RunStore {
    return this.runStore;
  }

  /** Opens (creating if needed) the store at `path` and brings its schema up to date. */
  static open(path: string): Store {
    let db: Database.Database | undefined;
    try {
      // Create the file ourselves so it is private from the start; SQLite gives the -wal and
      // -shm files the same mode as the database.
      closeSync(openSync(path, 'a', 0o600));
      db = new Database(path);
      applyPragmas(db);
      migrate(db);
      return new Store(path, db);
    } catch (error) {
      db?.close();
      if (isCharterError(error)) throw error;
      const reason = errorMessage(error);
      throw new CharterError('STORE_FAILED', `cannot open store at ${path}: ${reason}`, { cause: error });
    }
  }

  /** A tiny write (its own transaction) that says whether the store takes writes right now. */
  probeWrite(): void {
    this.probeStmt.run(new Date().toISOString());
  }

  /** Increments and returns the epoch (1 on the first call ever): one per daemon process. */
  beginEpoch(): number {
    const row = this.nextEpochStmt.get();
    return Number(row?.value);
  }

  /** Appends one entry (its own transaction) and returns it as stored. */
  append(entry: NewJournalEntry): JournalEntry {
    // A single INSERT runs in its own implicit transaction.
    return this.insert(entry);
  }

  /** Appends all entries in one transaction: either all are stored or none. */
  appendMany(entries: readonly NewJournalEntry[]): JournalEntry[] {
    return this.appendManyTx(entries);
  }

  /** Entries in ascending seq order. */
  readJournal(options: ReadJournalOptions = {}): JournalEntry[] {
    const requested = Math.trunc(options.limit ?? DEFAULT_READ_LIMIT);
    // Clamp below too: SQLite reads a negative LIMIT as "no limit".
    const limit = Math.min(Math.max(requested, 0), MAX_READ_LIMIT);
    const rows = this.readStmt.all({ afterSeq: options.afterSeq ?? 0, type: options.type ?? null, limit });
    return rows.map(toEntry);
  }

  /** The newest seq, or 0 when the journal is empty. */
  lastSeq(): number {
    return this.lastSeqStmt.get()?.seq ?? 0;
  }

  /** The newest entry whose type is one of `types`. */
  lastOfTypes(types: readonly string[]): JournalEntry | undefined {
    const row = this.lastOfTypesStmt.get(JSON.stringify(types));
    return row === undefined ? undefined : toEntry(row);
  }

  schemaVersion(): number {
    return userVersion(this.db);
  }

  /** Closes the store; calling it again does nothing. */
  close(): void {
    if (!this.db.open) return;
    try {
      // Fold the WAL back into the database so the file on disk is complete on its own.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Best effort: the WAL is replayed on the next open anyway.
    }
    this.db.close();
  }

  private insert(entry: NewJournalEntry): JournalEntry {
    const data = encodeData(entry.data);
    const params: InsertParams = {
      ts: (entry.ts ?? new Date()).toISOString(),
      run_id: entry.runId ?? null,
      run_seq: entry.runSeq ?? null,
      type: entry.type,
      data,
    };
    const { lastInsertRowid } = this.insertStmt.run(params);
    // Return what a later read would return (e.g. a Date in data comes back as a string).
    const stored = toEntry({ seq: Number(lastInsertRowid), ...params });
    for (const listener of this.appendListeners) listener(stored);
    return stored;
  }
}

function applyPragmas(db: Database.Database): void {
  db.pragma('busy_timeout = 5000');
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  // SQLite silently keeps another mode when WAL is impossible (e.g. some network filesystems).
  if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, expected wal`);
  // WAL + NORMAL: a commit is durable against a crash or kill of the daemon (the WAL is in the
  // OS's hands once written); only a power loss or kernel crash can lose the last commits.
  // FULL would fsync every commit: several times slower per run on an ordinary disk.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

function migrate(db: Database.Database): void {
  const current = userVersion(db);
  if (current > latestSchemaVersion) {
    throw new CharterError(
      'STORE_TOO_NEW',
      `the store has schema version ${current}, this charter-daemon knows up to version ${latestSchemaVersion}`,
    );
  }
  for (const migration of migrations) {
    // IMMEDIATE takes the write lock first, and the re-check inside skips a migration another
    // process applied while we waited for it.
    db.transaction(() => {
      if (userVersion(db) >= migration.version) return;
      db.exec(migration.up);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}

function ensureDaemonId(db: Database.Database): string {
  // OR IGNORE keeps the id of the first open forever.
  db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('daemon_id', ?)").run(randomUUID());
  const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'daemon_id'").get();
  if (row === undefined) throw new Error('daemon_id missing from meta');
  return row.value;
}

function userVersion(db: Database.Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

function encodeData(data: unknown): string {
  if (data === undefined) return '{}';
  // Throws on BigInt and cycles; returns undefined for a bare function or symbol.
  const json: string | undefined = JSON.stringify(data);
  if (json === undefined) throw new TypeError(`journal data cannot be JSON-encoded (${typeof data})`);
  return json;
}

function toEntry(row: JournalRow): JournalEntry {
  return { ...row, data: JSON.parse(row.data) as unknown };
}
