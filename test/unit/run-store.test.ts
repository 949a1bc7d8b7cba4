import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CharterError } from '../../src/errors/charter-error.js';
import type { RunState } from '../../src/protocol/control.js';
import type { Waiting } from '../../src/protocol/runs.js';
import { latestSchemaVersion, migrations } from '../../src/store/migrations.js';
import { LIST_RUNS_SQL, type RunStore } from '../../src/store/run-store.js';
import { type JournalEntry, Store } from '../../src/store/store.js';

let dir: string;
let dbPath: string;
const opened: Store[] = [];

function open(): Store {
  const store = Store.open(dbPath);
  opened.push(store);
  return store;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function codeOf(fn: () => unknown): string | undefined {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(CharterError);
  return (error as CharterError).code;
}

/** A valid, time-ordered run id: `r` + 26 chars; a higher `n` sorts later. */
function runId(n: number): string {
  return `r${String(n).padStart(26, '0')}`;
}

const T0 = new Date('2026-11-02T10:00:00.000Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);

const STEPS = [
  { id: 'build', kind: 'run' },
  { id: 'approve', kind: 'gate' },
  { id: 'details', kind: 'input' },
] as const;

function create(runs: RunStore, n: number, now: Date = T0): void {
  runs.createRun(
    { runId: runId(n), workflowId: 'deploy', inputs: { env: 'prod', n }, steps: STEPS, now },
    { type: 'run.submitted', data: { n } },
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'charter-run-store-'));
  dbPath = join(dir, 'state.db');
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('migration 2', () => {
  it('upgrades a v1 database, keeping its journal and daemon id', () => {
    const v1 = migrations[0];
    if (v1 === undefined) throw new Error('migration 1 missing');
    const raw = new Database(dbPath);
    raw.pragma('journal_mode = WAL');
    raw.exec(v1.up);
    raw.pragma('user_version = 1');
    raw
      .prepare("INSERT INTO meta (key, value) VALUES ('daemon_id', '11111111-2222-3333-4444-555555555555')")
      .run();
    raw
      .prepare(
        "INSERT INTO journal (ts, type, data) VALUES ('2026-01-01T00:00:00.000Z', 'daemon.started', '{\"a\":1}')",
      )
      .run();
    raw.close();

    const store = open();
    expect(store.schemaVersion()).toBe(latestSchemaVersion);
    expect(store.daemonId).toBe('11111111-2222-3333-4444-555555555555');
    expect(store.readJournal({})).toEqual([
      {
        seq: 1,
        ts: '2026-01-01T00:00:00.000Z',
        run_id: null,
        run_seq: null,
        type: 'daemon.started',
        data: { a: 1 },
      },
    ]);
    create(store.runs, 1);
    expect(store.runs.get(runId(1))?.state).toBe('queued');
    // The journal's global seq simply continues.
    expect(store.lastSeq()).toBe(2);
  });
});

describe('RunStore', () => {
  it('creates a run and reads it back', () => {
    const store = open();
    const entry = store.runs.createRun(
      { runId: runId(1), workflowId: 'deploy', inputs: { env: 'prod' }, steps: STEPS, now: T0 },
      { type: 'run.submitted', data: { by: 'ada' } },
    );
    expect(entry).toEqual({
      seq: 1,
      ts: T0.toISOString(),
      run_id: runId(1),
      run_seq: 1,
      type: 'run.submitted',
      data: { by: 'ada' },
    });
    const pending = {
      attempt: 0,
      started_at: null,
      finished_at: null,
      exit_code: null,
      reason: null,
      outputs: {},
      retry_at: null,
      attempts: [],
    };
    expect(store.runs.get(runId(1))).toEqual({
      run_id: runId(1),
      workflow_id: 'deploy',
      state: 'queued',
      reason: null,
      current_step: null,
      created_at: T0.toISOString(),
      updated_at: T0.toISOString(),
      inputs: { env: 'prod' },
      answers: {},
      waiting: null,
      steps: [
        { id: 'build', kind: 'run', state: 'pending', ...pending },
        { id: 'approve', kind: 'gate', state: 'pending', ...pending },
        { id: 'details', kind: 'input', state: 'pending', ...pending },
      ],
      finished_at: null,
    });
    expect(store.runs.getRecord(runId(1))).toEqual({
      runId: runId(1),
      workflowId: 'deploy',
      state: 'queued',
      reason: null,
      currentStep: null,
      stepIndex: 0,
      attempt: 1,
      waiting: null,
      inputs: { env: 'prod' },
      answers: {},
      lastRunSeq: 1,
      createdAt: T0.toISOString(),
      updatedAt: T0.toISOString(),
      finishedAt: null,
    });
    expect(store.runs.get(runId(2))).toBeUndefined();
    expect(store.runs.getRecord(runId(2))).toBeUndefined();
  });

  it('survives close and reopen', () => {
    create(open().runs, 1);
    for (const store of opened.splice(0)) store.close();
    expect(open().runs.get(runId(1))?.steps).toHaveLength(3);
  });

  it('records checkpoints: patches run, steps, waiting and answers, and numbers events 2, 3…', () => {
    const store = open();
    const runs = store.runs;
    create(runs, 1);

    const started = runs.record(
      runId(1),
      { state: 'running', currentStep: 'build', stepIndex: 0 },
      [{ type: 'run.started' }, { type: 'step.started', data: { step_id: 'build' } }],
      [{ idx: 0, state: 'running', attempt: 1, startedAt: at(1).toISOString() }],
      at(1),
    );
    expect(started.map((e) => [e.run_seq, e.type, e.ts])).toEqual([
      [2, 'run.started', at(1).toISOString()],
      [3, 'step.started', at(1).toISOString()],
    ]);
    expect(started.every((e) => e.run_id === runId(1))).toBe(true);

    const waiting: Waiting = {
      kind: 'gate',
      step_id: 'approve',
      prompt: 'Ship it?',
      fields: null,
      since: at(2).toISOString(),
    };
    const gated = runs.record(
      runId(1),
      { state: 'waiting', currentStep: 'approve', stepIndex: 1, waiting },
      [{ type: 'step.finished' }, { type: 'run.waiting' }],
      [
        { idx: 0, state: 'succeeded', finishedAt: at(2).toISOString(), exitCode: 0 },
        { idx: 1, state: 'waiting', attempt: 1, startedAt: at(2).toISOString() },
      ],
      at(2),
    );
    expect(gated.map((e) => e.run_seq)).toEqual([4, 5]);

    let detail = runs.get(runId(1));
    expect(detail).toMatchObject({
      state: 'waiting',
      current_step: 'approve',
      waiting,
      created_at: T0.toISOString(),
      updated_at: at(2).toISOString(),
    });
    expect(detail?.steps[0]).toEqual({
      id: 'build',
      kind: 'run',
      state: 'succeeded',
      attempt: 1,
      started_at: at(1).toISOString(),
      finished_at: at(2).toISOString(),
      exit_code: 0,
      reason: null,
      outputs: {},
      retry_at: null,
      attempts: [],
    });
    expect(detail?.steps[1]).toMatchObject({ state: 'waiting', attempt: 1 });
    expect(runs.getRecord(runId(1))).toMatchObject({ stepIndex: 1, lastRunSeq: 5, attempt: 1 });

    // null clears; absent fields stay as they are.
    runs.record(
      runId(1),
      {
        state: 'succeeded',
        waiting: null,
        currentStep: null,
        answers: { details: { version: '1.2.3', notify: true } },
        reason: 'done',
        finishedAt: at(3).toISOString(),
      },
      [{ type: 'run.finished' }],
      [{ idx: 1, state: 'succeeded', reason: 'approved by ada', finishedAt: at(3).toISOString() }],
      at(3),
    );
    detail = runs.get(runId(1));
    expect(detail).toMatchObject({
      state: 'succeeded',
      waiting: null,
      current_step: null,
      reason: 'done',
      answers: { details: { version: '1.2.3', notify: true } },
      finished_at: at(3).toISOString(),
      updated_at: at(3).toISOString(),
      inputs: { env: 'prod', n: 1 },
    });
    expect(detail?.steps[1]).toMatchObject({ state: 'succeeded', reason: 'approved by ada', attempt: 1 });
    expect(detail?.steps[2]?.state).toBe('pending');
    expect(runs.getRecord(runId(1))).toMatchObject({ stepIndex: 1, lastRunSeq: 6 });

    // A patch-only checkpoint appends nothing and keeps last_run_seq.
    expect(runs.record(runId(1), { reason: 'still done' }, [], [], at(4))).toEqual([]);
    expect(runs.getRecord(runId(1))).toMatchObject({
      reason: 'still done',
      lastRunSeq: 6,
      updatedAt: at(4).toISOString(),
    });
  });

  it('keeps a step waiting to retry with its due time, and its earlier attempts (with their outputs) as it retries', () => {
    const store = open();
    create(store.runs, 1);
    const { runs } = store;
    const attempt = (n: number, start: number, exitCode: number) => {
      runs.record(
        runId(1),
        { state: 'running', attempt: n },
        [{ type: 'step.started' }],
        [
          n === 1
            ? { idx: 0, state: 'running', attempt: n, startedAt: at(start).toISOString(), outputs: null }
            : {
                idx: 0,
                state: 'running',
                attempt: n,
                startedAt: at(start).toISOString(),
                archiveAttempt: true,
                finishedAt: null,
                exitCode: null,
                reason: null,
                retryAt: null,
                outputs: null,
              },
        ],
      );
      runs.record(
        runId(1),
        {},
        [{ type: 'step.finished' }, { type: 'step.retrying' }],
        [
          {
            idx: 0,
            state: 'retrying',
            exitCode,
            reason: `step_failed: exit code ${exitCode}`,
            finishedAt: at(start + 1).toISOString(),
            retryAt: at(start + 5).toISOString(),
            // Attempt 2 writes none.
            outputs: n === 2 ? {} : { tried: String(n) },
          },
        ],
      );
    };
    attempt(1, 10, 3);
    expect(runs.get(runId(1))?.steps[0]).toMatchObject({
      state: 'retrying',
      attempt: 1,
      exit_code: 3,
      retry_at: at(15).toISOString(),
      attempts: [],
      outputs: { tried: '1' },
    });
    attempt(2, 20, 4);
    attempt(3, 30, 5);
    const step = runs.get(runId(1))?.steps[0];
    expect(step).toMatchObject({
      state: 'retrying',
      attempt: 3,
      exit_code: 5,
      retry_at: at(35).toISOString(),
      outputs: { tried: '3' },
    });
    // A step waiting to retry passes nothing on, neither its latest attempt's nor earlier ones'.
    expect(runs.passedOutputs(runId(1), 1)).toEqual({});
    expect(step?.attempts).toEqual([
      {
        attempt: 1,
        started_at: at(10).toISOString(),
        finished_at: at(11).toISOString(),
        exit_code: 3,
        reason: 'step_failed: exit code 3',
        outputs: { tried: '1' },
      },
      {
        attempt: 2,
        started_at: at(20).toISOString(),
        finished_at: at(21).toISOString(),
        exit_code: 4,
        reason: 'step_failed: exit code 4',
        outputs: {},
      },
    ]);
  });

  it('changes nothing when any part of a record fails', () => {
    const store = open();
    const runs = store.runs;
    create(runs, 1);
    const before = runs.get(runId(1));
    const lastSeq = store.lastSeq();

    const error = thrown(() =>
      runs.record(
        runId(1),
        { state: 'running', currentStep: 'build' },
        [{ type: 'run.started' }, { type: 'bad', data: { n: 1n } }],
        [{ idx: 0, state: 'running' }],
        at(5),
      ),
    );
    expect(error).toBeInstanceOf(TypeError);
    // Un-encodable answers, and a step the run does not have, are refused the same way.
    expect(() =>
      runs.record(runId(1), { state: 'running', answers: { x: { n: 2n } } }, [{ type: 'a' }]),
    ).toThrow(TypeError);
    expect(
      codeOf(() =>
        runs.record(runId(1), { state: 'running' }, [{ type: 'a' }], [{ idx: 7, state: 'running' }]),
      ),
    ).toBe('INTERNAL');
    expect(() => runs.appendEvents(runId(1), [{ type: 'ok' }, { type: 'bad', data: { n: 3n } }])).toThrow(
      TypeError,
    );

    expect(runs.get(runId(1))).toEqual(before);
    expect(runs.getRecord(runId(1))?.lastRunSeq).toBe(1);
    expect(store.lastSeq()).toBe(lastSeq);
    // The next event still gets run_seq 2: the failed attempts reserved nothing.
    expect(runs.appendEvents(runId(1), [{ type: 'step.output' }])[0]?.run_seq).toBe(2);
  });

  it('refuses a record or events for an unknown run with UNKNOWN_RUN', () => {
    const store = open();
    expect(codeOf(() => store.runs.record(runId(9), { state: 'running' }, [{ type: 'x' }]))).toBe(
      'UNKNOWN_RUN',
    );
    expect(codeOf(() => store.runs.appendEvents(runId(9), [{ type: 'x' }]))).toBe('UNKNOWN_RUN');
    expect(store.lastSeq()).toBe(0);
  });

  it('keeps run_seq gap-free per run while events of two runs interleave', () => {
    const store = open();
    const runs = store.runs;
    create(runs, 1);
    create(runs, 2);
    const all: JournalEntry[] = [];
    for (let i = 0; i < 5; i++) {
      all.push(...runs.appendEvents(runId(1), [{ type: 'step.output', data: { i } }], at(10)));
      all.push(
        ...runs.appendEvents(
          runId(2),
          [{ type: 'step.output', data: { i } }, { type: 'step.output' }],
          at(10),
        ),
      );
      all.push(...runs.record(runId(1), { attempt: 1 }, [{ type: 'tick' }], [], at(10)));
    }
    const seqs = (id: string) => all.filter((e) => e.run_id === id).map((e) => e.run_seq);
    expect(seqs(runId(1))).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
    expect(seqs(runId(2))).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
    // The global seq stays one sequence across runs.
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 3));
    expect(runs.getRecord(runId(1))?.lastRunSeq).toBe(11);
    expect(runs.getRecord(runId(2))?.lastRunSeq).toBe(11);
    // appendEvents touches no checkpoint field: run 2 still shows its creation time.
    expect(runs.getRecord(runId(2))?.updatedAt).toBe(T0.toISOString());
    expect(runs.getRecord(runId(1))?.updatedAt).toBe(at(10).toISOString());
  });

  it('lists runs newest first, in pages linked by an opaque cursor', () => {
    const runs = open().runs;
    runs.transaction(() => {
      for (let n = 1; n <= 45; n++) create(runs, n);
    });

    const pages = [];
    let cursor: string | undefined;
    for (;;) {
      const page = runs.list(cursor === undefined ? { limit: 20 } : { limit: 20, cursor });
      pages.push(page);
      if (page.next_cursor === null) break;
      expect(page.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      cursor = page.next_cursor;
    }
    expect(pages.map((p) => p.runs.length)).toEqual([20, 20, 5]);
    const ids = pages.flatMap((p) => p.runs.map((r) => r.run_id));
    expect(ids).toEqual(Array.from({ length: 45 }, (_, i) => runId(45 - i)));
    expect(new Set(ids).size).toBe(45);
    expect(pages[0]?.runs[0]).toEqual({
      run_id: runId(45),
      workflow_id: 'deploy',
      state: 'queued',
      reason: null,
      current_step: null,
      created_at: T0.toISOString(),
      updated_at: T0.toISOString(),
    });

    // An exact multiple of the limit ends without an empty extra page.
    expect(runs.list({ limit: 45 }).next_cursor).toBeNull();
    // A run created after the first page was read does not shift the following pages.
    const first = runs.list({ limit: 20 });
    create(runs, 46);
    expect(runs.list({ limit: 20, cursor: first.next_cursor ?? '' }).runs[0]?.run_id).toBe(runId(25));
  });

  it('filters the list by state, paginating within it', () => {
    const runs = open().runs;
    for (let n = 1; n <= 10; n++) create(runs, n);
    for (const n of [2, 4, 6, 8]) runs.record(runId(n), { state: 'failed' }, [{ type: 'run.finished' }]);

    const page1 = runs.list({ limit: 3, state: 'failed' });
    expect(page1.runs.map((r) => r.run_id)).toEqual([runId(8), runId(6), runId(4)]);
    expect(page1.runs.every((r) => r.state === 'failed')).toBe(true);
    const page2 = runs.list({ limit: 3, state: 'failed', cursor: page1.next_cursor ?? '' });
    expect(page2).toEqual({ runs: [expect.objectContaining({ run_id: runId(2) })], next_cursor: null });
    expect(runs.list({ limit: 20, state: 'queued' }).runs).toHaveLength(6);
    expect(runs.list({ limit: 20, state: 'cancelling' })).toEqual({ runs: [], next_cursor: null });
  });

  it('refuses an invalid cursor, limit or state with INVALID_PARAMS', () => {
    const runs = open().runs;
    create(runs, 1);
    for (const cursor of ['', 'not a cursor!', 'YR', 'YQ==']) {
      expect(codeOf(() => runs.list({ limit: 5, cursor }))).toBe('INVALID_PARAMS');
    }
    expect(codeOf(() => runs.list({ limit: 0 }))).toBe('INVALID_PARAMS');
    expect(codeOf(() => runs.list({ limit: Number.NaN }))).toBe('INVALID_PARAMS');
    expect(codeOf(() => runs.list({ limit: 5, state: 'bogus' as RunState }))).toBe('INVALID_PARAMS');
    // A well-formed cursor is just a position, even past every run.
    expect(runs.list({ limit: 5, cursor: Buffer.from('r').toString('base64url') }).runs).toEqual([]);
  });

  it('returns the unfinished runs, oldest first', () => {
    const runs = open().runs;
    for (let n = 1; n <= 8; n++) create(runs, n);
    const states: RunState[] = [
      'running',
      'succeeded',
      'waiting',
      'failed',
      'cancelling',
      'cancelled',
      'queued',
      'queued',
    ];
    states.forEach((state, i) => {
      runs.record(runId(i + 1), { state }, []);
    });
    const unfinished = runs.unfinished();
    expect(unfinished.map((r) => [r.runId, r.state])).toEqual([
      [runId(1), 'running'],
      [runId(3), 'waiting'],
      [runId(5), 'cancelling'],
      [runId(7), 'queued'],
      [runId(8), 'queued'],
    ]);
    expect(unfinished[0]).toMatchObject({
      workflowId: 'deploy',
      inputs: { env: 'prod', n: 1 },
      lastRunSeq: 1,
    });
  });

  it('reads a run’s events after a seq, ascending', () => {
    const store = open();
    const runs = store.runs;
    create(runs, 1);
    create(runs, 2);
    store.append({ type: 'daemon.note', runId: runId(1) }); // not a run event: no run_seq
    for (let i = 0; i < 4; i++) {
      runs.appendEvents(runId(1), [{ type: 'step.output', data: { i } }], at(i));
      runs.appendEvents(runId(2), [{ type: 'step.output', data: { i } }], at(i));
    }
    const all = runs.events(runId(1), 0, 100);
    expect(all.map((e) => e.run_seq)).toEqual([1, 2, 3, 4, 5]);
    expect(all.map((e) => e.seq)).toEqual([1, 4, 6, 8, 10]);
    expect(all[1]).toEqual({
      seq: 4,
      run_seq: 2,
      ts: at(0).toISOString(),
      type: 'step.output',
      data: { i: 0 },
    });

    expect(runs.events(runId(1), 4, 100).map((e) => e.seq)).toEqual([6, 8, 10]);
    expect(runs.events(runId(1), 4, 2).map((e) => e.seq)).toEqual([6, 8]);
    expect(runs.events(runId(1), 10, 100)).toEqual([]);
    expect(runs.events(runId(1), 0, -1)).toEqual([]);
    expect(runs.events(runId(9), 0, 100)).toEqual([]);
  });

  it('counts runs per state, zero-filled', () => {
    const runs = open().runs;
    expect(runs.counts()).toEqual({
      queued: 0,
      running: 0,
      waiting: 0,
      cancelling: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0,
    });
    for (let n = 1; n <= 6; n++) create(runs, n);
    runs.record(runId(1), { state: 'running' }, []);
    runs.record(runId(2), { state: 'running' }, []);
    runs.record(runId(3), { state: 'succeeded' }, []);
    expect(runs.counts()).toEqual({
      queued: 3,
      running: 2,
      waiting: 0,
      cancelling: 0,
      succeeded: 1,
      failed: 0,
      cancelled: 0,
    });
  });

  it('refuses a bogus run or step state through its CHECK constraints', () => {
    const store = open();
    const runs = store.runs;
    create(runs, 1);
    expect(() => runs.record(runId(1), { state: 'bogus' as RunState }, [{ type: 'x' }])).toThrow(
      /CHECK constraint/,
    );
    expect(() =>
      runs.record(runId(1), {}, [{ type: 'x' }], [{ idx: 0, state: 'bogus' as 'pending' }]),
    ).toThrow(/CHECK constraint/);
    expect(runs.getRecord(runId(1))).toMatchObject({ state: 'queued', lastRunSeq: 1 });
    expect(store.lastSeq()).toBe(1);

    const raw = new Database(dbPath);
    try {
      expect(() =>
        raw
          .prepare(
            `INSERT INTO runs (run_id, workflow_id, state, inputs, created_at, updated_at)
             VALUES ('x', 'w', 'exploded', '{}', 't', 't')`,
          )
          .run(),
      ).toThrow(/CHECK constraint/);
      expect(() =>
        raw
          .prepare(`INSERT INTO steps (run_id, idx, step_id, kind, state) VALUES (?, 9, 's', 'run', 'nope')`)
          .run(runId(1)),
      ).toThrow(/CHECK constraint/);
    } finally {
      raw.close();
    }
  });

  it('plans the listing queries on an index, never a full scan of runs', () => {
    const runs = open().runs;
    create(runs, 1);
    const raw = new Database(dbPath, { readonly: true });
    try {
      const params = { limit: 51, after: runId(5), state: 'queued' };
      for (const [name, sql] of Object.entries(LIST_RUNS_SQL)) {
        const bind = Object.fromEntries(Object.entries(params).filter(([key]) => sql.includes(`@${key}`)));
        const plan = raw
          .prepare<[Record<string, unknown>], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
          .all(bind)
          .map((row) => row.detail);
        const text = `${name}: ${plan.join(' | ')}`;
        // The rows come out of an index already in order: no table scan and no sort of all rows.
        expect(text).toMatch(/ USING (COVERING )?INDEX /);
        expect(text).not.toMatch(/SCAN runs$|SCAN runs \|/);
        expect(text).not.toContain('TEMP B-TREE');
        // With a cursor or a state, the index is sought to the first row, not scanned from its start.
        if (name !== 'all') expect(text).toMatch(/SEARCH runs USING/);
      }
    } finally {
      raw.close();
    }
  });

  it('lists the newest page among 10,000 runs', () => {
    const runs = open().runs;
    // One transaction: one sync for the batch instead of one per run.
    runs.transaction(() => {
      for (let n = 1; n <= 10_000; n++) create(runs, n);
    });
    const page = runs.list({ limit: 50 });
    expect(page.runs).toHaveLength(50);
    expect(page.runs[0]?.run_id).toBe(runId(10_000));
    expect(page.runs[49]?.run_id).toBe(runId(9_951));
    expect(page.next_cursor).not.toBeNull();
    const next = runs.list({ limit: 50, cursor: page.next_cursor ?? '', state: 'queued' });
    expect(next.runs[0]?.run_id).toBe(runId(9_950));
    expect(runs.counts().queued).toBe(10_000);
    expect(runs.get(runId(5_000))?.steps).toHaveLength(3);
  });

  it('rolls a batch back as a whole', () => {
    const store = open();
    const runs = store.runs;
    expect(() =>
      runs.transaction(() => {
        create(runs, 1);
        create(runs, 1); // duplicate id
      }),
    ).toThrow(/UNIQUE constraint/);
    expect(runs.get(runId(1))).toBeUndefined();
    expect(store.lastSeq()).toBe(0);
  });
});
