/**
 * The daemon's durable store: one SQLite file holding a little metadata and an append-only
 * journal, runs, and the gateway's outbox cursor and inbox. Every write is one transaction,
 * committed to the WAL before it returns, so whatever a caller was told is stored survives a
 * crash or a SIGKILL of the daemon (synchronous=NORMAL: only a power loss can take the last ones).
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CharterError, isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { type BackupFacts, backupDatabase } from './backup.js';
import { GatewayStore } from './gateway-store.js';
import {
  fingerprintOf,
  readIdentity,
  type StoreIdentity,
  sameFingerprint,
  writeIdentity,
} from './identity.js';
import type { JournalEntry, JournalRow, NewJournalEntry, ReadJournalOptions } from './journal-entry.js';
import { latestSchemaVersion, migrations } from './migrations.js';
import { RetentionStore } from './retention.js';
import { RunStore } from './run-store.js';
import { corruptStoreError, isCorruptionError } from './store-errors.js';

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
const SQLITE_MAGIC = 'SQLite format 3\0';
/** How many problems a failed integrity check names. */
const MAX_PROBLEMS = 10;

export interface StoreOpenOptions {
  /**
   * `identity.json` beside the store (see identity.ts). With it, a missing or empty store of a
   * known identity is refused (STORE_MISSING) unless `freshStore`, the store's seq never goes
   * below the remembered high-water mark, and an unchanged store gets the light check only.
   */
  readonly identityPath?: string;
  /** Start with an empty store on purpose, keeping the identity's daemon id and seq. */
  readonly freshStore?: boolean;
}

/** What opening the store did, for the log. */
export interface StoreOpenReport {
  /** `light` when the file was unchanged since a clean close, else `full` (quick_check). */
  readonly check: 'light' | 'full';
  readonly checkMs: number;
  /** A store made before incremental vacuum was switched on: rewritten once. */
  readonly vacuumed: boolean;
  /** The seq was raised to the identity's high-water mark (a restored or recovered store). */
  readonly seqRaisedTo: number | null;
  readonly fresh: boolean;
}

export class Store {
  readonly path: string;
  readonly daemonId: string;
  readonly identityPath: string | undefined;
  openReport: StoreOpenReport = {
    check: 'light',
    checkMs: 0,
    vacuumed: false,
    seqRaisedTo: null,
    fresh: false,
  };

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
  private readonly retentionStore: RetentionStore;
  private readonly appendListeners = new Set<(entry: JournalEntry) => void>();

  private constructor(path: string, db: Database.Database, identityPath?: string, knownId?: string) {
    this.path = path;
    this.db = db;
    this.identityPath = identityPath;
    this.daemonId = ensureDaemonId(db, knownId);
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
    this.retentionStore = new RetentionStore(db, path);
  }

