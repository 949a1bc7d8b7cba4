/**
 * Durable runs: one row per run (its latest checkpoint) and one per step, next to the journal
 * that holds each run's history. Every write is one transaction that changes the rows and appends
 * the run's events together, so after a crash the rows and the journal always agree.
 *
 * Each event of a run gets a per-run `run_seq` (1, 2, 3… with no gap) besides its global journal
 * `seq`; `runs.last_run_seq` remembers the newest one, and is bumped in the same transaction.
 */
import type Database from 'better-sqlite3';
import { CharterError } from '../errors/charter-error.js';
import { type RunCounts, type RunState, RunStateSchema } from '../protocol/control.js';
import { emptyRunCounts } from '../protocol/run-counts.js';
import type {
  AttemptRecord,
  LogEntry,
  RunDetail,
  RunSummary,
  RunsListResult,
  StepRecord,
  Waiting,
} from '../protocol/runs.js';
import { redactSealed } from '../secrets/sealed.js';
import type { JournalEntry, NewJournalEntry } from './journal-entry.js';

/** An event to append to a run's history; `data` must be JSON-encodable (no BigInt, no cycles). */
export interface NewRunEvent {
  type: string;
  data?: Record<string, unknown>;
}

/** Fields of a run to change; an absent field is left as it is, `null` clears a nullable one. */
export interface RunPatch {
  state?: RunState;
  reason?: string | null;
  currentStep?: string | null;
  stepIndex?: number;
  attempt?: number;
  waiting?: Waiting | null;
  /** Replaces all the run's answers: the caller merges. */
  answers?: Record<string, Record<string, unknown>>;
  /** ISO 8601 (UTC). */
  finishedAt?: string | null;
}

/** Fields of the step at `idx` to change; same conventions as {@link RunPatch}. */
export interface StepPatch {
  idx: number;
  state?: StepRecord['state'];
  attempt?: number;
  startedAt?: string | null;
  finishedAt?: string | null;
  exitCode?: number | null;
  reason?: string | null;
  /** The outputs of the attempt that ended (secret values sealed); null clears them. */
  outputs?: Readonly<Record<string, unknown>> | null;
  /** When the next attempt is due, while the step waits to retry (ISO 8601). */
  retryAt?: string | null;
  /**
   * A new attempt starts: first append the attempt the row holds (its attempt, start, end, exit
   * code, reason and outputs, as stored) to the step's `attempts`, in the same statement.
   */
  archiveAttempt?: boolean;
}

