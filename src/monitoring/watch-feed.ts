/**
 * The `watch` stream behind `charter-daemon top`: the daemon pushes what changed, the CLI never
 * polls. A watcher first gets every live run (in batches) and the most recent finished runs;
 * then, within FLUSH_MS of a change, the runs that changed. Changes are learnt from the journal's
 * append notification (every transition of every run is journaled), coalesced, and read back
 * from the store once the writing transaction has committed. A header with the daemon's figures
 * comes with every message, and at least once a second (the events-per-second line moves).
 */
import type { StatusResult } from '../protocol/control.js';
import type { WatchHeader, WatchParams, WatchRun, WatchUpdate } from '../protocol/observe.js';
import { isFinalRunState } from '../protocol/run-counts.js';
import type { RunRecord } from '../store/run-store.js';
import type { Store } from '../store/store.js';
import type { StoreFault } from '../store/store-health.js';
import type { DaemonMetrics } from './recorder.js';

/** A change reaches watchers this long after it was journaled, at most (plus the write). */
export const FLUSH_MS = 100;
/** The header is sent again this often when nothing else changed. */
export const HEADER_EVERY_MS = 1000;
/** Live runs per message of the first burst: keeps every line far below the 1 MiB limit. */
export const WATCH_BATCH = 500;
/** How far back the list of runs is read to find the most recent finished ones. */
const RECENT_SCAN = 500;

export interface WatchFeedDeps {
  readonly store: Store;
  readonly recorder: DaemonMetrics;
  /** The daemon's status as the root computes it; undefined before the root exists. */
  readonly status: () => StatusResult | undefined;
  readonly storeFault: () => StoreFault | null;
}

/** Sends one message of the stream; false once the watcher has gone. */
export type WatchSend = (update: WatchUpdate) => boolean;

export class WatchFeeds {
  readonly #deps: WatchFeedDeps;
  readonly #open = new Set<{ poke(): void; stop(): void }>();

  constructor(deps: WatchFeedDeps) {
    this.#deps = deps;
  }

  /** Starts a stream; returns how to stop it. */
  open(params: WatchParams, send: WatchSend): () => void {
    const feed = startFeed(this.#deps, params, send, () => this.#open.delete(feed));
    this.#open.add(feed);
    return () => feed.stop();
  }

  /** Something that is not journaled changed (the gateway link): tell every watcher now. */
  poke(): void {
    for (const feed of this.#open) feed.poke();
  }

  stopAll(): void {
    for (const feed of [...this.#open]) feed.stop();
  }
}

function startFeed(deps: WatchFeedDeps, params: WatchParams, send: WatchSend, onStop: () => void) {
  const { store } = deps;
  const dirty = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let recent = initialRecent(store, params.recent);

  const stop = () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    clearInterval(ticker);
    if (timer !== undefined) clearTimeout(timer);
    onStop();
  };
  const deliver = (update: WatchUpdate) => {
    if (stopped) return;
    if (!send(update)) stop();
  };
  const schedule = (delayMs: number) => {
    if (stopped || timer !== undefined) return;
    timer = setTimeout(flush, delayMs);
  };
  const flush = () => {
    timer = undefined;
    const runs: WatchRun[] = [];
    const removed: string[] = [];
    let recentChanged = false;
    for (const runId of dirty) {
      const record = store.runs.getRecord(runId);
      if (record === undefined) continue;
      if (record.finishedAt === null) {
        runs.push(toWatchRun(record));
        continue;
      }
      removed.push(runId);
      if (params.recent > 0) {
        recent = [toWatchRun(record), ...recent.filter((run) => run.run_id !== runId)].slice(
          0,
          params.recent,
        );
        recentChanged = true;
      }
    }
    dirty.clear();
    deliver({
      header: header(deps),
      reset: false,
      runs,
      removed,
      ...(recentChanged ? { recent } : {}),
    });
  };

  const unsubscribe = store.onAppend((entry) => {
    // Step output changes no run's row; everything else of a run may.
    if (entry.run_id === null || entry.type === 'step.output') return;
    dirty.add(entry.run_id);
    schedule(FLUSH_MS);
  });
  const ticker = setInterval(() => schedule(0), HEADER_EVERY_MS);
  ticker.unref();

  // The first burst: everything live, then changes only.
  const live = store.runs.unfinished().map(toWatchRun);
  const first = header(deps);
  for (let at = 0; at === 0 || at < live.length; at += WATCH_BATCH) {
    deliver({
      header: first,
      reset: at === 0,
      runs: live.slice(at, at + WATCH_BATCH),
      removed: [],
      ...(at === 0 ? { recent } : {}),
    });
  }

  return { poke: () => schedule(0), stop };
}

function header(deps: WatchFeedDeps): WatchHeader {
  const status = deps.status();
  const { count, oldestTs } = deps.store.gateway.backlog();
  const fault = deps.storeFault();
  return {
    pid: status?.pid ?? process.pid,
    version: status?.version ?? '',
    state: status?.state ?? 'booting',
    started_at: status?.started_at ?? new Date().toISOString(),
    project_root: status?.project_root ?? '',
    gateway: {
      state: status?.gateway.state ?? 'offline',
      url: status?.gateway.url ?? null,
      since: status?.gateway.since ?? null,
    },
    backlog: count,
    oldest_unacked_age_seconds:
      oldestTs === null ? null : Math.max(0, (Date.now() - Date.parse(oldestTs)) / 1000),
    events_per_second: deps.recorder.eventsPerSecond(),
    runs: status?.runs ?? deps.store.runs.counts(),
    store_fault: fault === null ? null : { code: fault.code, message: fault.message },
  };
}

/** The most recent finished runs, newest first, among the newest RECENT_SCAN runs. */
function initialRecent(store: Store, limit: number): WatchRun[] {
  if (limit === 0) return [];
  const newest = store.runs.list({ limit: RECENT_SCAN }).runs;
  const finished: WatchRun[] = [];
  for (const summary of newest) {
    if (finished.length >= limit) break;
    if (isFinalRunState(summary.state)) {
      const record = store.runs.getRecord(summary.run_id);
      if (record !== undefined) finished.push(toWatchRun(record));
    }
  }
  return finished;
}

function toWatchRun(record: RunRecord): WatchRun {
  return {
    run_id: record.runId,
    workflow_id: record.workflowId,
    state: record.state,
    reason: record.reason,
    current_step: record.currentStep,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
    finished_at: record.finishedAt,
    waiting: record.waiting,
  };
}