  /** Pruning finished runs, and the store's size and oldest kept run. */
  get retention(): RetentionStore {
    return this.retentionStore;
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

  /**
   * Opens (creating if needed) the store at `path` and brings its schema up to date. A damaged
   * file is refused (STORE_CORRUPT), a newer schema too (STORE_TOO_NEW); with an identity file,
   * so is a missing or empty store of a known identity (STORE_MISSING).
   */
  static open(path: string, options: StoreOpenOptions = {}): Store {
    let db: Database.Database | undefined;
    try {
      const identity = options.identityPath === undefined ? undefined : readIdentity(options.identityPath);
      const existed = existsSync(path) && statSync(path).size > 0;
      if (identity !== undefined && !existed && !options.freshStore) {
        throw new CharterError(
          'STORE_MISSING',
          `${path} is ${existsSync(path) ? 'empty' : 'missing'}, but ${options.identityPath} names daemon ${identity.daemon_id} (seq up to ${identity.seq_high_water}): refusing to start a new history silently`,
        );
      }
      // A WAL left behind means an unclean stop: the file changed since it was last checked.
      const cleanSince =
        existed && !existsSync(`${path}-wal`) && sameFingerprint(identity?.closed_store, fingerprintOf(path));
      if (existed) checkHeader(path);
      // Create the file ourselves so it is private from the start; SQLite gives the -wal and
      // -shm files the same mode as the database.
      closeSync(openSync(path, 'a', 0o600));
      db = new Database(path);
      applyPragmas(db);
      refuseNewer(db);
      const started = performance.now();
      const light = cleanSince;
      if (light) lightCheck(db, path);
      else if (existed) fullCheck(db, path);
      const checkMs = performance.now() - started;
      if (identity !== undefined && existed && !options.freshStore)
        refuseEmptyOrForeign(db, path, identity, options);
      const vacuumed = migrate(db);
      const seqRaisedTo = identity === undefined ? null : raiseSeq(db, identity.seq_high_water);
      const store = new Store(path, db, options.identityPath, identity?.daemon_id);
      store.openReport = { check: light ? 'light' : 'full', checkMs, vacuumed, seqRaisedTo, fresh: !existed };
      // While open, the file changes: the fingerprint of the last clean close no longer holds.
      store.saveIdentity(false);
      return store;
    } catch (error) {
      db?.close();
      if (isCharterError(error)) throw error;
      if (isCorruptionError(error)) throw corruptStoreError(path, error);
      const reason = errorMessage(error);
      throw new CharterError('STORE_FAILED', `cannot open store at ${path}: ${reason}`, { cause: error });
    }
  }

  /**
   * Writes identity.json (when the store has one): the daemon id and the seq high-water mark,
   * with the file's fingerprint once closed cleanly. Best effort: the store stays the record.
   */
  saveIdentity(closed: boolean): void {
    if (this.identityPath === undefined) return;
    try {
      const previous = readIdentity(this.identityPath);
      const seq = Math.max(this.db.open ? this.highestSeq() : 0, previous?.seq_high_water ?? 0);
      writeIdentity(this.identityPath, {
        daemon_id: this.daemonId,
        seq_high_water: seq,
        closed_store: closed ? (fingerprintOf(this.path) ?? null) : null,
      });
    } catch {
      // A full disk or an unwritable directory: the store's own meta still holds the identity.
    }
  }

  /** The highest seq ever handed out (deleted rows included), from SQLite's sequence table. */
  highestSeq(): number {
    const row = this.db
      .prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'journal'")
      .get();
    return Math.max(row?.seq ?? 0, this.lastSeq());
  }

  /**
   * A consistent copy of the store at `destination` through SQLite's online backup API, while
   * writers go on (each step copies some pages and yields to the event loop).
   */
  backup(destination: string): Promise<BackupFacts> {
    return backupDatabase(this.db, destination);
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
    let highest = 0;
    try {
      highest = this.highestSeq();
      // Fold the WAL back into the database so the file on disk is complete on its own.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Best effort: the WAL is replayed on the next open anyway.
    }
    this.db.close();
    if (this.identityPath === undefined) return;
    try {
      const previous = readIdentity(this.identityPath);
      writeIdentity(this.identityPath, {
        daemon_id: this.daemonId,
        seq_high_water: Math.max(highest, previous?.seq_high_water ?? 0),
        // Only a store without a WAL left over is known to be as we checked it.
        closed_store: existsSync(`${this.path}-wal`) ? null : (fingerprintOf(this.path) ?? null),
      });
    } catch {
      // See saveIdentity.
    }
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
  // Before the first table exists this takes effect at once: pruning then gives space back
  // (incremental_vacuum). Older stores are converted once by migrate().
  if (userVersion(db) === 0 && tableCount(db) === 0) db.pragma('auto_vacuum = INCREMENTAL');
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  // SQLite silently keeps another mode when WAL is impossible (e.g. some network filesystems).
  if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, expected wal`);
  // WAL + NORMAL: a commit is durable against a crash or kill of the daemon (the WAL is in the
  // OS's hands once written); only a power loss or kernel crash can lose the last commits.
  // FULL would fsync every commit: several times slower per run on an ordinary disk.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

function tableCount(db: Database.Database): number {
  return db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get()
    ?.n as number;
}

/** A file that does not start like an SQLite database is damaged (or not ours): refused. */
function checkHeader(path: string): void {
  const header = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 100 || header.toString('latin1', 0, 16) !== SQLITE_MAGIC) {
    throw new CharterError('STORE_CORRUPT', `${path} is damaged: it does not start with an SQLite header`);
  }
}

function refuseNewer(db: Database.Database): void {
  const current = userVersion(db);
  if (current > latestSchemaVersion) {
    throw new CharterError(
      'STORE_TOO_NEW',
      `the store has schema version ${current}, this charter-daemon knows up to version ${latestSchemaVersion}`,
    );
  }
}

/**
 * The check for a file unchanged since a clean close: the schema and the journal's newest
 * entry can be read, and the file is as long as its header says.
 */
function lightCheck(db: Database.Database, path: string): void {
  db.prepare('SELECT count(*) FROM sqlite_master').get();
  if (userVersion(db) > 0) db.prepare('SELECT max(seq) FROM journal').get();
  const pages = Number(db.pragma('page_count', { simple: true }));
  const pageSize = Number(db.pragma('page_size', { simple: true }));
  if (pages * pageSize > statSync(path).size) {
    throw new CharterError('STORE_CORRUPT', `${path} is damaged: it is shorter than its header says`);
  }
}

/** PRAGMA quick_check: every page read, every b-tree walked (about a second per GB). */
function fullCheck(db: Database.Database, path: string): void {
  const problems = quickCheck(db);
  if (problems.length > 0) {
    throw new CharterError('STORE_CORRUPT', `${path} is damaged: ${problems.join('; ')}`);
  }
}

/** The problems `quick_check` (or `integrity_check`) reports, at most MAX_PROBLEMS; none when sound. */
export function quickCheck(db: Database.Database, full = false): string[] {
  const rows = db
    .prepare<[], Record<string, string>>(
      `PRAGMA ${full ? 'integrity_check' : 'quick_check'}(${MAX_PROBLEMS})`,
    )
    .all();
  const problems = rows.map((row) => String(Object.values(row)[0]));
  return problems.length === 1 && problems[0] === 'ok' ? [] : problems;
}

/**
 * A store that exists but holds no identity (emptied, or a blank database put in its place), or
 * another daemon's identity, while identity.json names ours: refused, as a missing one is.
 */
function refuseEmptyOrForeign(
  db: Database.Database,
  path: string,
  identity: StoreIdentity,
  options: StoreOpenOptions,
): void {
  const hasMeta = userVersion(db) > 0;
  const id = hasMeta
    ? db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'daemon_id'").get()?.value
    : undefined;
  if (id === identity.daemon_id) return;
  const what = id === undefined ? 'holds no daemon identity (an empty store)' : `belongs to daemon ${id}`;
  throw new CharterError(
    'STORE_MISSING',
    `${path} ${what}, but ${options.identityPath} names daemon ${identity.daemon_id} (seq up to ${identity.seq_high_water}): refusing to start a new history silently`,
  );
}

/** Applies the migrations; returns true when the store was converted to incremental vacuum. */
function migrate(db: Database.Database): boolean {
  refuseNewer(db);
  for (const migration of migrations) {
    // IMMEDIATE takes the write lock first, and the re-check inside skips a migration another
    // process applied while we waited for it.
    db.transaction(() => {
      if (userVersion(db) >= migration.version) return;
      db.exec(migration.up);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
  // INCREMENTAL = 2. A store made before retention existed is rewritten once (VACUUM) so that
  // pruned pages can be given back to the filesystem.
  if (Number(db.pragma('auto_vacuum', { simple: true })) === 2) return false;
  db.pragma('auto_vacuum = INCREMENTAL');
  db.exec('VACUUM');
  return true;
}

/** Never hand out a seq at or below one handed out before (a restored or recovered store). */
function raiseSeq(db: Database.Database, highWater: number): number | null {
  const row = db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").get();
  const last = db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM journal').get()?.seq ?? 0;
  if (Math.max(row?.seq ?? 0, last) >= highWater) return null;
  db.transaction(() => {
    if (row === undefined) {
      db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('journal', ?)").run(highWater);
    } else {
      db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'journal'").run(highWater);
    }
  }).immediate();
  return highWater;
}

function ensureDaemonId(db: Database.Database, knownId?: string): string {
  // OR IGNORE keeps the id of the first open forever; a fresh store of a known identity takes
  // that identity's id.
  db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('daemon_id', ?)").run(knownId ?? randomUUID());
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
