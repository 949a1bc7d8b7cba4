/** The shapes of journal entries, shared by the store and its readers. */

/** One stored journal entry; field names match the columns (and the wire). */
export interface JournalEntry {
  /** Position in the journal: strictly increasing, never reused. */
  seq: number;
  /** When the entry was written, ISO 8601 (UTC). */
  ts: string;
  run_id: string | null;
  /** Position of the entry within its run, chosen by the caller. */
  run_seq: number | null;
  type: string;
  /** The decoded JSON payload. */
  data: unknown;
}

/** A journal row as SQLite returns it (`data` still JSON-encoded). */
export interface JournalRow {
  seq: number;
  ts: string;
  run_id: string | null;
  run_seq: number | null;
  type: string;
  data: string;
}

/** An entry to append; the store assigns `seq` and defaults `ts` to now and `data` to `{}`. */
export interface NewJournalEntry {
  type: string;
  /** Must be JSON-encodable (no BigInt, no cycles). */
  data?: unknown;
  runId?: string | null;
  runSeq?: number | null;
  ts?: Date;
}

export interface ReadJournalOptions {
  /** Return entries with a seq greater than this (default 0: from the start). */
  afterSeq?: number;
  /** At most this many entries (default 1000, capped at 10000). */
  limit?: number;
  /** Only entries of this type. */
  type?: string;
}
