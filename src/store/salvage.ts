/**
 * `store recover`: moves a damaged store aside (kept, under a timestamped name, with its WAL) and
 * salvages what SQLite can still read into a fresh store, keeping the daemon identity and the
 * seq high-water mark so the gateway never sees seq go backwards or a new daemon id appear.
 *
 * Each table is read by rowid, a page of rows at a time and row by row around a damaged b-tree
 * page (see walk). Rows that come back but do not fit the schema (garbage that happened to
 * parse) are dropped and counted as lost too.
 * The caller holds the project lock: no daemon runs meanwhile.
 */
import { existsSync, renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import { readIdentity } from './identity.js';
import { Store } from './store.js';

export interface TableSalvage {
  readonly salvaged: number;
  /** Rows known unreadable or unusable (a lower bound when whole ranges were unreadable). */
  readonly lost: number;
  /** Unreadable rowid ranges, `first-last`, at most 20. */
  readonly unreadable: readonly string[];
}

export interface RecoverReport {
  readonly store_path: string;
  /** Where the damaged file now is (its -wal and -shm beside it), or null when there was none. */
  readonly moved_to: string | null;
  readonly daemon_id: string;
  /** Where the daemon id came from: the damaged store, identity.json, or new (neither readable). */
  readonly daemon_id_source: 'store' | 'identity' | 'new';
  /** The next journal entry gets a seq above this. */
  readonly seq_high_water: number;
  readonly tables: Readonly<Record<'runs' | 'steps' | 'journal' | 'inbox' | 'meta', TableSalvage>>;
  /** Runs whose events survive but whose row was lost (their events were kept). */
  readonly runs_without_row: number;
  readonly duration_ms: number;
}

const PAGE = 500;
const MAX_ROWID = Number.MAX_SAFE_INTEGER;
const MAX_RANGES = 20;

interface Walked<T> {
  rows: T[];
  lost: number;
  unreadable: string[];
}

/**
 * Reads every readable row of `table`. When one of its indexes can still be read, it lists every
 * rowid the table holds: rows are then read by rowid, a page at a time, and one by one where a
 * page fails, so the lost rows are known exactly. Otherwise see {@link walkBlind}.
 */
function walk<T extends { _rowid: number }>(
  db: Database.Database,
  table: string,
  columns: string,
): Walked<T> {
  const rowids = rowidsFromAnIndex(db, table);
  if (rowids === undefined) return walkBlind(db, table, columns);
  const out: Walked<T> = { rows: [], lost: 0, unreadable: [] };
  let byId: Database.Statement<[number], T>;
  let range: Database.Statement<[number, number], T>;
  try {
    const select = `SELECT rowid AS _rowid, ${columns} FROM ${table}`;
    byId = db.prepare(`${select} WHERE rowid = ?`);
    range = db.prepare(`${select} WHERE rowid >= ? AND rowid <= ? ORDER BY rowid`);
  } catch {
    out.unreadable.push('all');
    return out;
  }
  let previous: number | undefined;
  for (let start = 0; start < rowids.length; start += PAGE) {
    const ids = rowids.slice(start, start + PAGE);
    try {
      out.rows.push(...range.all(ids[0] as number, ids.at(-1) as number));
      previous = ids.at(-1);
      continue;
    } catch {
      // A damaged page in this range: row by row.
    }
    for (const id of ids) {
      try {
        const row = byId.get(id);
        if (row === undefined) throw new Error('missing');
        out.rows.push(row);
      } catch {
        out.lost += 1;
        const last = out.unreadable.at(-1);
        const [from, to] = (last ?? '').split('-');
        if (last !== undefined && previous !== undefined && to === String(previous)) {
          out.unreadable[out.unreadable.length - 1] = `${from}-${id}`;
        } else if (out.unreadable.length < MAX_RANGES) {
          out.unreadable.push(`${id}-${id}`);
        }
      }
      previous = id;
    }
  }
  return out;
}

/** Every rowid of `table`, sorted, read from the first of its indexes that is intact. */
function rowidsFromAnIndex(db: Database.Database, table: string): number[] | undefined {
  let indexes: string[];
  try {
    indexes = db
      .prepare<[string], { name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
      )
      .all(table)
      .map((row) => row.name);
  } catch {
    return undefined;
  }
  for (const index of indexes) {
    try {
      const ids = db
        .prepare<[], { id: number }>(`SELECT rowid AS id FROM ${table} INDEXED BY "${index}"`)
        .all()
        .map((row) => row.id);
      return ids.sort((a, b) => a - b);
    } catch {
      // this index is damaged too (or cannot serve the scan): try the next
    }
  }
  return undefined;
}

/**
 * Without an intact index: reads in rowid order, and skips over a read that fails by probing
 * forward in growing steps, then bisecting back to the first readable rowid.
 */
function walkBlind<T extends { _rowid: number }>(
  db: Database.Database,
  table: string,
  columns: string,
): Walked<T> {
  const out: Walked<T> = { rows: [], lost: 0, unreadable: [] };
  let page: Database.Statement<[number], T>;
  let single: Database.Statement<[number], T>;
  let probe: Database.Statement<[number], { _rowid: number }>;
  try {
    const select = `SELECT rowid AS _rowid, ${columns} FROM ${table} WHERE rowid > ? ORDER BY rowid`;
    page = db.prepare(`${select} LIMIT ${PAGE}`);
    single = db.prepare(`${select} LIMIT 1`);
    probe = db.prepare(`SELECT rowid AS _rowid FROM ${table} WHERE rowid >= ? ORDER BY rowid LIMIT 1`);
  } catch {
    out.unreadable.push('all');
    return out;
  }
  /** The first readable rowid ≥ from: undefined when unreadable, 'end' when none follows. */
  const readableFrom = (from: number): number | 'end' | undefined => {
    try {
      return probe.get(from)?._rowid ?? 'end';
    } catch {
      return undefined;
    }
  };
  let after = -MAX_ROWID;
  for (;;) {
    try {
      const rows = page.all(after);
      if (rows.length === 0) return out;
      out.rows.push(...rows);
      after = (rows.at(-1) as T)._rowid;
      continue;
    } catch {
      // Somewhere in this page: go row by row up to the damage.
    }
    try {
      const row = single.get(after);
      if (row === undefined) return out;
      out.rows.push(row);
      after = row._rowid;
      continue;
    } catch {
      // The next row is unreadable: skip the damaged part.
    }
    // Grow the step until a probe reads, then bisect back to the first rowid that does.
    let bad = after;
    let step = 1;
    let good: number | undefined;
    while (bad + step <= MAX_ROWID) {
      if (readableFrom(bad + step) !== undefined) {
        good = bad + step;
        break;
      }
      bad += step;
      step *= 2;
    }
    const next = good === undefined ? undefined : bisect(bad, good, readableFrom);
    if (next === undefined || next === 'end') {
      if (out.unreadable.length < MAX_RANGES) out.unreadable.push(`${after + 1}-end`);
      return out;
    }
    if (next === after + 1) {
      // Its rowid reads but its columns do not (say, a damaged overflow page): that row is lost.
      // Step past it, or the same read would fail again forever.
      if (out.unreadable.length < MAX_RANGES) out.unreadable.push(`${next}-${next}`);
      out.lost += 1;
      after = next;
      continue;
    }
    if (out.unreadable.length < MAX_RANGES) out.unreadable.push(`${after + 1}-${next - 1}`);
    // The rows between are gone; their number is known only where rowids are dense (the journal).
    out.lost += next - after - 1;
    after = next - 1;
  }
}

/** The first readable rowid at or after the boundary between `bad` (unreadable) and `good`. */
function bisect(
  bad: number,
  good: number,
  readableFrom: (from: number) => number | 'end' | undefined,
): number | 'end' | undefined {
  let low = bad;
  let high = good;
  while (high - low > 1) {
    const mid = low + Math.floor((high - low) / 2);
    if (readableFrom(mid) === undefined) low = mid;
    else high = mid;
  }
  return readableFrom(high);
}

interface MetaRow {
  _rowid: number;
  key: string;
  value: string;
}

/** Moves the damaged store aside and salvages it into a fresh one at `storePath`. */
export function recoverStore(storePath: string, identityPath: string, now: Date = new Date()): RecoverReport {
  const started = performance.now();
  const identity = readIdentity(identityPath);
  let movedTo: string | null = null;
  if (existsSync(storePath)) {
    movedTo = `${storePath}.damaged-${now.toISOString().replace(/[:.]/g, '-')}`;
    // The WAL goes along under the matching name, so that SQLite still finds it.
    for (const suffix of ['-wal', '-shm']) {
      if (existsSync(`${storePath}${suffix}`)) renameSync(`${storePath}${suffix}`, `${movedTo}${suffix}`);
    }
    renameSync(storePath, movedTo);
  }

  let old: Database.Database | undefined;
  if (movedTo !== null) {
    try {
      old = new Database(movedTo, { fileMustExist: true });
    } catch {
      old = undefined;
    }
  }
  const empty: Walked<never> = { rows: [], lost: 0, unreadable: old === undefined ? ['all'] : [] };
  const read = <T extends { _rowid: number }>(table: string, columns: string): Walked<T> =>
    old === undefined ? (empty as Walked<T>) : walk<T>(old, table, columns);

  const meta = read<MetaRow>('meta', 'key, value');
  const runs = read<Record<string, unknown> & { _rowid: number }>(
    'runs',
    'run_id, workflow_id, state, reason, current_step, step_index, attempt, waiting, inputs, answers, last_run_seq, created_at, updated_at, finished_at',
  );
  // Columns later migrations added: a store from before retries (schema 4) has no retry_at and
  // attempts, one from before step outputs (schema 5) no outputs; their steps have none.
  const laterColumn = (column: string, absent: string): string =>
    old !== undefined && hasColumn(old, 'steps', column) ? column : `${absent} AS ${column}`;
  const steps = read<Record<string, unknown> & { _rowid: number }>(
    'steps',
    `run_id, idx, step_id, kind, state, attempt, started_at, finished_at, exit_code, reason, ${[
      laterColumn('retry_at', 'NULL'),
      laterColumn('attempts', "'[]'"),
      laterColumn('outputs', 'NULL'),
    ].join(', ')}`,
  );
  const journal = read<Record<string, unknown> & { _rowid: number }>(
    'journal',
    'seq, ts, run_id, run_seq, type, data',
  );
  const inbox = read<Record<string, unknown> & { _rowid: number }>(
    'inbox',
    'dseq, cmd_id, kind, run_id, args, received_at, status, result',
  );
  let oldSequence = 0;
  try {
    oldSequence =
      old?.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").get()
        ?.seq ?? 0;
  } catch {
    // unreadable: the rows and identity.json say the rest
  }
  old?.close();

  const metaValues = new Map(meta.rows.map((row) => [String(row.key), String(row.value)]));
  const storedId = metaValues.get('daemon_id');
  const daemonId = storedId ?? identity?.daemon_id;
  const maxSeq = journal.rows.reduce((max, row) => Math.max(max, Number(row.seq)), 0);
  const seqHighWater = Math.max(maxSeq, oldSequence, identity?.seq_high_water ?? 0);

  // Creates the file 0600 with the schema; the identity is written at the end.
  const created = Store.open(storePath);
  created.close();
  const db = new Database(storePath);
  const counts = { runs: 0, steps: 0, journal: 0, inbox: 0, meta: 0 };
  const unusable = { runs: 0, steps: 0, journal: 0, inbox: 0, meta: 0 };
  const tryInsert = (table: keyof typeof counts, stmt: Database.Statement, row: Record<string, unknown>) => {
    try {
      stmt.run(row);
      counts[table] += 1;
    } catch {
      unusable[table] += 1;
    }
  };
  const runIds = new Set<string>();
  db.transaction(() => {
    // The journal refuses deletes only; inserting salvaged rows with their own seqs is fine.
    const setMeta = db.prepare(
      'INSERT INTO meta (key, value) VALUES (@key, @value) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    for (const row of meta.rows) {
      if (row.key === 'pruning' || typeof row.key !== 'string' || typeof row.value !== 'string') continue;
      tryInsert('meta', setMeta, { key: row.key, value: row.value });
    }
    if (daemonId !== undefined) setMeta.run({ key: 'daemon_id', value: daemonId });
    const insertRun = db.prepare(
      `INSERT INTO runs (run_id, workflow_id, state, reason, current_step, step_index, attempt, waiting, inputs,
         answers, last_run_seq, created_at, updated_at, finished_at)
       VALUES (@run_id, @workflow_id, @state, @reason, @current_step, @step_index, @attempt, @waiting, @inputs,
         @answers, @last_run_seq, @created_at, @updated_at, @finished_at)`,
    );
    for (const { _rowid, ...row } of runs.rows) {
      if (!jsonColumns(row, ['inputs', 'answers'], ['waiting'])) {
        unusable.runs += 1;
        continue;
      }
      tryInsert('runs', insertRun, row);
      if (typeof row.run_id === 'string') runIds.add(row.run_id);
    }
    const insertStep = db.prepare(
      `INSERT INTO steps (run_id, idx, step_id, kind, state, attempt, started_at, finished_at, exit_code, reason,
         retry_at, attempts, outputs)
       VALUES (@run_id, @idx, @step_id, @kind, @state, @attempt, @started_at, @finished_at, @exit_code, @reason,
         @retry_at, @attempts, @outputs)`,
    );
    for (const { _rowid, ...row } of steps.rows) {
      if (!runIds.has(String(row.run_id))) {
        unusable.steps += 1;
        continue;
      }
      // Damaged outputs or history are dropped; the step itself is kept.
      if (!jsonColumns(row, [], ['outputs'])) row.outputs = null;
      if (!jsonList(row.attempts)) row.attempts = '[]';
      tryInsert('steps', insertStep, row);
    }
    const insertEntry = db.prepare(
      'INSERT INTO journal (seq, ts, run_id, run_seq, type, data) VALUES (@seq, @ts, @run_id, @run_seq, @type, @data)',
    );
    for (const { _rowid, ...row } of journal.rows) {
      if (!jsonColumns(row, ['data'], [])) {
        unusable.journal += 1;
        continue;
      }
      tryInsert('journal', insertEntry, row);
    }
    const insertCommand = db.prepare(
      `INSERT INTO inbox (dseq, cmd_id, kind, run_id, args, received_at, status, result)
       VALUES (@dseq, @cmd_id, @kind, @run_id, @args, @received_at, @status, @result)`,
    );
    for (const { _rowid, ...row } of inbox.rows) tryInsert('inbox', insertCommand, row);
    db.prepare("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'journal'").run(seqHighWater);
    if (db.prepare("SELECT 1 FROM sqlite_sequence WHERE name = 'journal'").get() === undefined) {
      db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('journal', ?)").run(seqHighWater);
    }
  })();
  const orphaned = db
    .prepare<[], { n: number }>(
      'SELECT count(DISTINCT run_id) AS n FROM journal WHERE run_id IS NOT NULL AND run_id NOT IN (SELECT run_id FROM runs)',
    )
    .get()?.n;
  db.close();
  // Reopened as the daemon opens it: the identity file is written with the kept id and seq.
  const store = Store.open(storePath, { identityPath, freshStore: true });
  const finalId = store.daemonId;
  store.close();

  const table = (name: keyof typeof counts, walked: Walked<unknown & { _rowid: number }>): TableSalvage => ({
    salvaged: counts[name],
    lost: walked.lost + unusable[name],
    unreadable: walked.unreadable,
  });
  return {
    store_path: storePath,
    moved_to: movedTo,
    daemon_id: finalId,
    daemon_id_source: storedId !== undefined ? 'store' : identity !== undefined ? 'identity' : 'new',
    seq_high_water: seqHighWater,
    tables: {
      runs: table('runs', runs),
      steps: table('steps', steps),
      journal: table('journal', journal),
      inbox: table('inbox', inbox),
      meta: table('meta', meta),
    },
    runs_without_row: orphaned ?? 0,
    duration_ms: Math.round(performance.now() - started),
  };
}

/** Whether a table of the old store has a column (false when its schema cannot be read). */
function hasColumn(db: Database.Database, table: string, column: string): boolean {
  try {
    return db
      .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`)
      .all()
      .some((row) => row.name === column);
  } catch {
    return false;
  }
}

/** A salvaged column holds a JSON list (the steps' attempts history). */
function jsonList(value: unknown): boolean {
  try {
    return Array.isArray(JSON.parse(String(value)));
  } catch {
    return false;
  }
}

/** The JSON columns of a salvaged row parse (garbage that read as text does not). */
function jsonColumns(row: Record<string, unknown>, required: string[], nullable: string[]): boolean {
  try {
    for (const column of required) JSON.parse(String(row[column]));
    for (const column of nullable) if (row[column] !== null) JSON.parse(String(row[column]));
    return true;
  } catch {
    return false;
  }
}