/** A run as the engine sees it (camelCase, with its bookkeeping). */
export interface RunRecord {
  runId: string;
  workflowId: string;
  state: RunState;
  reason: string | null;
  currentStep: string | null;
  stepIndex: number;
  attempt: number;
  waiting: Waiting | null;
  /** As stored: secret values are sealed envelopes (src/secrets/sealed.ts). */
  inputs: Record<string, unknown>;
  answers: Record<string, Record<string, unknown>>;
  lastRunSeq: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface NewRun {
  runId: string;
  workflowId: string;
  inputs: Record<string, unknown>;
  steps: readonly { id: string; kind: StepRecord['kind'] }[];
  now?: Date;
}

export interface ListRunsParams {
  limit: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
  state?: RunState;
}

/** Appends one journal entry inside the caller's transaction (the Store's own insert). */
export type AppendJournalEntry = (entry: NewJournalEntry) => JournalEntry;

const RUN_STATES: readonly RunState[] = RunStateSchema.options;
const UNFINISHED_STATES: readonly RunState[] = ['queued', 'running', 'waiting', 'cancelling'];

const MAX_LIST_LIMIT = 1000;
const MAX_EVENTS_LIMIT = 10_000;

const SUMMARY_COLUMNS = 'run_id, workflow_id, state, reason, current_step, created_at, updated_at';

/**
 * The four listing queries. Separate statements rather than one with `(@x IS NULL OR …)`: SQLite
 * plans a statement once, and an OR on a parameter would keep it from seeking the index to the
 * cursor, turning deep pages into scans. Exported for the query-plan test.
 */
export const LIST_RUNS_SQL = {
  all: `SELECT ${SUMMARY_COLUMNS} FROM runs ORDER BY run_id DESC LIMIT @limit`,
  allAfter: `SELECT ${SUMMARY_COLUMNS} FROM runs WHERE run_id < @after ORDER BY run_id DESC LIMIT @limit`,
  byState: `SELECT ${SUMMARY_COLUMNS} FROM runs WHERE state = @state ORDER BY run_id DESC LIMIT @limit`,
  byStateAfter: `SELECT ${SUMMARY_COLUMNS} FROM runs WHERE state = @state AND run_id < @after
    ORDER BY run_id DESC LIMIT @limit`,
} as const;

/** A runs row as SQLite returns it (JSON columns still encoded). */
interface RunRow {
  run_id: string;
  workflow_id: string;
  state: RunState;
  reason: string | null;
  current_step: string | null;
  step_index: number;
  attempt: number;
  waiting: string | null;
  inputs: string;
  answers: string;
  last_run_seq: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

interface StepRow {
  step_id: string;
  kind: StepRecord['kind'];
  state: StepRecord['state'];
  attempt: number;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  reason: string | null;
  retry_at: string | null;
  /** JSON list of AttemptRecord (secret outputs sealed). */
  attempts: string;
  outputs: string | null;
}

interface LogRow {
  seq: number;
  run_seq: number;
  ts: string;
  type: string;
  data: string;
}

interface ListParams {
  limit: number;
  after?: string;
  state?: string;
}

// better-sqlite3 binds no booleans, and an absent field must differ from one set to NULL:
// each nullable field travels as a 0/1 `set_` flag plus its value.
type Flag = 0 | 1;

interface UpdateRunParams {
  run_id: string;
  state: string | null;
  set_reason: Flag;
  reason: string | null;
  set_current_step: Flag;
  current_step: string | null;
  step_index: number | null;
  attempt: number | null;
  set_waiting: Flag;
  waiting: string | null;
  answers: string | null;
  set_finished_at: Flag;
  finished_at: string | null;
  event_count: number;
  now: string | null;
}

interface UpdateStepParams {
  run_id: string;
  idx: number;
  state: string | null;
  attempt: number | null;
  set_started_at: Flag;
  started_at: string | null;
  set_finished_at: Flag;
  finished_at: string | null;
  set_exit_code: Flag;
  exit_code: number | null;
  set_reason: Flag;
  reason: string | null;
  set_outputs: Flag;
  outputs: string | null;
  set_retry_at: Flag;
  retry_at: string | null;
  archive_attempt: Flag;
}

export class RunStore {
  private readonly db: Database.Database;
  private readonly appendEntry: AppendJournalEntry;

  // Prepared once: checkpoints and reads are the daemon's hot path.
  private readonly insertRunStmt: Database.Statement<[Record<string, unknown>]>;
  private readonly insertStepStmt: Database.Statement<[Record<string, unknown>]>;
  private readonly updateRunStmt: Database.Statement<[UpdateRunParams], { last_run_seq: number }>;
  private readonly updateStepStmt: Database.Statement<[UpdateStepParams]>;
  private readonly getRunStmt: Database.Statement<[string], RunRow>;
  private readonly getStepsStmt: Database.Statement<[string], StepRow>;
  private readonly passedOutputsStmt: Database.Statement<
    [{ run_id: string; before: number }],
    { step_id: string; outputs: string }
  >;
  private readonly listStmts: Record<
    keyof typeof LIST_RUNS_SQL,
    Database.Statement<[ListParams], RunSummary>
  >;
  private readonly unfinishedStmt: Database.Statement<[string], RunRow>;
  private readonly eventsStmt: Database.Statement<[{ run_id: string; after: number; limit: number }], LogRow>;
  private readonly countsStmt: Database.Statement<[], { state: RunState; n: number }>;

  private readonly createRunTx: Database.Transaction<(run: NewRun, event: NewRunEvent) => JournalEntry>;
  private readonly recordTx: Database.Transaction<
    (
      runId: string,
      patch: RunPatch,
      events: readonly NewRunEvent[],
      steps: readonly StepPatch[],
      now: Date,
    ) => JournalEntry[]
  >;
  private readonly appendEventsTx: Database.Transaction<
    (runId: string, events: readonly NewRunEvent[], now: Date) => JournalEntry[]
  >;
  private readonly readDetailTx: Database.Transaction<(runId: string) => RunDetail | undefined>;

