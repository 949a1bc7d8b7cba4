/**
 * Retention on a real store on disk: what is pruned (finished runs by count, age and size, with
 * their events, steps and folders) and what never is (unfinished runs, entries the gateway has
 * not acknowledged); the file shrinks; a dry run changes nothing.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../src/store/retention.js';
import { Store } from '../../src/store/store.js';

let dir: string;
let store: Store;
const day = 86_400_000;
const NOW = new Date('2026-06-01T12:00:00Z');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'charter-retention-'));
  mkdirSync(join(dir, 'runs'));
  store = Store.open(join(dir, 'state.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const runId = (n: number) => `r01TEST${String(n).padStart(20, '0')}`;
const text = 'some chatty output line that a step printed\n'.repeat(40);

/** A run with output; finished `ageDays` before NOW unless `state` is unfinished. */
function addRun(n: number, state: 'succeeded' | 'failed' | 'waiting' | 'queued', ageDays = 1): string {
  const id = runId(n);
  const at = new Date(NOW.getTime() - ageDays * day);
  store.runs.createRun(
    { runId: id, workflowId: 'w', inputs: {}, steps: [{ id: 's', kind: 'run' }], now: at },
    { type: 'run.queued' },
  );
  store.runs.appendEvents(id, [{ type: 'step.output', data: { text } }], at);
  if (state === 'succeeded' || state === 'failed') {
    store.runs.record(id, { state, finishedAt: at.toISOString() }, [{ type: `run.${state}` }], [], at);
  } else if (state === 'waiting') {
    store.runs.record(id, { state }, [{ type: 'run.waiting' }], [], at);
  }
  mkdirSync(join(dir, 'runs', id));
  writeFileSync(join(dir, 'runs', id, 'context.json'), '{}');
  return id;
}

const policy = (over: Partial<RetentionPolicy> = {}): RetentionPolicy => ({
  maxAgeDays: 30,
  maxFinishedRuns: 10_000,
  maxStoreMb: 1024,
  ...over,
});

const prune = (over: Partial<RetentionPolicy> = {}, protectUnacked = false, dryRun = false) =>
  store.retention.prune({
    policy: policy(over),
    protectUnacked,
    dryRun,
    runsDir: join(dir, 'runs'),
    now: NOW,
  });

