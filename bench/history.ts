/**
 * Section 13, costs as history grows (`npm run bench -- --only history`, or `npm run bench:history`):
 * the same daemon measured with 0, 10,000 and 100,000 finished runs in its store, each run as a
 * step printing 20 lines leaves it (queued, started, step started, output, step finished,
 * succeeded or failed; one in ten fails). The runs are written straight into the store (the
 * Store API the daemon uses) to keep the section to a few minutes.
 *
 * For each size: `start` until the daemon answers (median of 3, after a clean stop), `status`,
 * `runs list --limit 50` and `runs list --state failed --limit 50` p99 over 300 requests each on
 * one open connection, RSS after them, and the store's size on disk. Then, on the 100,000-run
 * store: a prune of 10,000 runs (max_finished_runs 90,000) while `status` is asked every 20 ms
 * (the longest answer is the event-loop stall seen from outside; the prune reports its longest
 * slice), a prune down to max_store_mb, and runs flowing while a prune runs every 2 s.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as z from 'zod/mini';
import { ControlConnection } from '../src/client/connection.js';
import { daemonPaths } from '../src/project/paths.js';
import { type PruneReportResult, PruneReportSchema, StatusResultSchema } from '../src/protocol/control.js';
import { RunsListResultSchema } from '../src/protocol/runs.js';
import { Store } from '../src/store/store.js';
import { round1, rssMiB, summarize } from './measure.js';

export interface HistoryHost {
  readonly makeProject: (charterYml?: string) => string;
  readonly startDaemon: (project: string) => Promise<number>;
  readonly stopDaemon: (project: string) => Promise<unknown>;
}

export interface HistoryRow {
  readonly runs: number;
  readonly start_ms: number;
  readonly status_p99_ms: number;
  readonly list_p99_ms: number;
  readonly failed_list_p99_ms: number;
  readonly rss_mib: number | null;
  readonly store_mib: number;
}

export interface HistoryResults {
  readonly rows: readonly HistoryRow[];
  readonly prune: {
    readonly report: PruneReportResult;
    readonly status_max_ms: number;
    readonly status_p99_ms: number;
  };
  readonly size_prune: { readonly max_store_mb: number; readonly report: PruneReportResult };
  readonly flowing: {
    readonly runs: number;
    /** The same flow without pruning, for comparison. */
    readonly baseline: {
      readonly seconds: number;
      readonly status_p99_ms: number;
      readonly status_max_ms: number;
    };
    readonly seconds: number;
    readonly prunes: number;
    readonly status_p99_ms: number;
    readonly status_max_ms: number;
  };
  readonly goals: Record<string, boolean>;
}

const SIZES = [0, 10_000, 100_000];
const REQUESTS = 300;
const STARTS = 3;
const charterYml = (retention: string) =>
  `name: bench-history\ndaemon:\n  max_runs: 8\n  max_queued_runs: 100000\n  retention:\n    interval_minutes: 1440\n${retention}`;

/** Writes `count` finished runs into the store (the daemon is stopped). */
function seed(storePath: string, identityPath: string, from: number, count: number): void {
  const store = Store.open(storePath, { identityPath });
  const text = Array.from({ length: 20 }, (_, i) => `line ${i + 1} of a chatty step, with some words\n`).join(
    '',
  );
  const now = Date.now();
  try {
    for (let start = from; start < from + count; start += 1000) {
      store.runs.transaction(() => {
        for (let n = start; n < Math.min(start + 1000, from + count); n++) {
          // Spread over the last 20 days, oldest first: inside the default 30-day limit.
          const at = new Date(now - 20 * 86_400_000 + n * 10_000);
          const runId = `r0BENCH${String(n).padStart(20, '0')}`;
          const failed = n % 10 === 9;
          store.runs.createRun(
            { runId, workflowId: 'chatty', inputs: {}, steps: [{ id: 'talk', kind: 'run' }], now: at },
            { type: 'run.queued', data: { workflow_id: 'chatty', inputs: {} } },
          );
          store.runs.record(
            runId,
            { state: 'running', currentStep: 'talk' },
            [{ type: 'run.started' }, { type: 'step.started', data: { step_id: 'talk', attempt: 1 } }],
            [{ idx: 0, state: 'running', attempt: 1, startedAt: at.toISOString() }],
            at,
          );
          store.runs.appendEvents(
            runId,
            [{ type: 'step.output', data: { step_id: 'talk', stream: 'stdout', text } }],
            at,
          );
          const state = failed ? 'failed' : 'succeeded';
          store.runs.record(
            runId,
            {
              state,
              reason: failed ? 'step_failed: exit code 1' : null,
              finishedAt: at.toISOString(),
              currentStep: null,
            },
            [
              { type: 'step.finished', data: { step_id: 'talk', state, exit_code: failed ? 1 : 0 } },
              { type: `run.${state}` },
            ],
            [{ idx: 0, state, exitCode: failed ? 1 : 0, finishedAt: at.toISOString() }],
            at,
          );
        }
      });
    }
  } finally {
    store.close();
  }
}