  /** Built by the Store, sharing its connection; `appendEntry` is the Store's journal insert. */
  constructor(db: Database.Database, appendEntry: AppendJournalEntry) {
    this.db = db;
    this.appendEntry = appendEntry;

    this.insertRunStmt = db.prepare(
      `INSERT INTO runs (run_id, workflow_id, state, inputs, last_run_seq, created_at, updated_at)
       VALUES (@run_id, @workflow_id, 'queued', @inputs, 1, @now, @now)`,
    );
    this.insertStepStmt = db.prepare(
      'INSERT INTO steps (run_id, idx, step_id, kind) VALUES (@run_id, @idx, @step_id, @kind)',
    );
    // One static statement for any patch, so it is prepared once; RETURNING hands back the new
    // last_run_seq (or nothing: an unknown run) without a separate read.
    this.updateRunStmt = db.prepare(
      `UPDATE runs SET
         state = coalesce(@state, state),
         reason = CASE WHEN @set_reason THEN @reason ELSE reason END,
         current_step = CASE WHEN @set_current_step THEN @current_step ELSE current_step END,
         step_index = coalesce(@step_index, step_index),
         attempt = coalesce(@attempt, attempt),
         waiting = CASE WHEN @set_waiting THEN @waiting ELSE waiting END,
         answers = coalesce(@answers, answers),
         finished_at = CASE WHEN @set_finished_at THEN @finished_at ELSE finished_at END,
         last_run_seq = last_run_seq + @event_count,
         updated_at = coalesce(@now, updated_at)
       WHERE run_id = @run_id
       RETURNING last_run_seq`,
    );
    // Every right-hand side reads the row as it was: `attempts` archives the previous attempt.
    this.updateStepStmt = db.prepare(
      `UPDATE steps SET
         attempts = CASE WHEN @archive_attempt AND started_at IS NOT NULL
           THEN json_insert(attempts, '$[#]', json_object('attempt', attempt, 'started_at', started_at,
             'finished_at', finished_at, 'exit_code', exit_code, 'reason', reason,
             'outputs', json(coalesce(outputs, '{}'))))
           ELSE attempts END,
         state = coalesce(@state, state),
         attempt = coalesce(@attempt, attempt),
         started_at = CASE WHEN @set_started_at THEN @started_at ELSE started_at END,
         finished_at = CASE WHEN @set_finished_at THEN @finished_at ELSE finished_at END,
         exit_code = CASE WHEN @set_exit_code THEN @exit_code ELSE exit_code END,
         reason = CASE WHEN @set_reason THEN @reason ELSE reason END,
         retry_at = CASE WHEN @set_retry_at THEN @retry_at ELSE retry_at END,
         outputs = CASE WHEN @set_outputs THEN @outputs ELSE outputs END
       WHERE run_id = @run_id AND idx = @idx`,
    );
    this.getRunStmt = db.prepare('SELECT * FROM runs WHERE run_id = ?');
    this.getStepsStmt = db.prepare(
      `SELECT step_id, kind, state, attempt, started_at, finished_at, exit_code, reason, retry_at, attempts,
         outputs
       FROM steps WHERE run_id = ? ORDER BY idx`,
    );
    // Only a succeeded step passes its outputs on (a failed or retried attempt's stay its own).
    this.passedOutputsStmt = db.prepare(
      `SELECT step_id, outputs FROM steps
       WHERE run_id = @run_id AND idx < @before AND state = 'succeeded' AND outputs IS NOT NULL
       ORDER BY idx`,
    );
    this.listStmts = {
      all: db.prepare(LIST_RUNS_SQL.all),
      allAfter: db.prepare(LIST_RUNS_SQL.allAfter),
      byState: db.prepare(LIST_RUNS_SQL.byState),
      byStateAfter: db.prepare(LIST_RUNS_SQL.byStateAfter),
    };
    this.unfinishedStmt = db.prepare(
      'SELECT * FROM runs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY run_id',
    );
    // run_seq IS NOT NULL: the wire's LogEntry requires one, and only RunStore's own entries
    // (which always have one) belong to a run's log.
    this.eventsStmt = db.prepare(
      `SELECT seq, run_seq, ts, type, data FROM journal
       WHERE run_id = @run_id AND seq > @after AND run_seq IS NOT NULL
       ORDER BY seq LIMIT @limit`,
    );
    this.countsStmt = db.prepare('SELECT state, count(*) AS n FROM runs GROUP BY state');

    this.createRunTx = db.transaction((run: NewRun, event: NewRunEvent) => {
      const now = run.now ?? new Date();
      const iso = now.toISOString();
      this.insertRunStmt.run({
        run_id: run.runId,
        workflow_id: run.workflowId,
        inputs: encodeJson(run.inputs, 'inputs'),
        now: iso,
      });
      run.steps.forEach((step, idx) => {
        this.insertStepStmt.run({ run_id: run.runId, idx, step_id: step.id, kind: step.kind });
      });
      return this.appendEntry({ ...toJournalEntry(run.runId, event, 1), ts: now });
    });
    this.recordTx = db.transaction(
      (
        runId: string,
        patch: RunPatch,
        events: readonly NewRunEvent[],
        steps: readonly StepPatch[],
        now: Date,
      ) => {
        const lastRunSeq = this.bumpRun(runId, patch, events.length, now.toISOString());
        for (const step of steps) this.patchStep(runId, step);
        return this.appendRunEvents(runId, lastRunSeq, events, now);
      },
    );
    this.appendEventsTx = db.transaction((runId: string, events: readonly NewRunEvent[], now: Date) => {
      const lastRunSeq = this.bumpRun(runId, {}, events.length, null);
      return this.appendRunEvents(runId, lastRunSeq, events, now);
    });
    // One read transaction: the run row and its steps come from the same snapshot.
    this.readDetailTx = db.transaction((runId: string) => {
      const row = this.getRunStmt.get(runId);
      if (row === undefined) return undefined;
      return toDetail(row, this.getStepsStmt.all(runId));
    });
  }

