/**
 * The Prometheus text exposition of the daemon's metrics, built with prom-client. Loaded only
 * when metrics are asked for (`--metrics`, `daemon.metrics.listen`, or `charter-daemon metrics`):
 * nothing else in the daemon imports prom-client.
 *
 * Every charter_* family is computed when scraped, from the plain counters of the recorder and
 * from figures the daemon already keeps (the root's run counts, the outbox cursor, file sizes),
 * so a scrape costs the same with 10 runs or 10,000 parked at gates. Label values are bounded:
 * run states, workflow ids, outcomes, link states, command kinds; never run ids.
 */
import { statSync } from 'node:fs';
import { collectDefaultMetrics, type Metric, Registry } from 'prom-client';
import type { RunCounts } from '../protocol/control.js';
import { type DaemonMetrics, DURATION_BUCKETS_SECONDS, type HistogramSeries } from './recorder.js';

/** The link states the gauge always lists (1 for the current one, 0 for the others). */
export const LINK_STATES = [
  'offline',
  'connecting',
  'handshaking',
  'authed',
  'backoff',
  'rejected',
  'superseded',
  'closed',
] as const;

/** The live figures a scrape reads, each cheap to compute. */
export interface MetricsSources {
  readonly recorder: DaemonMetrics;
  /** Run counts by state (live and finished), queue and slots, link state: from the root. */
  daemon(): { runs: RunCounts; queueDepth: number; slotsInUse: number; linkState: string };
  /** Events not yet acknowledged by the gateway, and the time of the oldest. */
  backlog(): { count: number; oldestTs: string | null };
  /** The store's files (database, WAL): their sizes add up to charter_store_size_bytes. */
  readonly storeFiles: readonly string[];
  /** Log lines dropped because the log file could not be written. */
  logLinesDropped(): number;
  /** The standing store write failure, if any. */
  storeFault(): { code: string } | null;
}

interface Sample {
  value: number;
  labels?: Record<string, string | number>;
  metricName?: string;
}

export interface Exposition {
  readonly contentType: string;
  text(): Promise<string>;
}

export function createExposition(sources: MetricsSources): Exposition {
  const registry = new Registry();
  // process_resident_memory_bytes, nodejs_eventloop_lag_seconds, nodejs_gc_duration_seconds, …
  collectDefaultMetrics({ register: registry });
  const define = (
    name: string,
    help: string,
    type: 'gauge' | 'counter' | 'histogram',
    values: () => Sample[],
  ) => {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
    };
    registry.registerMetric(metric as unknown as Metric);
  };
  const { recorder } = sources;
  /** How long the previous exposition took to build, in the daemon (seconds). */
  let lastBuildSeconds = 0;

  define('charter_runs', 'Runs known to the daemon, by state (live runs and finished ones).', 'gauge', () =>
    Object.entries(sources.daemon().runs).map(([state, value]) => ({ value, labels: { state } })),
  );
  define(
    'charter_run_duration_seconds',
    'Time from a run being queued to it finishing, by workflow and outcome.',
    'histogram',
    () => histogramSamples('charter_run_duration_seconds', recorder.runDurations.series()),
  );
  define(
    'charter_step_duration_seconds',
    'Time a run step executed, by workflow and outcome.',
    'histogram',
    () => histogramSamples('charter_step_duration_seconds', recorder.stepDurations.series()),
  );
  define('charter_queue_depth', 'Runs queued, waiting for a slot.', 'gauge', () => [
    { value: sources.daemon().queueDepth },
  ]);
  define('charter_run_slots_in_use', 'Runs holding a slot (running or cancelling).', 'gauge', () => [
    { value: sources.daemon().slotsInUse },
  ]);
  define('charter_events_total', 'Events appended to the journal.', 'counter', () => [
    { value: recorder.eventsJournaled },
  ]);
  define('charter_events_shipped_total', 'Events written to the gateway link.', 'counter', () => [
    { value: recorder.eventsShipped },
  ]);
  define('charter_events_acked_total', 'Events the gateway acknowledged as stored.', 'counter', () => [
    { value: recorder.eventsAcked },
  ]);
  define(
    'charter_gateway_backlog_events',
    'Events stored but not yet acknowledged by the gateway.',
    'gauge',
    () => [{ value: sources.backlog().count }],
  );
  define(
    'charter_gateway_backlog_oldest_age_seconds',
    'Age of the oldest event the gateway has not acknowledged (0 when there is none).',
    'gauge',
    () => {
      const { oldestTs } = sources.backlog();
      return [{ value: oldestTs === null ? 0 : Math.max(0, (Date.now() - Date.parse(oldestTs)) / 1000) }];
    },
  );
  define(
    'charter_gateway_link_state',
    'The gateway link state: 1 for the current state, 0 for the others.',
    'gauge',
    () => {
      const current = sources.daemon().linkState;
      const states: string[] = [...LINK_STATES];
      if (!states.includes(current)) states.push(current);
      return states.map((state) => ({ value: state === current ? 1 : 0, labels: { state } }));
    },
  );
  define(
    'charter_gateway_connects_total',
    'Connection attempts to the gateway, by how they ended.',
    'counter',
    () => [...recorder.connects].map(([outcome, value]) => ({ value, labels: { outcome } })),
  );
  define(
    'charter_commands_total',
    'Gateway commands by kind and status (applied, duplicate, rejected).',
    'counter',
    () =>
      [...recorder.commands.values()].map(({ kind, status, count }) => ({
        value: count,
        labels: { kind, status },
      })),
  );
  define('charter_store_size_bytes', 'Size of the store on disk (database and WAL).', 'gauge', () => [
    { value: sources.storeFiles.reduce((total, path) => total + fileSize(path), 0) },
  ]);
  define(
    'charter_store_write_failing',
    'Whether store writes fail right now (1) or succeed (0).',
    'gauge',
    () => [{ value: sources.storeFault() === null ? 0 : 1 }],
  );
  define(
    'charter_store_disk_full',
    'Whether the disk holding the store is full (1) or not (0).',
    'gauge',
    () => [{ value: sources.storeFault()?.code === 'DISK_FULL' ? 1 : 0 }],
  );
  define(
    'charter_log_lines_dropped_total',
    'Log lines dropped because the log file could not be written.',
    'counter',
    () => [{ value: sources.logLinesDropped() }],
  );

  define(
    'charter_metrics_scrape_duration_seconds',
    'Time the daemon took to build the previous exposition (0 before the second).',
    'gauge',
    () => [{ value: lastBuildSeconds }],
  );

  return {
    contentType: registry.contentType,
    text: async () => {
      const started = performance.now();
      const text = await registry.metrics();
      lastBuildSeconds = (performance.now() - started) / 1000;
      return text;
    },
  };
}

function histogramSamples(name: string, series: readonly HistogramSeries[]): Sample[] {
  const samples: Sample[] = [];
  for (const one of series) {
    DURATION_BUCKETS_SECONDS.forEach((le, i) => {
      samples.push({
        metricName: `${name}_bucket`,
        labels: { ...one.labels, le },
        value: one.buckets[i] ?? 0,
      });
    });
    samples.push({ metricName: `${name}_bucket`, labels: { ...one.labels, le: '+Inf' }, value: one.count });
    samples.push({ metricName: `${name}_sum`, labels: { ...one.labels }, value: one.sum });
    samples.push({ metricName: `${name}_count`, labels: { ...one.labels }, value: one.count });
  }
  return samples;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
