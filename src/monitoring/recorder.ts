/**
 * What the daemon counts for its metrics and its live view, in plain numbers. No metrics
 * library is loaded here: counting costs a few increments per journal entry whether or not the
 * metrics are exposed, so the counters are right from the start even when `charter-daemon
 * metrics` is first asked an hour later (prom-client is loaded only then, see exposition.ts).
 *
 * Journal entries are counted through the store's append notification: every event, run
 * transition and command result passes there, whoever wrote it. The notification may come from
 * inside a transaction that later rolls back (a failed write): such an entry is counted anyway,
 * which only happens while the store is failing, and is visible as such.
 */
import type { ConnectOutcome, TransportCounters } from '../gateway/transport.js';
import { commandArgs } from '../protocol/gateway.js';
import type { JournalEntry } from '../store/journal-entry.js';
import type { Store } from '../store/store.js';

/** Seconds; from a quick step to a run that waited a day at a gate. */
export const DURATION_BUCKETS_SECONDS = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400,
] as const;

/** Seconds of history kept for the events-per-second figure of the live view. */
export const RATE_WINDOW_SECONDS = 60;
/** The ring holds the window's complete seconds plus the one filling now. */
const RING = RATE_WINDOW_SECONDS + 1;

export interface HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Cumulative counts per bucket of DURATION_BUCKETS_SECONDS (`le`), then +Inf is `count`. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** A histogram with fixed buckets, one series per label set (bounded: workflow ids × outcomes). */
export class BucketHistogram {
  readonly #series = new Map<string, HistogramSeries>();

  observe(labels: Readonly<Record<string, string>>, seconds: number): void {
    const key = JSON.stringify(labels);
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { labels, buckets: DURATION_BUCKETS_SECONDS.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    const value = Math.max(0, seconds);
    for (let i = 0; i < DURATION_BUCKETS_SECONDS.length; i++) {
      if (value <= (DURATION_BUCKETS_SECONDS[i] ?? 0)) series.buckets[i] = (series.buckets[i] ?? 0) + 1;
    }
    series.sum += value;
    series.count += 1;
  }

  series(): readonly HistogramSeries[] {
    return [...this.#series.values()];
  }
}

const RUN_ENDS = new Set(['run.succeeded', 'run.failed', 'run.cancelled']);
const KNOWN_COMMAND_KINDS = new Set(Object.keys(commandArgs));

export class DaemonMetrics implements TransportCounters {
  /** Journal entries appended (`charter_events_total`). */
  eventsJournaled = 0;
  /** Events written to the gateway's socket (`charter_events_shipped_total`). */
  eventsShipped = 0;
  /** Events the gateway acknowledged as stored (`charter_events_acked_total`). */
  eventsAcked = 0;
  readonly connects = new Map<ConnectOutcome, number>();
  /** Gateway commands by `kind|status`. */
  readonly commands = new Map<string, { kind: string; status: string; count: number }>();
  readonly runDurations = new BucketHistogram();
  readonly stepDurations = new BucketHistogram();
  readonly #store: Store;
  /** Journal entries per second, a ring over the last RATE_WINDOW_SECONDS seconds. */
  readonly #perSecond = new Array<number>(RING).fill(0);
  #second = 0;
  readonly #unsubscribe: () => void;

  readonly #now: () => number;

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
    this.#unsubscribe = store.onAppend((entry) => this.#onEntry(entry));
  }

  stop(): void {
    this.#unsubscribe();
  }

  shipped(count: number): void {
    this.eventsShipped += count;
  }

  acked(count: number): void {
    if (count > 0) this.eventsAcked += count;
  }

  connected(outcome: ConnectOutcome): void {
    this.connects.set(outcome, (this.connects.get(outcome) ?? 0) + 1);
  }

  /** Entries journaled in each of the last RATE_WINDOW_SECONDS whole seconds, oldest first. */
  eventsPerSecond(): number[] {
    this.#advance(Math.floor(this.#now() / 1000));
    const out: number[] = [];
    // The current second is still filling: the window ends with the last complete one.
    for (let back = RATE_WINDOW_SECONDS; back >= 1; back--) {
      out.push(this.#perSecond[(this.#second - back) % RING] ?? 0);
    }
    return out;
  }

  #onEntry(entry: JournalEntry): void {
    this.eventsJournaled += 1;
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#second) this.#advance(second);
    const slot = second % RING;
    this.#perSecond[slot] = (this.#perSecond[slot] ?? 0) + 1;
    if (entry.type === 'step.output') return;
    if (entry.type === 'step.finished' && entry.run_id !== null) this.#stepFinished(entry, entry.run_id);
    else if (RUN_ENDS.has(entry.type) && entry.run_id !== null) this.#runEnded(entry, entry.run_id);
    else if (entry.type === 'command.result') this.#commandSettled(entry);
  }

  /** Clears the slots of the seconds that passed without an entry. */
  #advance(second: number): void {
    if (second <= this.#second) return;
    const gap = Math.min(second - this.#second, RING);
    for (let i = 1; i <= gap; i++) this.#perSecond[(this.#second + i) % RING] = 0;
    this.#second = second;
  }

  #runEnded(entry: JournalEntry, runId: string): void {
    const record = this.#store.runs.getRecord(runId);
    if (record === undefined) return;
    const seconds = (Date.parse(entry.ts) - Date.parse(record.createdAt)) / 1000;
    this.runDurations.observe(
      { workflow: record.workflowId, outcome: entry.type.slice('run.'.length) },
      seconds,
    );
  }

  #stepFinished(entry: JournalEntry, runId: string): void {
    const data = entry.data as { step_id?: unknown; outcome?: unknown };
    const detail = this.#store.runs.get(runId);
    const step = detail?.steps.find((candidate) => candidate.id === data.step_id);
    if (detail === undefined || step?.started_at == null) return;
    const outcome =
      data.outcome === 'succeeded' ? 'succeeded' : data.outcome === 'cancelled' ? 'cancelled' : 'failed';
    const seconds = (Date.parse(entry.ts) - Date.parse(step.started_at)) / 1000;
    this.stepDurations.observe({ workflow: detail.workflow_id, outcome }, seconds);
  }

  #commandSettled(entry: JournalEntry): void {
    const data = entry.data as { cmd_id?: unknown; status?: unknown };
    if (typeof data.cmd_id !== 'string' || typeof data.status !== 'string') return;
    const stored = this.#store.gateway.commandKind(data.cmd_id);
    // Kinds come from the gateway: anything unknown is one label value, so labels stay bounded.
    const kind = stored !== null && KNOWN_COMMAND_KINDS.has(stored) ? stored : 'other';
    const key = `${kind}|${data.status}`;
    const counted = this.commands.get(key);
    if (counted === undefined) this.commands.set(key, { kind, status: data.status, count: 1 });
    else counted.count += 1;
  }
}