  /**
   * Creates a run in state `queued` with all its steps `pending`, and appends `event` as the
   * run's first entry (run_seq 1), in one transaction.
   */
  createRun(run: NewRun, event: NewRunEvent): JournalEntry {
    // IMMEDIATE takes the write lock up front instead of upgrading mid-transaction.
    return this.createRunTx.immediate(run, event);
  }

  /**
   * A checkpoint: patches the run (updated_at = now) and its steps and appends `events` with the
   * next run_seqs, all or nothing. Throws UNKNOWN_RUN when the run does not exist.
   */
  record(
    runId: string,
    patch: RunPatch,
    events: readonly NewRunEvent[],
    steps: readonly StepPatch[] = [],
    now: Date = new Date(),
  ): JournalEntry[] {
    return this.recordTx.immediate(runId, patch, events, steps, now);
  }

  /**
   * Appends events (e.g. step output) to a run's history. Only last_run_seq changes on the row:
   * updated_at tracks checkpoints, not chatter. Throws UNKNOWN_RUN when the run does not exist.
   */
  appendEvents(runId: string, events: readonly NewRunEvent[], now: Date = new Date()): JournalEntry[] {
    return this.appendEventsTx.immediate(runId, events, now);
  }

  /**
   * Runs `fn` in one transaction; RunStore writes made inside it join it (as savepoints). For
   * batches: one commit, one sync, instead of one per call.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** The run in its wire shape, steps ordered by index. */
  get(runId: string): RunDetail | undefined {
    return this.readDetailTx(runId);
  }

  /**
   * The outputs that the succeeded steps before index `before` pass on, by step id (as stored:
   * secret values sealed). What a run step sees of the steps before it, after any restart.
   */
  passedOutputs(runId: string, before: number): Record<string, Record<string, unknown>> {
    const passed: Record<string, Record<string, unknown>> = {};
    for (const row of this.passedOutputsStmt.all({ run_id: runId, before })) {
      passed[row.step_id] = JSON.parse(row.outputs) as Record<string, unknown>;
    }
    return passed;
  }

