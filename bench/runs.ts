/**
 * The runs benchmarks of the "Runs" issue: 10,000 runs parked at a gate (submission rate, daemon
 * RSS, control latency with that many runs) and 200 trivial runs through the concurrency limit
 * against the same processes spawned straight from Node. See bench/README.md.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod/mini';
import { ControlConnection } from '../src/client/connection.js';
import { errorMessage } from '../src/errors/error-message.js';
import { type RunCounts, StatusResultSchema } from '../src/protocol/control.js';
import { packageVersion } from '../src/version.js';
import {
  type Latency,
  latency,
  round1,
  roundStats,
  rssMiB,
  type Stats,
  summarize,
  timeNode,
  timeNodeOk,
} from './measure.js';

const PARKED = 10_000;
const TRIVIAL = 200;
const MAX_RUNS = 4;
/** Requests kept in flight on one control connection: the daemon refuses more than 32. */
const WINDOW = 32;
const LATENCY_RUNS = 200;
const LATENCY_WARMUPS = 20;
const CLI_RUNS = 10;
const CLI_WARMUPS = 2;
const GOAL_RSS_MIB = 160;
/** How long after the last request the steady-state RSS is read. */
const SETTLE_MS = 20_000;
const GOAL_LATENCY_P99_MS = 50;

/** What bench/run.ts lends: its CLI path and its project/daemon bookkeeping (cleaned up on any exit). */
export interface BenchHost {
  readonly repoRoot: string;
  readonly cli: string;
  makeProject(charterYml: string): string;
  startDaemon(project: string): Promise<number>;
  /** `stop`, then `stop --force` if that fails. */
  stopDaemon(project: string): Promise<void>;
  removeProject(project: string): void;
}

export type { Latency } from './measure.js';

export interface Goal {
  readonly goal: string;
  readonly value: number | null;
  readonly met: boolean;
}

export interface RunsResults {
  readonly parked: {
    readonly runs: number;
    readonly submit_ms: number;
    readonly submissions_per_s: number;
    readonly first_1000_per_s: number;
    readonly last_1000_per_s: number;
    readonly all_waiting_ms: number;
    readonly rss_idle_mib: number | null;
    readonly rss_parked_mib: number | null;
    /** RSS once the burst is over (15 s after all runs were parked): the steady state. */
    readonly rss_settled_mib: number | null;
    readonly rss_per_parked_run_kib: number | null;
    readonly latency_ms: { readonly runs_list_50: Latency; readonly status: Latency };
    /** Wall time of `runs list --limit 50 --json`, or why it was skipped. */
    readonly cli_runs_list_ms: Stats | string;
    readonly stop: StopTiming;
  };
  readonly trivial: {
    readonly runs: number;
    readonly max_runs: number;
    readonly daemon_ms: number;
    readonly daemon_runs_per_s: number;
    readonly baseline_ms: number;
    readonly baseline_runs_per_s: number;
    readonly ratio_daemon_vs_baseline: number;
    readonly overhead_ms_per_run: number;
  };
  readonly goals: Record<string, Goal>;
}

export interface StopTiming {
  /** From spawning `stop` until the daemon's process is gone. */
  readonly until_exit_ms: number;
  readonly cli_exit_code: number | null;
  /** The first line of the CLI's error, when `stop` failed. */
  readonly cli_error: string | null;
}

interface Daemon {
  readonly project: string;
  readonly pid: number;
  readonly connection: ControlConnection;
}

/** Runs `task(0 … count-1)` with at most `width` at once; resolves with the elapsed ms. */
async function pool(
  count: number,
  width: number,
  task: (index: number) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker));
  return performance.now() - started;
}

function submit(connection: ControlConnection, workflowId: string): Promise<unknown> {
  return connection.request('run.submit', { workflow_id: workflowId, inputs: {} }, z.unknown(), {
    timeoutMs: 60_000,
  });
}

