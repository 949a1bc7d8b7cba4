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
  {
    version: 2,
    name: 'runs and their steps',
    up: `
      -- The current state of each run: the journal holds its history, this row the latest
      -- checkpoint, so recovery and listing need not replay events.
      CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
          ('queued', 'running', 'waiting', 'cancelling', 'succeeded', 'failed', 'cancelled')),
        reason TEXT,
        current_step TEXT,
        step_index INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 1,
        waiting TEXT, -- JSON Waiting, or NULL when the run waits for nobody
        inputs TEXT NOT NULL, -- JSON object
        answers TEXT NOT NULL DEFAULT '{}', -- JSON object: step id -> answers
        -- The run_seq of the run's newest journal entry: the next one gets last_run_seq + 1.
        last_run_seq INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
      ) STRICT;

      -- Serves the state-filtered, newest-first listing (run ids are time-ordered), counts per
      -- state and the recovery scan of unfinished runs.
      CREATE INDEX runs_state ON runs (state, run_id);

      CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        idx INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('run', 'gate', 'input')),
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
          ('pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'interrupted')),
        attempt INTEGER NOT NULL DEFAULT 0,
        started_at TEXT,
        finished_at TEXT,
        exit_code INTEGER,
        reason TEXT,
        PRIMARY KEY (run_id, idx)
      ) STRICT;
    `,
  },
  {
    version: 3,
    name: 'gateway outbox cursor and command inbox',
    up: `
      -- Upstream: the outbox is the journal after meta 'up_acked' (the gateway's cumulative ack);
      -- acked events stay in the journal, the audit trail. Downstream: every command the
      -- gateway sent, stored before it is acknowledged, applied at most once per cmd_id.
      INSERT OR IGNORE INTO meta (key, value) VALUES ('up_acked', '0'), ('down_applied', '0');

      CREATE TABLE inbox (
        dseq INTEGER PRIMARY KEY,
        cmd_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        run_id TEXT,
        args TEXT NOT NULL,
        received_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
          CHECK (status IN ('pending', 'applied', 'rejected')),
        result TEXT
      ) STRICT;
      CREATE INDEX inbox_pending ON inbox (status, dseq);
    `,
  },
  {
    version: 4,
    name: 'retention: finished runs may be pruned',
    up: `
      -- Retention prunes finished runs together with their events (see src/store/retention.ts).
      -- The journal stays append-only for everything else: a DELETE is refused unless the
      -- pruner's own transaction has set meta 'pruning' (which it removes before committing).
      DROP TRIGGER journal_no_delete;
      CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
      WHEN (SELECT value FROM meta WHERE key = 'pruning') IS NOT '1'
      BEGIN
        SELECT RAISE(ABORT, 'journal is append-only');
      END;

      -- Finished runs, oldest first: the pruner's candidates and status's oldest kept run.
      CREATE INDEX runs_finished ON runs (finished_at, run_id) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    version: 5,
    name: 'step retries: the retrying state, the due time and earlier attempts',
    up: `
      -- A run step that failed and is retried (retry: in plan.yml) waits in state 'retrying'
      -- until retry_at (ISO 8601), which a restarted daemon resumes the wait from; attempts
      -- keeps the earlier attempts (JSON list of {attempt, started_at, finished_at, exit_code,
      -- reason}). SQLite cannot change a CHECK constraint: the table is rebuilt.
      CREATE TABLE steps_v5 (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        idx INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('run', 'gate', 'input')),
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
          ('pending', 'running', 'waiting', 'retrying', 'succeeded', 'failed', 'cancelled', 'interrupted')),
        attempt INTEGER NOT NULL DEFAULT 0,
        started_at TEXT,
        finished_at TEXT,
        exit_code INTEGER,
        reason TEXT,
        retry_at TEXT,
        attempts TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (run_id, idx)
      ) STRICT;
      INSERT INTO steps_v5 (run_id, idx, step_id, kind, state, attempt, started_at, finished_at, exit_code, reason)
        SELECT run_id, idx, step_id, kind, state, attempt, started_at, finished_at, exit_code, reason FROM steps;
      DROP TABLE steps;
      ALTER TABLE steps_v5 RENAME TO steps;
    `,
  },
  {
    version: 6,
    name: 'step outputs',
    up: `
      -- What the step's latest ended attempt wrote to CHARTER_OUTPUT: a JSON object name -> value
      -- (secret values sealed), or NULL when it wrote none or has not ended. A succeeded step's
      -- outputs are what later steps of the run see, after any restart. An attempt that is
      -- retried keeps its outputs in its entry of attempts (key "outputs"); entries archived
      -- before this migration have none.
      ALTER TABLE steps ADD COLUMN outputs TEXT;
    `,
  },
];

/** The schema version this build writes. */
export const latestSchemaVersion: number = migrations.at(-1)?.version ?? 0;