  getRecord(runId: string): RunRecord | undefined {
    const row = this.getRunStmt.get(runId);
    return row === undefined ? undefined : toRecord(row);
  }

  /**
   * One page of runs, newest first (run ids are time-ordered). `next_cursor` is null on the last
   * page; it encodes the last run id returned, so runs created meanwhile never shift a page.
   */
  list(params: ListRunsParams): RunsListResult {
    const limit = Math.trunc(params.limit);
    // Written so that NaN fails too.
    if (!(limit >= 1)) {
      throw new CharterError('INVALID_PARAMS', `invalid limit ${params.limit}: expected 1 or more`);
    }
    if (params.state !== undefined && !RUN_STATES.includes(params.state)) {
      throw new CharterError('INVALID_PARAMS', `invalid run state ${JSON.stringify(params.state)}`);
    }
    const pageSize = Math.min(limit, MAX_LIST_LIMIT);
    const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor);
    // One row more than the page tells whether another page follows, without a count.
    const bind: ListParams = { limit: pageSize + 1 };
    if (after !== undefined) bind.after = after;
    if (params.state !== undefined) bind.state = params.state;
    const stmt =
      params.state === undefined
        ? after === undefined
          ? this.listStmts.all
          : this.listStmts.allAfter
        : after === undefined
          ? this.listStmts.byState
          : this.listStmts.byStateAfter;
    const rows = stmt.all(bind);
    const more = rows.length > pageSize;
    const runs = more ? rows.slice(0, pageSize) : rows;
    const last = runs.at(-1);
    return { runs, next_cursor: more && last !== undefined ? encodeCursor(last.run_id) : null };
  }

  /** Runs not yet finished (queued, running, waiting, cancelling), oldest first: for recovery. */
  unfinished(): RunRecord[] {
    return this.unfinishedStmt.all(JSON.stringify(UNFINISHED_STATES)).map(toRecord);
  }

  /** The run's journal entries with a seq greater than `afterSeq`, ascending. */
  events(runId: string, afterSeq: number, limit: number): LogEntry[] {
    // Clamp below too: SQLite reads a negative LIMIT as "no limit".
    const capped = Math.min(Math.max(Math.trunc(limit), 0), MAX_EVENTS_LIMIT);
    return this.eventsStmt
      .all({ run_id: runId, after: afterSeq, limit: capped })
      .map((row) => ({ ...row, data: JSON.parse(row.data) as unknown }));
  }

  /** How many runs are in each state; states without runs count 0. */
  counts(): RunCounts {
    const counts = emptyRunCounts();
    for (const { state, n } of this.countsStmt.all()) counts[state] = n;
    return counts;
  }

  /**
   * Applies the patch, sets updated_at unless `now` is null, and reserves `eventCount` run_seqs;
   * returns the new last_run_seq.
   */
  private bumpRun(runId: string, patch: RunPatch, eventCount: number, now: string | null): number {
    const row = this.updateRunStmt.get({
      run_id: runId,
      state: patch.state ?? null,
      set_reason: flag(patch.reason),
      reason: patch.reason ?? null,
      set_current_step: flag(patch.currentStep),
      current_step: patch.currentStep ?? null,
      step_index: patch.stepIndex ?? null,
      attempt: patch.attempt ?? null,
      set_waiting: flag(patch.waiting),
      waiting: patch.waiting == null ? null : encodeJson(patch.waiting, 'waiting'),
      answers: patch.answers === undefined ? null : encodeJson(patch.answers, 'answers'),
      set_finished_at: flag(patch.finishedAt),
      finished_at: patch.finishedAt ?? null,
      event_count: eventCount,
      now,
    });
    if (row === undefined) throw new CharterError('UNKNOWN_RUN', `unknown run ${runId}`);
    return row.last_run_seq;
  }