/** Polls `status` on the open connection until `done(runs)`; throws on a failed run or after `timeoutMs`. */
async function waitForRuns(
  connection: ControlConnection,
  done: (runs: RunCounts) => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { runs } = await connection.request('status', {}, StatusResultSchema);
    if (done(runs)) return;
    if (runs.failed + runs.cancelled > 0 || performance.now() > deadline)
      throw new Error(`runs did not get there: ${JSON.stringify(runs)}`);
    await sleep(20);
  }
}

/** Times each request on the already-open connection, round-robin, after warm-ups. */
async function latencies(requests: readonly (() => Promise<unknown>)[]): Promise<Latency[]> {
  const samples = requests.map((): number[] => []);
  for (let round = 0; round < LATENCY_WARMUPS + LATENCY_RUNS; round++) {
    for (const [index, request] of requests.entries()) {
      const started = performance.now();
      await request();
      if (round >= LATENCY_WARMUPS) samples[index]?.push(performance.now() - started);
    }
  }
  return samples.map(latency);
}

/** Wall time of the CLI's `runs list`, when that command has been built. */
async function cliRunsList(host: BenchHost, project: string): Promise<Stats | string> {
  if (!existsSync(join(host.repoRoot, 'dist/commands/runs/list.js')))
    return 'skipped: dist/commands/runs/list.js not built';
  const args = [host.cli, 'runs', 'list', '--limit', '50', '--json', '--project-path', project];
  const samples: number[] = [];
  for (let i = 0; i < CLI_WARMUPS + CLI_RUNS; i++) {
    const { ms } = await timeNodeOk(args, host.repoRoot);
    if (i >= CLI_WARMUPS) samples.push(ms);
  }
  return roundStats(summarize(samples));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `stop`, then waits (up to 2 minutes) for the daemon to exit even when `stop` gave up. */
async function timedStop(host: BenchHost, project: string, pid: number): Promise<StopTiming> {
  const started = performance.now();
  const { code, stderr } = await timeNode([host.cli, 'stop', '--project-path', project], host.repoRoot);
  while (isAlive(pid) && performance.now() - started < 120_000) await sleep(50);
  return {
    until_exit_ms: Math.round(performance.now() - started),
    cli_exit_code: code,
    cli_error: code === 0 ? null : (stderr.split('\n').find((line) => line.trim() !== '') ?? ''),
  };
}

/** A temp project with one workflow and a running daemon, stopped and removed afterwards. */
async function withDaemon<T>(
  host: BenchHost,
  charterYml: string,
  workflow: { id: string; name: string; plan: string },
  body: (daemon: Daemon) => Promise<T>,
): Promise<T> {
  const project = host.makeProject(charterYml);
  const dir = join(project, 'workflows', workflow.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), `id: ${workflow.id}\nname: ${workflow.name}\n`);
  writeFileSync(join(dir, 'plan.yml'), workflow.plan);
  try {
    await host.startDaemon(project);
    const args = [host.cli, 'status', '--json', '--project-path', project];
    const status = StatusResultSchema.parse(JSON.parse((await timeNodeOk(args, host.repoRoot)).stdout));
    const connection = await ControlConnection.open({
      socketPath: status.socket_path,
      clientVersion: packageVersion,
    });
    try {
      return await body({ project, pid: status.pid, connection });
    } catch (error) {
      const log = join(project, '.charter/daemon/daemon.log');
      const tail = existsSync(log)
        ? readFileSync(log, 'utf8').trimEnd().split('\n').slice(-20).join('\n')
        : '';
      throw new Error(`${errorMessage(error)}\nlast lines of ${log}:\n${tail}`);
    } finally {
      connection.close();
    }
  } finally {
    await host.stopDaemon(project);
    host.removeProject(project);
  }
}

