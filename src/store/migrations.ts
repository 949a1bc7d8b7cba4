/**
 * The store's schema, as an ordered list of migrations. `PRAGMA user_version` holds the version
 * applied last. Never edit a released migration: append a new one, so every existing database
 * follows the same path to the newest schema.
 */

export interface Migration {
  /** 1, 2, 3…: consecutive, in array order. */
  readonly version: number;
  readonly name: string;
  /** SQL run in one transaction together with the user_version bump. */
  readonly up: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'meta and append-only journal',
    up: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      -- AUTOINCREMENT: a seq is never handed out twice, even after the newest row is deleted,
      -- so a reader that remembers "seen up to seq N" can never miss or confuse entries.
      CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        run_id TEXT,
        run_seq INTEGER,
        type TEXT NOT NULL,
        data TEXT NOT NULL
      ) STRICT;

      CREATE INDEX journal_run ON journal (run_id, run_seq);

      -- The journal is the durable history: entries are only ever added.
      CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
      BEGIN
        SELECT RAISE(ABORT, 'journal is append-only');
      END;

      CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
      BEGIN
        SELECT RAISE(ABORT, 'journal is append-only');
      END;
    `,
  },
];

/** The schema version this build writes. */
export const latestSchemaVersion: number = migrations.at(-1)?.version ?? 0;