async function connect(project: string): Promise<ControlConnection> {
  return ControlConnection.open({ socketPath: daemonPaths(project).socketPath, clientVersion: 'bench' });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function p99(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return round1(sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? Number.NaN);
}

function storeMiB(project: string): number {
  const { storePath } = daemonPaths(project);
  const size = (path: string) => {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  };
  return round1((size(storePath) + size(`${storePath}-wal`)) / 1024 / 1024);
}

/** Asks `status` every `everyMs` until `stop()` is called; returns every latency. */
function pollStatus(connection: ControlConnection, everyMs: number): { stop: () => Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      samples.push(
        await timed(() => connection.request('status', {}, StatusResultSchema, { timeoutMs: 30_000 })),
      );
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

async function measure(host: HistoryHost, project: string, runs: number): Promise<HistoryRow> {
  const starts: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    starts.push(await host.startDaemon(project));
    if (i < STARTS - 1) await host.stopDaemon(project);
  }
  const connection = await connect(project);
  try {
    const status: number[] = [];
    const list: number[] = [];
    const failed: number[] = [];
    let pid = 0;
    for (let i = 0; i < REQUESTS; i++) {
      status.push(
        await timed(async () => {
          pid = (await connection.request('status', {}, StatusResultSchema, { timeoutMs: 10_000 })).pid;
        }),
      );
      list.push(await timed(() => connection.request('runs.list', { limit: 50 }, RunsListResultSchema)));
      failed.push(
        await timed(() =>
          connection.request('runs.list', { limit: 50, state: 'failed' }, RunsListResultSchema),
        ),
      );
    }
    return {
      runs,
      start_ms: round1(summarize(starts).median),
      status_p99_ms: p99(status),
      list_p99_ms: p99(list),
      failed_list_p99_ms: p99(failed),
      rss_mib: rssMiB(pid),
      store_mib: storeMiB(project),
    };
  } finally {
    connection.close();
  }
}

async function prune(connection: ControlConnection): Promise<PruneReportResult> {
  return connection.request('store.prune', {}, PruneReportSchema, { timeoutMs: 30 * 60_000 });
}

export async function historyBench(host: HistoryHost): Promise<HistoryResults> {
  const project = host.makeProject(charterYml(''));
  const paths = daemonPaths(project);
  const rows: HistoryRow[] = [];
  let seeded = 0;
  for (const size of SIZES) {
    if (size > seeded) {
      process.stderr.write(`history: writing ${size - seeded} runs into the store…\n`);
      seed(paths.storePath, paths.identityPath, seeded, size - seeded);
      seeded = size;
    }
    rows.push(await measure(host, project, size));
    await host.stopDaemon(project);
  }

  // A prune of 10,000 runs out of 100,000, with status asked every 20 ms meanwhile.
  writeFileSync(join(project, 'charter.yml'), charterYml('    max_finished_runs: 90000\n'));
  await host.startDaemon(project);
  let connection = await connect(project);
  const poll = pollStatus(await connect(project), 20);
  const report = await prune(connection);
  const during = await poll.stop();

  // A prune down to max_store_mb.
  connection.close();
  await host.stopDaemon(project);
  const budget = Math.max(8, Math.floor(storeMiB(project) / 2));
  writeFileSync(
    join(project, 'charter.yml'),
    charterYml(`    max_finished_runs: 90000\n    max_store_mb: ${budget}\n`),
  );
  await host.startDaemon(project);
  connection = await connect(project);
  const sizeReport = await prune(connection);

  // Runs flowing while a prune runs every 2 s (the policy keeps the store at its budget).
  const baseline = await flowing(project, connection, false);
  const flow = { ...(await flowing(project, connection, true)), baseline };
  connection.close();
  await host.stopDaemon(project);

  const empty = rows[0] as HistoryRow;
  const big = rows.at(-1) as HistoryRow;
  const within = (value: number, base: number) => value <= base * 1.5;
  const goals = {
    history_start_within_1_5x: within(big.start_ms, empty.start_ms),
    history_status_p99_within_1_5x: within(big.status_p99_ms, empty.status_p99_ms),
    history_list_p99_within_1_5x: within(big.list_p99_ms, empty.list_p99_ms),
    history_failed_list_p99_within_1_5x: within(big.failed_list_p99_ms, empty.failed_list_p99_ms),
    history_rss_flat_15pct:
      big.rss_mib !== null && empty.rss_mib !== null && Math.abs(big.rss_mib / empty.rss_mib - 1) <= 0.15,
    history_store_bounded_by_max_store_mb: sizeReport.bytes_after <= budget * 1024 * 1024,
    history_prune_stall_under_50ms: report.longest_slice_ms <= 50 && Math.max(...during) <= 50,
  };
  return {
    rows,
    prune: { report, status_max_ms: round1(Math.max(...during)), status_p99_ms: p99(during) },
    size_prune: { max_store_mb: budget, report: sizeReport },
    flowing: flow,
    goals,
  };
}

async function flowing(
  project: string,
  connection: ControlConnection,
  pruning: boolean,
): Promise<Omit<HistoryResults['flowing'], 'baseline'>> {
  const dir = join(project, 'workflows', 'quick');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), 'id: quick\nname: quick\n');
  writeFileSync(
    join(dir, 'plan.yml'),
    'steps:\n  - id: talk\n    run: for i in $(seq 20); do echo "line $i"; done\n',
  );
  const total = 1000;
  const started = performance.now();
  const poll = pollStatus(await connect(project), 20);
  let prunes = 0;
  let flowingNow = pruning;
  const pruner = (async () => {
    while (flowingNow) {
      await prune(connection);
      prunes += 1;
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  for (let i = 0; i < total; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, () =>
        connection.request('run.submit', { workflow_id: 'quick', inputs: {} }, z.unknown(), {
          timeoutMs: 60_000,
        }),
      ),
    );
  }
  for (;;) {
    const status = await connection.request('status', {}, StatusResultSchema);
    if (status.runs.queued + status.runs.running === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const seconds = (performance.now() - started) / 1000;
  flowingNow = false;
  await pruner;
  const samples = await poll.stop();
  return {
    runs: total,
    seconds: round1(seconds),
    prunes,
    status_p99_ms: p99(samples),
    status_max_ms: round1(Math.max(...samples)),
  };
}

export function printHistory(results: HistoryResults, verdict: (ok: boolean) => string): void {
  const empty = results.rows[0] as HistoryRow;
  const ratio = (value: number | null, base: number | null) =>
    value === null || base === null || base === 0 ? '' : ` (${(value / base).toFixed(2)}×)`;
  console.log('\n13. Costs as history grows (finished runs in the store)');
  console.log(
    '  runs     start→ready   status p99     runs list p99   --state failed p99   RSS            store',
  );
  for (const row of results.rows) {
    console.log(
      `  ${String(row.runs).padEnd(8)} ${`${row.start_ms} ms${ratio(row.start_ms, empty.start_ms)}`.padEnd(13)} ` +
        `${`${row.status_p99_ms} ms${ratio(row.status_p99_ms, empty.status_p99_ms)}`.padEnd(14)} ` +
        `${`${row.list_p99_ms} ms${ratio(row.list_p99_ms, empty.list_p99_ms)}`.padEnd(15)} ` +
        `${`${row.failed_list_p99_ms} ms${ratio(row.failed_list_p99_ms, empty.failed_list_p99_ms)}`.padEnd(20)} ` +
        `${`${row.rss_mib ?? '?'} MiB${ratio(row.rss_mib, empty.rss_mib)}`.padEnd(14)} ${row.store_mib} MiB`,
    );
  }
  const p = results.prune;
  console.log(
    `  prune of ${p.report.runs} runs (${p.report.events} events): ${p.report.duration_ms} ms, ` +
      `${round1(p.report.bytes_freed / 1024 / 1024)} MiB freed, longest slice ${p.report.longest_slice_ms} ms, ` +
      `status meanwhile p99 ${p.status_p99_ms} ms, max ${p.status_max_ms} ms`,
  );
  const s = results.size_prune;
  console.log(
    `  prune to max_store_mb ${s.max_store_mb}: ${s.report.runs} runs, store ${round1(s.report.bytes_before / 1024 / 1024)} → ` +
      `${round1(s.report.bytes_after / 1024 / 1024)} MiB, longest slice ${s.report.longest_slice_ms} ms`,
  );
  const f = results.flowing;
  console.log(
    `  ${f.runs} runs flowing with a prune every 2 s: ${f.seconds} s, ${f.prunes} prunes, status p99 ${f.status_p99_ms} ms, max ${f.status_max_ms} ms` +
      ` (without pruning: ${f.baseline.seconds} s, status p99 ${f.baseline.status_p99_ms} ms, max ${f.baseline.status_max_ms} ms)`,
  );
  for (const [goal, ok] of Object.entries(results.goals)) console.log(`  ${verdict(ok)} ${goal}`);
}