  private patchStep(runId: string, step: StepPatch): void {
    const { changes } = this.updateStepStmt.run({
      run_id: runId,
      idx: step.idx,
      state: step.state ?? null,
      attempt: step.attempt ?? null,
      set_started_at: flag(step.startedAt),
      started_at: step.startedAt ?? null,
      set_finished_at: flag(step.finishedAt),
      finished_at: step.finishedAt ?? null,
      set_exit_code: flag(step.exitCode),
      exit_code: step.exitCode ?? null,
      set_reason: flag(step.reason),
      reason: step.reason ?? null,
      set_outputs: flag(step.outputs),
      outputs: step.outputs == null ? null : encodeJson(step.outputs, 'outputs'),
      set_retry_at: flag(step.retryAt),
      retry_at: step.retryAt ?? null,
      archive_attempt: step.archiveAttempt === true ? 1 : 0,
    });
    // A patch for a step the run does not have is a bug in the caller: refuse the whole record
    // rather than silently drop part of a checkpoint.
    if (changes === 0) throw new CharterError('INTERNAL', `run ${runId} has no step at index ${step.idx}`);
  }

  /** Appends events numbered so that the last one gets `lastRunSeq`. */
  private appendRunEvents(
    runId: string,
    lastRunSeq: number,
    events: readonly NewRunEvent[],
    now: Date,
  ): JournalEntry[] {
    const first = lastRunSeq - events.length + 1;
    return events.map((event, i) =>
      this.appendEntry({ ...toJournalEntry(runId, event, first + i), ts: now }),
    );
  }
}

function flag(value: unknown): Flag {
  return value === undefined ? 0 : 1;
}

/**
 * A sealed secret (see src/secrets/sealed.ts) never enters the journal, not even encrypted:
 * events are what `logs` shows and the gateway receives, so they carry `***` in its place.
 */
function toJournalEntry(runId: string, event: NewRunEvent, runSeq: number): NewJournalEntry {
  return { type: event.type, data: redactSealed(event.data ?? {}), runId, runSeq };
}

function encodeJson(value: unknown, what: string): string {
  // Throws on BigInt and cycles, which rolls the surrounding transaction back.
  const json: string | undefined = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`${what} cannot be JSON-encoded`);
  return json;
}

function encodeCursor(runId: string): string {
  return Buffer.from(runId, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const runId = Buffer.from(cursor, 'base64url').toString('utf8');
  // Node's decoder skips characters it does not know instead of failing: only a cursor that
  // encodes back to itself is one we handed out.
  if (runId === '' || encodeCursor(runId) !== cursor) {
    throw new CharterError('INVALID_PARAMS', 'invalid cursor: pass the next_cursor of a previous runs.list');
  }
  return runId;
}

function toRecord(row: RunRow): RunRecord {
  return {
    runId: row.run_id,
    workflowId: row.workflow_id,
    state: row.state,
    reason: row.reason,
    currentStep: row.current_step,
    stepIndex: row.step_index,
    attempt: row.attempt,
    waiting: row.waiting === null ? null : (JSON.parse(row.waiting) as Waiting),
    inputs: JSON.parse(row.inputs) as Record<string, unknown>,
    answers: JSON.parse(row.answers) as Record<string, Record<string, unknown>>,
    lastRunSeq: row.last_run_seq,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

function toDetail(row: RunRow, steps: readonly StepRow[]): RunDetail {
  return {
    run_id: row.run_id,
    workflow_id: row.workflow_id,
    state: row.state,
    reason: row.reason,
    current_step: row.current_step,
    created_at: row.created_at,
    updated_at: row.updated_at,
    // The wire shape: secrets as `***` (the engine's RunRecord keeps them sealed).
    inputs: redactSealed(JSON.parse(row.inputs) as Record<string, unknown>),
    answers: redactSealed(JSON.parse(row.answers) as Record<string, Record<string, unknown>>),
    waiting: row.waiting === null ? null : (JSON.parse(row.waiting) as Waiting),
    steps: steps.map(({ step_id, attempts, outputs, ...rest }) => ({
      id: step_id,
      ...rest,
      // Secrets as `***`, like inputs and answers; an attempt archived before the store had
      // outputs (schema 5) wrote none.
      attempts: (JSON.parse(attempts) as AttemptRecord[]).map((attempt) => ({
        ...attempt,
        outputs: redactSealed(attempt.outputs ?? {}),
      })),
      outputs: outputs === null ? {} : redactSealed(JSON.parse(outputs) as Record<string, unknown>),
    })),
    finished_at: row.finished_at,
  };
}