describe('retention', () => {
  it('keeps at most max_finished_runs finished runs, oldest pruned first, and every unfinished run', async () => {
    const finished = Array.from({ length: 300 }, (_, i) =>
      addRun(i, i % 7 === 0 ? 'failed' : 'succeeded', 300 - i),
    );
    const waiting = [addRun(1000, 'waiting', 400), addRun(1001, 'queued', 400)];
    const sizeBefore = statSync(join(dir, 'state.db')).size + statSync(join(dir, 'state.db-wal')).size;

    const report = await prune({ maxFinishedRuns: 100, maxAgeDays: 1000 });

    expect(report).toMatchObject({ runs: 200, events: 600, dry_run: false, kept_for_gateway: false });
    const counts = store.runs.counts();
    expect(counts.succeeded + counts.failed).toBe(100);
    expect(counts.waiting + counts.queued).toBe(2);
    for (const id of finished.slice(0, 200)) {
      expect(store.runs.get(id)).toBeUndefined();
      expect(store.runs.events(id, 0, 10)).toEqual([]);
      expect(existsSync(join(dir, 'runs', id))).toBe(false);
    }
    for (const id of [...finished.slice(200), ...waiting]) {
      expect(store.runs.get(id)).toBeDefined();
      expect(existsSync(join(dir, 'runs', id))).toBe(true);
    }
    // Pruned runs still count in the totals status reports.
    const pruned = store.retention.prunedCounts();
    expect(pruned.succeeded + pruned.failed).toBe(200);
    // The space is given back to the filesystem.
    expect(report.bytes_after).toBeLessThan(sizeBefore);
    expect(statSync(join(dir, 'state.db')).size).toBeLessThan(sizeBefore);
    expect(store.retention.figures().oldest_kept_run?.run_id).toBe(finished[200]);
    expect(store.retention.lastPrune()).toEqual(report);
  });

  it('prunes finished runs older than max_age_days', async () => {
    const old = [addRun(1, 'succeeded', 45), addRun(2, 'failed', 31)];
    const young = [addRun(3, 'succeeded', 29), addRun(4, 'succeeded', 1)];
    const report = await prune();
    expect(report.runs).toBe(2);
    for (const id of old) expect(store.runs.get(id)).toBeUndefined();
    for (const id of young) expect(store.runs.get(id)).toBeDefined();
  });

  it('prunes oldest finished runs while the store is above max_store_mb', async () => {
    for (let i = 0; i < 400; i++) addRun(i, 'succeeded', 20 - i / 100);
    const before = store.retention.figures().used_bytes;
    expect(before).toBeGreaterThan(1024 * 1024);
    const report = await prune({ maxStoreMb: 0.5 });
    expect(report.runs).toBeGreaterThan(0);
    expect(report.runs).toBeLessThan(400);
    expect(store.retention.figures().used_bytes).toBeLessThanOrEqual(0.5 * 1024 * 1024);
    expect(report.over_budget).toBe(false);
  });

  it('with a gateway, never prunes an entry it has not acknowledged', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => addRun(i, 'succeeded', 50 - i));
    // The gateway has stored the first 20 runs' events (4 entries each), nothing after.
    const acked = store.runs.events(ids[19] as string, 0, 10).at(-1)?.seq as number;
    store.gateway.ackUp(acked);
    const lastSeq = store.lastSeq();

    const report = await prune({ maxFinishedRuns: 0 }, true);

    expect(report.runs).toBe(20);
    expect(report.kept_for_gateway).toBe(true);
    const remaining = store.readJournal({ limit: 10_000 });
    expect(remaining.every((entry) => entry.seq > acked)).toBe(true);
    // Every unacknowledged entry is still there, without a gap.
    expect(remaining.map((e) => e.seq)).toEqual(
      Array.from({ length: lastSeq - acked }, (_, i) => acked + 1 + i),
    );
    // Without a gateway the local store is the record: retention applies to all of it.
    expect((await prune({ maxFinishedRuns: 0 }, false)).runs).toBe(30);
  });

  it('a dry run changes nothing and says what a prune would remove', async () => {
    for (let i = 0; i < 30; i++) addRun(i, 'succeeded', 30 - i);
    const lastSeq = store.lastSeq();
    const dry = await prune({ maxFinishedRuns: 10 }, false, true);
    expect(dry).toMatchObject({ dry_run: true, runs: 20, events: 60 });
    expect(store.runs.counts().succeeded).toBe(30);
    expect(store.lastSeq()).toBe(lastSeq);
    expect(store.retention.lastPrune()).toBeNull();
    const real = await prune({ maxFinishedRuns: 10 });
    expect(real).toMatchObject({ runs: dry.runs, events: dry.events });
  });

  it('prunes old daemon-level entries but keeps the newest daemon.started and what follows', async () => {
    const old = new Date(NOW.getTime() - 40 * day);
    store.append({ type: 'daemon.started', ts: old });
    store.append({ type: 'daemon.stopped', ts: old });
    const started = store.append({ type: 'daemon.started', ts: old });
    const report = await prune();
    expect(report.events).toBe(2);
    expect(store.readJournal({}).map((e) => e.seq)).toEqual([started.seq]);
  });

  it('stops between slices when aborted', async () => {
    for (let i = 0; i < 50; i++) addRun(i, 'succeeded', 60);
    const controller = new AbortController();
    controller.abort();
    const report = await store.retention.prune({
      policy: policy(),
      protectUnacked: false,
      signal: controller.signal,
      now: NOW,
    });
    expect(report.aborted).toBe(true);
    expect(report.runs).toBe(0);
  });
});
