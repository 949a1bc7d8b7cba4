/**
 * Retention: pruning finished runs (their row, steps, journal entries and `runs/<id>/` folder,
 * together) by age, by count and by store size, oldest first, and giving the space back
 * (incremental vacuum, then a WAL truncation). Work is cut into slices of a few milliseconds,
 * each its own transaction, with the event loop free in between: the daemon keeps answering
 * while it prunes.
 *
 * Never pruned: a run that is not finished, and (when `protectUnacked`) any entry the gateway
 * has not acknowledged (seq > meta.up_acked): pruning stops at the first run that still has one.
 */
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type Database from 'better-sqlite3';

export interface RetentionPolicy {
  /** Finished runs older than this are pruned. */
  readonly maxAgeDays: number;
  /** At most this many finished runs are kept. */
  readonly maxFinishedRuns: number;
  /** Oldest finished runs are pruned while the store's used size is above this. */
  readonly maxStoreMb: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = {
  maxAgeDays: 30,
  maxFinishedRuns: 10_000,
  maxStoreMb: 1024,
};

export interface PruneOptions {
  readonly policy: RetentionPolicy;
  /** Count what would go, change nothing. */
  readonly dryRun?: boolean;
  /** A gateway is configured: entries it has not acknowledged are kept. */
  readonly protectUnacked: boolean;
  /** `.charter/daemon/runs`: a pruned run's folder goes too. */
  readonly runsDir?: string;
  readonly now?: Date;
  /** Stops between slices (the daemon stopping). */
  readonly signal?: AbortSignal;
  /** Length of one synchronous slice (default 8 ms). */
  readonly sliceMs?: number;
}

export interface PruneReport {
  readonly dry_run: boolean;
  readonly started_at: string;
  readonly duration_ms: number;
  /** Finished runs removed (or, dry run, that would be). */
  readonly runs: number;
  /** Journal entries removed, the runs' and old daemon-level ones. */
  readonly events: number;
  /** Store files (database + WAL) before and after; a dry run estimates `bytes_freed`. */
  readonly bytes_before: number;
  readonly bytes_after: number;
  readonly bytes_freed: number;
  /**
   * True when runs the policy would prune were kept because the gateway has not acknowledged
   * their events (a gateway configured but unreachable or refusing).
   */
  readonly kept_for_gateway: boolean;
  /** Whether the store is still over `max_store_mb` after the prune, and why. */
  readonly over_budget: boolean;
  readonly over_budget_reason: string | null;
  /** The longest synchronous slice of the prune (the event loop was busy that long at most). */
  readonly longest_slice_ms: number;
  /** Stopped before the end (the daemon is stopping). */
  readonly aborted: boolean;
}

/** The store's size and what it keeps, for `status`. */
export interface StoreFigures {
  readonly size_bytes: number;
  readonly used_bytes: number;
  readonly oldest_kept_run: { run_id: string; state: string; finished_at: string } | null;
}

export type FinishedState = 'succeeded' | 'failed' | 'cancelled';

const FINISHED_STATES: readonly FinishedState[] = ['succeeded', 'failed', 'cancelled'];
const MIB = 1024 * 1024;
const CANDIDATE_PAGE = 200;
const VACUUM_PAGES = 256;
const ROWS_PER_DELETE = 2000;

interface Candidate {
  run_id: string;
  state: FinishedState;
  finished_at: string;
  last_run_seq: number;
}

export class RetentionStore {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #candidates: Database.Statement<[string, string, number], Candidate>;
  readonly #lastSeqOfRun: Database.Statement<[string, number], { seq: number }>;
  readonly #countEvents: Database.Statement<[string], { n: number }>;
  readonly #deleteEvents: Database.Statement<[string]>;
  readonly #deleteSteps: Database.Statement<[string]>;
  readonly #deleteRun: Database.Statement<[string]>;
  readonly #finishedCount: Database.Statement<[], { n: number }>;
  readonly #oldest: Database.Statement<[], { run_id: string; state: string; finished_at: string }>;
  readonly #getMeta: Database.Statement<[string], { value: string }>;
  readonly #setMeta: Database.Statement<[string, string]>;
  readonly #oldUnowned: Database.Statement<[number, number, number], { seq: number; ts: string }>;
  readonly #deleteSeq: Database.Statement<[number]>;
  readonly #lastStarted: Database.Statement<[], { seq: number | null }>;
  readonly #oldCommands: Database.Statement<[string]>;
  readonly #clearPruning: Database.Statement<[]>;

  constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#path = path;
    // Row values compare as (finished_at, run_id): a cursor through the partial index.
    this.#candidates = db.prepare(
      `SELECT run_id, state, finished_at, last_run_seq FROM runs
       WHERE finished_at IS NOT NULL AND (finished_at, run_id) > (?, ?)
       ORDER BY finished_at, run_id LIMIT ?`,
    );
    this.#lastSeqOfRun = db.prepare('SELECT seq FROM journal WHERE run_id = ? AND run_seq = ?');
    this.#countEvents = db.prepare('SELECT count(*) AS n FROM journal WHERE run_id = ?');
    this.#deleteEvents = db.prepare('DELETE FROM journal WHERE run_id = ?');
    this.#deleteSteps = db.prepare('DELETE FROM steps WHERE run_id = ?');
    this.#deleteRun = db.prepare('DELETE FROM runs WHERE run_id = ?');
    this.#finishedCount = db.prepare('SELECT count(*) AS n FROM runs WHERE finished_at IS NOT NULL');
    this.#oldest = db.prepare(
      `SELECT run_id, state, finished_at FROM runs WHERE finished_at IS NOT NULL
       ORDER BY finished_at, run_id LIMIT 1`,
    );
    this.#getMeta = db.prepare('SELECT value FROM meta WHERE key = ?');
    this.#setMeta = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.#oldUnowned = db.prepare(
      'SELECT seq, ts FROM journal WHERE run_id IS NULL AND seq > ? AND seq < ? ORDER BY seq LIMIT ?',
    );
    this.#deleteSeq = db.prepare('DELETE FROM journal WHERE seq = ?');
    this.#lastStarted = db.prepare(
      "SELECT max(seq) AS seq FROM journal WHERE run_id IS NULL AND type = 'daemon.started'",
    );
    this.#clearPruning = db.prepare("DELETE FROM meta WHERE key = 'pruning'");
    this.#oldCommands = db.prepare(
      `DELETE FROM inbox WHERE dseq IN (SELECT dseq FROM inbox WHERE status != 'pending' AND received_at < ?
       ORDER BY dseq LIMIT ${ROWS_PER_DELETE})`,
    );
  }

  /** Size on disk (database + WAL) and in use, and the oldest finished run kept. */
  figures(): StoreFigures {
    const pageSize = Number(this.#db.pragma('page_size', { simple: true }));
    const pages = Number(this.#db.pragma('page_count', { simple: true }));
    const free = Number(this.#db.pragma('freelist_count', { simple: true }));
    return {
      size_bytes: this.sizeOnDisk(),
      used_bytes: (pages - free) * pageSize,
      oldest_kept_run: this.#oldest.get() ?? null,
    };
  }

  #usedBytes(): number {
    const pageSize = Number(this.#db.pragma('page_size', { simple: true }));
    const pages = Number(this.#db.pragma('page_count', { simple: true }));
    const free = Number(this.#db.pragma('freelist_count', { simple: true }));
    return (pages - free) * pageSize;
  }

  sizeOnDisk(): number {
    return fileSize(this.#path) + fileSize(`${this.#path}-wal`);
  }

  /** Finished runs pruned so far, by state (status counts every run the store has seen). */
  prunedCounts(): Record<FinishedState, number> {
    const raw = this.#getMeta.get('pruned_runs')?.value;
    const counts = { succeeded: 0, failed: 0, cancelled: 0 };
    if (raw === undefined) return counts;
    const parsed = JSON.parse(raw) as Partial<Record<FinishedState, number>>;
    for (const state of FINISHED_STATES) counts[state] = parsed[state] ?? 0;
    return counts;
  }

  /** The report of the last prune (not dry runs), if any. */
  lastPrune(): PruneReport | null {
    const raw = this.#getMeta.get('last_prune')?.value;
    return raw === undefined ? null : (JSON.parse(raw) as PruneReport);
  }

  /** Prunes what the policy says, in slices; see the module comment. */
  async prune(options: PruneOptions): Promise<PruneReport> {
    const started = performance.now();
    const now = options.now ?? new Date();
    const dryRun = options.dryRun ?? false;
    const sliceMs = options.sliceMs ?? 8;
    const cutoff = new Date(now.getTime() - options.policy.maxAgeDays * 86_400_000).toISOString();
    const budget = options.policy.maxStoreMb * MIB;
    const upAcked = options.protectUnacked ? Number(this.#getMeta.get('up_acked')?.value ?? 0) : Infinity;
    const bytesBefore = this.sizeOnDisk();
    const usedBefore = this.figures().used_bytes;
    const totalEvents = dryRun ? this.#eventCount() : 0;
    let used = usedBefore;
    let excess = Math.max(0, (this.#finishedCount.get()?.n ?? 0) - options.policy.maxFinishedRuns);
    let runs = 0;
    let events = 0;
    let keptForGateway = false;
    let longest = 0;
    let aborted = false;
    const pruned: Record<FinishedState, number> = { succeeded: 0, failed: 0, cancelled: 0 };
    const folders: string[] = [];

    /** Runs `work` for at most about sliceMs per turn of the event loop, each slice one transaction. */
    const sliced = async (work: (deadline: number) => boolean): Promise<void> => {
      for (;;) {
        if (options.signal?.aborted) {
          aborted = true;
          return;
        }
        const sliceStart = performance.now();
        const more = dryRun
          ? work(sliceStart + sliceMs)
          : this.#db
              .transaction(() => {
                // Lets this transaction, and only it, delete journal entries (journal_no_delete).
                this.#setMeta.run('pruning', '1');
                const result = work(sliceStart + sliceMs);
                this.#clearPruning.run();
                return result;
              })
              .immediate();
        longest = Math.max(longest, performance.now() - sliceStart);
        if (!dryRun) {
          // Fold this slice's pages into the database now, in a turn of their own: left to the
          // automatic checkpoint, several slices' worth would be copied inside one commit.
          await nextTurn();
          const checkpointStart = performance.now();
          this.#db.pragma('wal_checkpoint(PASSIVE)');
          longest = Math.max(longest, performance.now() - checkpointStart);
        }
        if (!more) return;
        await nextTurn();
      }
    };

    // Finished runs, oldest first.
    let after: [string, string] = ['', ''];
    let page: Candidate[] = [];
    const pruneRuns = (deadline: number): boolean => {
      for (;;) {
        if (page.length === 0) {
          page = this.#candidates.all(after[0], after[1], CANDIDATE_PAGE);
          if (page.length === 0) return false;
        }
        const run = page.shift() as Candidate;
        after = [run.finished_at, run.run_id];
        if (!FINISHED_STATES.includes(run.state)) continue;
        const due = excess > 0 || run.finished_at < cutoff || used > budget;
        if (!due) return false;
        const lastSeq = this.#lastSeqOfRun.get(run.run_id, run.last_run_seq)?.seq ?? 0;
        if (lastSeq > upAcked) {
          // Runs finish in about seq order: the ones after this are not acknowledged either.
          keptForGateway = true;
          return false;
        }
        if (dryRun) {
          const n = this.#countEvents.get(run.run_id)?.n ?? 0;
          events += n;
          if (totalEvents > 0) used -= (usedBefore * n) / totalEvents;
        } else {
          events += this.#deleteEvents.run(run.run_id).changes;
          this.#deleteSteps.run(run.run_id);
          this.#deleteRun.run(run.run_id);
          pruned[run.state] += 1;
          folders.push(run.run_id);
        }
        runs += 1;
        excess = Math.max(0, excess - 1);
        // The size is read from the header (cheap): it decides whether the next run goes.
        if (!dryRun && used > budget) used = this.#usedBytes();
        if (performance.now() >= deadline) return true;
      }
    };
    await sliced((deadline) => {
      const more = pruneRuns(deadline);
      // In the slice's transaction: the counts move with the runs they count.
      if (!dryRun) this.#addPruned(pruned);
      return more;
    });

    // Daemon-level entries (lifecycle, command results) older than the age limit, acknowledged,
    // and before the newest daemon.started (start-up reads how the previous daemon ended).
    const keepFrom = Math.min(this.#lastStarted.get()?.seq ?? 0, upAcked + 1);
    let lastUnowned = 0;
    await sliced((deadline) => {
      for (;;) {
        const rows = this.#oldUnowned.all(lastUnowned, keepFrom, 500);
        if (rows.length === 0) return false;
        for (const row of rows) {
          if (row.ts >= cutoff) return false;
          lastUnowned = row.seq;
          if (!dryRun) this.#deleteSeq.run(row.seq);
          events += 1;
        }
        if (performance.now() >= deadline) return true;
      }
    });
    // Settled gateway commands past the age limit (down_applied still refuses their resends).
    if (!dryRun) await sliced(() => this.#oldCommands.run(cutoff).changes === ROWS_PER_DELETE);

    if (!dryRun) {
      for (const runId of folders) {
        if (options.runsDir !== undefined)
          await rm(join(options.runsDir, runId), { recursive: true, force: true });
      }
      // Give the freed pages back to the filesystem, a slice at a time.
      await sliced(() => {
        this.#db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
        return Number(this.#db.pragma('freelist_count', { simple: true })) > 0;
      });
      if (!aborted) {
        const sliceStart = performance.now();
        try {
          this.#db.pragma('wal_checkpoint(TRUNCATE)');
        } catch {
          // A reader holds the WAL: it shrinks at a later checkpoint.
        }
        longest = Math.max(longest, performance.now() - sliceStart);
      }
    }

    const bytesAfter = dryRun ? bytesBefore : this.sizeOnDisk();
    const usedAfter = dryRun ? Math.max(0, used) : this.figures().used_bytes;
    const overBudget = usedAfter > budget;
    const report: PruneReport = {
      dry_run: dryRun,
      started_at: now.toISOString(),
      duration_ms: Math.round(performance.now() - started),
      runs,
      events,
      bytes_before: bytesBefore,
      bytes_after: bytesAfter,
      bytes_freed: dryRun
        ? Math.max(0, Math.round(usedBefore - usedAfter))
        : Math.max(0, bytesBefore - bytesAfter),
      kept_for_gateway: keptForGateway,
      over_budget: overBudget,
      over_budget_reason: overBudget
        ? keptForGateway
          ? 'finished runs the gateway has not acknowledged are kept until it does'
          : 'the unfinished runs and kept entries alone exceed max_store_mb'
        : null,
      longest_slice_ms: Math.round(longest * 10) / 10,
      aborted,
    };
    if (!dryRun) this.#setMeta.run('last_prune', JSON.stringify(report));
    return report;
  }

  #eventCount(): number {
    return this.#db.prepare<[], { n: number }>('SELECT count(*) AS n FROM journal').get()?.n ?? 0;
  }

  #addPruned(delta: Record<FinishedState, number>): void {
    if (FINISHED_STATES.every((state) => delta[state] === 0)) return;
    const counts = this.prunedCounts();
    for (const state of FINISHED_STATES) {
      counts[state] += delta[state];
      delta[state] = 0;
    }
    this.#setMeta.run('pruned_runs', JSON.stringify(counts));
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