function parkedRuns(host: BenchHost): Promise<RunsResults['parked']> {
  const workflow = { id: 'park', name: 'Park', plan: 'steps: [{ id: hold, gate: { prompt: Hold } }]\n' };
  const charterYml = `name: bench-parked\ndaemon: { max_queued_runs: ${2 * PARKED} }\n`;
  return withDaemon(host, charterYml, workflow, async ({ project, pid, connection }) => {
    const rssIdle = rssMiB(pid);
    const started = performance.now();
    const acked: number[] = [];
    const submitMs = await pool(PARKED, WINDOW, async () => {
      await submit(connection, 'park');
      acked.push(performance.now());
    });
    const rate = (from: number, to: number): number =>
      Math.round((to - from) / (((acked[to - 1] ?? NaN) - (acked[from - 1] ?? started)) / 1000));
    await waitForRuns(connection, (runs) => runs.waiting === PARKED, 300_000);
    const allWaitingMs = performance.now() - started;
    const rssParked = rssMiB(pid);
    const [list, status] = await latencies([
      () => connection.request('runs.list', { limit: 50 }, z.unknown()),
      () => connection.request('status', {}, z.unknown()),
    ]);
    if (list === undefined || status === undefined) throw new Error('missing latencies');
    const cliList = await cliRunsList(host, project);
    // Parked runs are a steady state: V8's memory reducer gives back the burst's garbage once
    // the daemon has been idle for a while (measured here: after 10-15 s without a request).
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const rssSettled = rssMiB(pid);
    connection.close();
    const stop = await timedStop(host, project, pid);
    return {
      runs: PARKED,
      submit_ms: Math.round(submitMs),
      submissions_per_s: Math.round(PARKED / (submitMs / 1000)),
      first_1000_per_s: rate(0, 1000),
      last_1000_per_s: rate(PARKED - 1000, PARKED),
      all_waiting_ms: Math.round(allWaitingMs),
      rss_idle_mib: rssIdle,
      rss_parked_mib: rssParked,
      rss_settled_mib: rssSettled,
      rss_per_parked_run_kib:
        rssIdle === null || rssSettled === null ? null : round1(((rssSettled - rssIdle) * 1024) / PARKED),
      latency_ms: { runs_list_50: list, status },
      cli_runs_list_ms: cliList,
      stop,
    };
  });
}

/** `/bin/sh -c true` in its own process group with piped output, as the daemon starts a step. */
function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'true'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`sh -c true exited ${code}`))));
  });
}

async function trivialRuns(host: BenchHost): Promise<RunsResults['trivial']> {
  await pool(20, MAX_RUNS, spawnTrue); // warm-up
  const baselineMs = await pool(TRIVIAL, MAX_RUNS, spawnTrue);
  const workflow = { id: 'trivial', name: 'Trivial', plan: 'steps: [{ id: noop, run: "true" }]\n' };
  const charterYml = `name: bench-trivial\ndaemon: { max_runs: ${MAX_RUNS} }\n`;
  const daemonMs = await withDaemon(host, charterYml, workflow, async ({ connection }) => {
    const started = performance.now();
    await pool(TRIVIAL, WINDOW, () => submit(connection, 'trivial'));
    await waitForRuns(connection, (runs) => runs.succeeded === TRIVIAL, 120_000);
    return performance.now() - started;
  });
  return {
    runs: TRIVIAL,
    max_runs: MAX_RUNS,
    daemon_ms: Math.round(daemonMs),
    daemon_runs_per_s: round1(TRIVIAL / (daemonMs / 1000)),
    baseline_ms: Math.round(baselineMs),
    baseline_runs_per_s: round1(TRIVIAL / (baselineMs / 1000)),
    ratio_daemon_vs_baseline: Math.round((daemonMs / baselineMs) * 100) / 100,
    overhead_ms_per_run: round1((daemonMs - baselineMs) / TRIVIAL),
  };
}

export async function runsBench(host: BenchHost): Promise<RunsResults> {
  const parked = await parkedRuns(host);
  const trivial = await trivialRuns(host);
  const below = (value: number | null, goal: number, unit: string): Goal => ({
    goal: `< ${goal} ${unit}`,
    value,
    met: value !== null && value < goal,
  });
  const { runs_list_50: list, status } = parked.latency_ms;
  return {
    parked,
    trivial,
    goals: {
      parked_rss_mib: below(parked.rss_settled_mib, GOAL_RSS_MIB, 'MiB'),
      parked_runs_list_p99_ms: below(list.p99, GOAL_LATENCY_P99_MS, 'ms'),
      parked_status_p99_ms: below(status.p99, GOAL_LATENCY_P99_MS, 'ms'),
    },
  };
}

export function printRuns(results: RunsResults, verdict: (met: boolean) => string): void {
  const { parked, trivial, goals } = results;
  const mib = (value: number | null): string => (value === null ? 'n/a' : `${value.toFixed(1)} MiB`);
  const check = (goal: Goal | undefined): string => (goal ? `goal ${goal.goal}  ${verdict(goal.met)}` : '');
  console.log(
    `\n4. ${parked.runs} runs parked at a gate, submitted over one connection (${WINDOW} in flight)`,
  );
  const perS = (label: string, value: number): void =>
    console.log(`  ${label.padEnd(34)}${String(value).padStart(8)}`);
  perS('submissions/s, all', parked.submissions_per_s);
  perS('submissions/s, first 1000', parked.first_1000_per_s);
  perS('submissions/s, last 1000', parked.last_1000_per_s);
  console.log(`  ${'until all waiting (ms)'.padEnd(34)}${String(parked.all_waiting_ms).padStart(8)}`);
  console.log(`  ${'daemon RSS idle'.padEnd(34)}${mib(parked.rss_idle_mib).padStart(10)}`);
  console.log(`  ${'daemon RSS right after parking'.padEnd(34)}${mib(parked.rss_parked_mib).padStart(10)}`);
  console.log(
    `  ${`RSS parked, ${SETTLE_MS / 1000} s idle`.padEnd(34)}${mib(parked.rss_settled_mib).padStart(10)}  ${check(goals.parked_rss_mib)}`,
  );
  const perRun = parked.rss_per_parked_run_kib;
  console.log(
    `  ${'RSS per parked run'.padEnd(34)}${(perRun === null ? 'n/a' : `${perRun} KiB`).padStart(10)}`,
  );
  console.log(
    `  latency on an open connection (ms), N=${LATENCY_RUNS} each after ${LATENCY_WARMUPS} warm-ups, round-robin`,
  );
  console.log(`  ${'request'.padEnd(34)}${'median'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}`);
  const row = (label: string, l: Latency, goal: Goal | undefined): string =>
    `  ${label.padEnd(34)}${l.median.toFixed(1).padStart(8)}${l.p99.toFixed(1).padStart(8)}${l.max.toFixed(1).padStart(8)}  ${check(goal)}`;
  console.log(row('runs.list {limit: 50}', parked.latency_ms.runs_list_50, goals.parked_runs_list_p99_ms));
  console.log(row('status', parked.latency_ms.status, goals.parked_status_p99_ms));
  const cli = parked.cli_runs_list_ms;
  console.log(
    typeof cli === 'string'
      ? `  CLI runs list --limit 50 --json: ${cli}`
      : `  CLI runs list --limit 50 --json, wall ms, N=${cli.n}: median ${cli.median}, p90 ${cli.p90}, min ${cli.min}`,
  );
  const stop = parked.stop;
  console.log(
    `  stop with ${parked.runs} parked runs: daemon gone after ${stop.until_exit_ms} ms; CLI stop exited ${stop.cli_exit_code}` +
      (stop.cli_error === null ? '' : ` (${stop.cli_error})`),
  );
  console.log(
    `\n5. ${trivial.runs} runs of \`run: "true"\` through max_runs ${trivial.max_runs}, submitted at once`,
  );
  console.log(`  ${''.padEnd(34)}${'ms'.padStart(8)}${'runs/s'.padStart(8)}`);
  console.log(
    `  ${'daemon (submit → all succeeded)'.padEnd(34)}${String(trivial.daemon_ms).padStart(8)}${trivial.daemon_runs_per_s.toFixed(1).padStart(8)}`,
  );
  console.log(
    `  ${`baseline: sh -c true, ${trivial.max_runs} at once`.padEnd(34)}${String(trivial.baseline_ms).padStart(8)}${trivial.baseline_runs_per_s.toFixed(1).padStart(8)}`,
  );
  console.log(
    `  daemon / baseline ${trivial.ratio_daemon_vs_baseline.toFixed(2)}, overhead ${trivial.overhead_ms_per_run} ms per run  informational`,
  );
}
