/**
 * Section 12 (`npm run bench -- --only monitoring`): the cost of watching the daemon.
 * - A Prometheus scrape with 10,000 runs parked at gates (goal: under 10 ms);
 * - `charter-daemon top` with the same 10,000 runs, in tmux: a key press (`a` on the selected run)
 *   acted on by the daemon (goal: within 100 ms), and the change on screen;
 * - the event path's throughput with metrics on (HTTP endpoint, scraped every second) and off,
 *   interleaved in the same run (goal: within 5 %);
 * - `status` start-up, to confirm watching costs the other commands nothing.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod/mini';
import { ControlConnection } from '../src/client/connection.js';
import { errorMessage } from '../src/errors/error-message.js';
import { type RunCounts, StatusResultSchema } from '../src/protocol/control.js';
import { LogBatchSchema, RunAckSchema } from '../src/protocol/runs.js';
import { packageVersion } from '../src/version.js';
import { type Latency, latency, round1, summarize, timeNodeOk } from './measure.js';

const PARKED = 10_000;
const WINDOW = 32;
const SCRAPES = 200;
const SCRAPE_WARMUPS = 20;
const KEY_PRESSES = 20;
const THROUGHPUT_RUNS = 600;
const THROUGHPUT_ROUNDS = 5;
const STATUS_RUNS = 20;
export const GOAL_SCRAPE_MS = 10;
export const GOAL_KEY_MS = 100;
export const GOAL_SCREEN_MS = 250;
export const GOAL_THROUGHPUT_RATIO = 0.95;

export interface MonitoringHost {
  readonly repoRoot: string;
  readonly cli: string;
  makeProject(charterYml: string): string;
  startDaemon(project: string, extraArgs?: readonly string[]): Promise<number>;
  stopDaemon(project: string): Promise<void>;
  removeProject(project: string): void;
}

type Percentiles = Latency;

export interface MonitoringResults {
  /** Client round trip over loopback (HTTP included). */
  readonly scrape_ms: Percentiles & { readonly bytes: number };
  /** The daemon's own time to build each exposition (charter_metrics_scrape_duration_seconds). */
  readonly scrape_in_daemon_ms: Percentiles;
  readonly metrics_over_socket_ms: Percentiles;
  readonly top:
    | {
        readonly first_screen_ms: number;
        readonly key_to_effect_ms: Percentiles;
        readonly effect_to_screen_ms: Percentiles;
      }
    | string;
  readonly throughput: {
    readonly runs_per_round: number;
    readonly rounds: number;
    readonly off_runs_per_s: number[];
    readonly on_runs_per_s: number[];
    readonly ratio_on_vs_off: number;
    /** The daemon's CPU time (user + system) per run: insensitive to other load on the machine. */
    readonly off_cpu_ms_per_run: number[];
    readonly on_cpu_ms_per_run: number[];
    /** Runs per CPU-second, on / off (medians). */
    readonly cpu_ratio_on_vs_off: number;
  };
  readonly status_ms: { readonly median: number; readonly node_e_median: number; readonly ratio: number };
  readonly goals: Record<string, { goal: string; value: number | null; met: boolean }>;
}

const PARK = { id: 'park', plan: 'steps: [{ id: hold, gate: { prompt: Hold } }]\n' };

function addWorkflow(project: string, workflow: { id: string; plan: string }): void {
  const dir = join(project, 'workflows', workflow.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), `id: ${workflow.id}\nname: ${workflow.id}\n`);
  writeFileSync(join(dir, 'plan.yml'), workflow.plan);
}

async function connect(host: MonitoringHost, project: string) {
  const { stdout } = await timeNodeOk(
    [host.cli, 'status', '--json', '--project-path', project],
    host.repoRoot,
  );
  const status = StatusResultSchema.parse(JSON.parse(stdout));
  const connection = await ControlConnection.open({
    socketPath: status.socket_path,
    clientVersion: packageVersion,
  });
  return { status, connection };
}

async function pool(count: number, task: (index: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, worker));
  return performance.now() - started;
}

async function waitForRuns(connection: ControlConnection, done: (runs: RunCounts) => boolean): Promise<void> {
  const deadline = performance.now() + 300_000;
  for (;;) {
    const { runs } = await connection.request('status', {}, StatusResultSchema);
    if (done(runs)) return;
    if (performance.now() > deadline) throw new Error(`runs did not get there: ${JSON.stringify(runs)}`);
    await sleep(20);
  }
}

/** Parks PARKED runs at a gate; returns their ids in submission order. */
async function park(connection: ControlConnection, count: number): Promise<string[]> {
  const ids: string[] = new Array(count);
  await pool(count, async (i) => {
    const ack = await connection.request('run.submit', { workflow_id: 'park', inputs: {} }, RunAckSchema, {
      timeoutMs: 60_000,
    });
    ids[i] = ack.run_id;
  });
  await waitForRuns(connection, (runs) => runs.waiting >= count);
  return ids;
}

/** Round trips, and the daemon's own build time of each exposition (its self-reported gauge). */
async function scrapes(url: string): Promise<{ samples: number[]; inDaemon: number[]; bytes: number }> {
  const samples: number[] = [];
  const inDaemon: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPE_WARMUPS + SCRAPES; i++) {
    const started = performance.now();
    const response = await fetch(url);
    const text = await response.text();
    if (response.status !== 200) throw new Error(`scrape answered ${response.status}`);
    if (i >= SCRAPE_WARMUPS) samples.push(performance.now() - started);
    // The gauge reports the previous scrape's build time.
    const built = /^charter_metrics_scrape_duration_seconds (\S+)$/m.exec(text)?.[1];
    if (i > SCRAPE_WARMUPS && built !== undefined) inDaemon.push(Number(built) * 1000);
    bytes = text.length;
  }
  return { samples, inDaemon, bytes };
}

const hasTmux = (): boolean => spawnSync('tmux', ['-V']).status === 0;

/** `top` in tmux against the parked runs: first screen, key → effect, effect → screen. */
async function topResponsiveness(
  host: MonitoringHost,
  project: string,
  connection: ControlConnection,
  oldestFirst: readonly string[],
): Promise<MonitoringResults['top']> {
  if (!hasTmux()) return 'skipped: tmux is not installed';
  const server = `cdbench-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', server, ...args], { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-t', 'top');
  /** The run id on the first row of the live list. */
  const firstRow = () => /^(r[0-9A-HJKMNP-TV-Z]{26}) /m.exec(screen())?.[1];
  const started = performance.now();
  tmux(
    '-f',
    '/dev/null',
    'new-session',
    '-d',
    '-s',
    'top',
    '-x',
    '200',
    '-y',
    '50',
    `'${process.execPath}' '${host.cli}' top --project-path '${project}'; sleep 30`,
  );
  try {
    while (!screen().includes(`LIVE RUNS (${oldestFirst.length})`)) {
      if (performance.now() - started > 60_000) throw new Error(`top did not show the runs:\n${screen()}`);
      await sleep(10);
    }
    const firstScreen = performance.now() - started;
    const keyToEffect: number[] = [];
    const effectToScreen: number[] = [];
    for (let i = 0; i < KEY_PRESSES; i++) {
      const runId = oldestFirst[i] as string;
      while (firstRow() !== runId) {
        if (performance.now() - started > 120_000) throw new Error(`expected ${runId} first:\n${screen()}`);
        await sleep(5);
      }
      // The run's own log, followed: the gate decision is pushed the moment it is stored.
      const decided = new Promise<number>((resolve, reject) => {
        connection
          .stream('run.logs', { run_id: runId, follow: true }, LogBatchSchema, (batch) => {
            if (batch.entries.some((entry) => entry.type === 'gate.decided')) {
              resolve(performance.now());
              return 'stop';
            }
            return undefined;
          })
          .catch(reject);
      });
      await sleep(50); // the history is read; now only new entries arrive
      const pressed = performance.now();
      tmux('send-keys', '-t', 'top', 'a');
      const effect = await decided;
      keyToEffect.push(effect - pressed);
      // The run succeeded (its only step was the gate): the next one moves up on screen.
      const next = oldestFirst[i + 1];
      while (firstRow() !== next) await sleep(5);
      effectToScreen.push(performance.now() - effect);
    }
    return {
      first_screen_ms: Math.round(firstScreen),
      key_to_effect_ms: latency(keyToEffect),
      effect_to_screen_ms: latency(effectToScreen),
    };
  } finally {
    spawnSync('tmux', ['-L', server, 'kill-server']);
  }
}

/** User + system CPU time of a process, in ms (Linux: /proc/<pid>/stat, 10 ms ticks). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the command.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

interface Cycle {
  readonly runsPerS: number;
  readonly cpuMsPerRun: number;
}

/** Submit and approve `count` gate runs; runs per second from the first submit to the last success. */
async function gateCycle(connection: ControlConnection, pid: number, count: number): Promise<Cycle> {
  const { runs: before } = await connection.request('status', {}, StatusResultSchema);
  const cpuBefore = cpuMs(pid);
  const started = performance.now();
  const ids = await park(connection, count);
  await pool(count, (i) =>
    connection.request('gate.decide', { run_id: ids[i], decision: 'approve' }, z.unknown(), {
      timeoutMs: 60_000,
    }),
  );
  await waitForRuns(connection, (runs) => runs.succeeded >= before.succeeded + count);
  return {
    runsPerS: Math.round(count / ((performance.now() - started) / 1000)),
    cpuMsPerRun: Math.round(((cpuMs(pid) - cpuBefore) / count) * 1000) / 1000,
  };
}

async function throughput(host: MonitoringHost): Promise<MonitoringResults['throughput']> {
  const charterYml = `name: bench-throughput\ndaemon: { max_queued_runs: ${2 * THROUGHPUT_RUNS} }\n`;
  const off = host.makeProject(charterYml);
  const on = host.makeProject(charterYml);
  addWorkflow(off, PARK);
  addWorkflow(on, PARK);
  await host.startDaemon(off);
  await host.startDaemon(on, ['--metrics', '127.0.0.1:0']);
  const a = await connect(host, off);
  const b = await connect(host, on);
  const url = b.status.metrics?.url;
  if (url === undefined || url === null) throw new Error('the metrics daemon reports no metrics URL');
  // Scraped as Prometheus would, but ten times as often.
  let scraping = true;
  const scraper = (async () => {
    while (scraping) {
      await (await fetch(url)).text();
      await sleep(1000 / 10);
    }
  })();
  const offCycles: Cycle[] = [];
  const onCycles: Cycle[] = [];
  const offCycle = (count: number) => gateCycle(a.connection, a.status.pid, count);
  const onCycle = (count: number) => gateCycle(b.connection, b.status.pid, count);
  try {
    await offCycle(100); // warm-ups
    await onCycle(100);
    for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
      // Alternate who goes first, so machine noise hits both alike.
      if (round % 2 === 0) {
        offCycles.push(await offCycle(THROUGHPUT_RUNS));
        onCycles.push(await onCycle(THROUGHPUT_RUNS));
      } else {
        onCycles.push(await onCycle(THROUGHPUT_RUNS));
        offCycles.push(await offCycle(THROUGHPUT_RUNS));
      }
    }
  } finally {
    scraping = false;
    await scraper;
    a.connection.close();
    b.connection.close();
    await host.stopDaemon(off);
    await host.stopDaemon(on);
    host.removeProject(off);
    host.removeProject(on);
  }
  const median = (values: number[]) => summarize(values).median;
  return {
    runs_per_round: THROUGHPUT_RUNS,
    rounds: THROUGHPUT_ROUNDS,
    off_runs_per_s: offCycles.map((c) => c.runsPerS),
    on_runs_per_s: onCycles.map((c) => c.runsPerS),
    ratio_on_vs_off:
      Math.round(
        (median(onCycles.map((c) => c.runsPerS)) / median(offCycles.map((c) => c.runsPerS))) * 1000,
      ) / 1000,
    off_cpu_ms_per_run: offCycles.map((c) => c.cpuMsPerRun),
    on_cpu_ms_per_run: onCycles.map((c) => c.cpuMsPerRun),
    cpu_ratio_on_vs_off:
      Math.round(
        (median(offCycles.map((c) => c.cpuMsPerRun)) / median(onCycles.map((c) => c.cpuMsPerRun))) * 1000,
      ) / 1000,
  };
}

async function statusStartup(host: MonitoringHost): Promise<MonitoringResults['status_ms']> {
  const project = host.makeProject('name: bench-status\n');
  await host.startDaemon(project);
  const status: number[] = [];
  const nodeE: number[] = [];
  try {
    for (let i = 0; i < STATUS_RUNS + 3; i++) {
      const a = await timeNodeOk([host.cli, 'status', '--project-path', project], host.repoRoot);
      const b = await timeNodeOk(['-e', ''], host.repoRoot);
      if (i >= 3) {
        status.push(a.ms);
        nodeE.push(b.ms);
      }
    }
  } finally {
    await host.stopDaemon(project);
    host.removeProject(project);
  }
  const s = summarize(status).median;
  const n = summarize(nodeE).median;
  return { median: round1(s), node_e_median: round1(n), ratio: Math.round((s / n) * 100) / 100 };
}

export async function monitoringBench(host: MonitoringHost): Promise<MonitoringResults> {
  // Scrape, socket exposition and top against 10,000 parked runs.
  const project = host.makeProject(`name: bench-monitoring\ndaemon: { max_queued_runs: ${2 * PARKED} }\n`);
  addWorkflow(project, PARK);
  await host.startDaemon(project, ['--metrics', '127.0.0.1:0']);
  let scrape: { samples: number[]; inDaemon: number[]; bytes: number };
  const socketSamples: number[] = [];
  let top: MonitoringResults['top'];
  try {
    const { status, connection } = await connect(host, project);
    try {
      const ids = await park(connection, PARKED);
      const url = status.metrics?.url;
      if (url === undefined || url === null) throw new Error('no metrics URL in status');
      scrape = await scrapes(url);
      for (let i = 0; i < SCRAPE_WARMUPS + SCRAPES; i++) {
        const started = performance.now();
        await connection.request('metrics', {}, z.unknown());
        if (i >= SCRAPE_WARMUPS) socketSamples.push(performance.now() - started);
      }
      top = await topResponsiveness(host, project, connection, ids);
    } finally {
      connection.close();
    }
  } catch (error) {
    const log = join(project, '.charter/daemon/daemon.log');
    let tail = '';
    try {
      tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-10).join('\n');
    } catch {
      // no log
    }
    throw new Error(`${errorMessage(error)}\n${tail}`);
  } finally {
    await host.stopDaemon(project);
    host.removeProject(project);
  }

  const through = await throughput(host);
  const statusMs = await statusStartup(host);
  const scrapeMs = { ...latency(scrape.samples), bytes: scrape.bytes };
  const inDaemon = latency(scrape.inDaemon);
  const goals: MonitoringResults['goals'] = {
    scrape_10000_parked_in_daemon_p99_ms: {
      goal: `< ${GOAL_SCRAPE_MS}`,
      value: inDaemon.p99,
      met: inDaemon.p99 < GOAL_SCRAPE_MS,
    },
    scrape_10000_parked_round_trip_p99_ms: {
      goal: `< ${GOAL_SCRAPE_MS}`,
      value: scrapeMs.p99,
      met: scrapeMs.p99 < GOAL_SCRAPE_MS,
    },
    metrics_on_vs_off_throughput_wall: {
      goal: `>= ${GOAL_THROUGHPUT_RATIO}`,
      value: through.ratio_on_vs_off,
      met: through.ratio_on_vs_off >= GOAL_THROUGHPUT_RATIO,
    },
    metrics_on_vs_off_throughput_per_cpu: {
      goal: `>= ${GOAL_THROUGHPUT_RATIO}`,
      value: through.cpu_ratio_on_vs_off,
      met: through.cpu_ratio_on_vs_off >= GOAL_THROUGHPUT_RATIO,
    },
  };
  if (typeof top !== 'string') {
    goals.top_key_to_effect_p99_ms = {
      goal: `<= ${GOAL_KEY_MS}`,
      value: top.key_to_effect_ms.p99,
      met: top.key_to_effect_ms.p99 <= GOAL_KEY_MS,
    };
    goals.top_change_on_screen_p99_ms = {
      goal: `<= ${GOAL_SCREEN_MS}`,
      value: top.effect_to_screen_ms.p99,
      met: top.effect_to_screen_ms.p99 <= GOAL_SCREEN_MS,
    };
  }
  return {
    scrape_ms: scrapeMs,
    scrape_in_daemon_ms: inDaemon,
    metrics_over_socket_ms: latency(socketSamples),
    top,
    throughput: through,
    status_ms: statusMs,
    goals,
  };
}

export function printMonitoring(results: MonitoringResults, verdict: (met: boolean) => string): void {
  const { goals } = results;
  const line = (label: string, value: string, goal?: { goal: string; met: boolean }) =>
    console.log(
      `  ${label.padEnd(44)}${value.padStart(22)}${goal ? `  goal ${goal.goal}  ${verdict(goal.met)}` : ''}`,
    );
  const p = (x: Percentiles) => `${x.median} / ${x.p99} / ${x.max}`;
  console.log(`\n12. Watching the daemon: ${PARKED} runs parked at a gate (median / p99 / max, ms)`);
  line(
    'exposition built in the daemon',
    p(results.scrape_in_daemon_ms),
    goals.scrape_10000_parked_in_daemon_p99_ms,
  );
  line(
    `GET /metrics round trip (${results.scrape_ms.bytes} bytes), N=${SCRAPES}`,
    p(results.scrape_ms),
    goals.scrape_10000_parked_round_trip_p99_ms,
  );
  line('`metrics` over the control socket', p(results.metrics_over_socket_ms));
  if (typeof results.top === 'string') {
    line('top', results.top);
  } else {
    line('top: first screen with all runs', `${results.top.first_screen_ms}`);
    line(
      `top: key \`a\` → gate decided, N=${KEY_PRESSES}`,
      p(results.top.key_to_effect_ms),
      goals.top_key_to_effect_p99_ms,
    );
    line(
      'top: decided → next run first on screen',
      p(results.top.effect_to_screen_ms),
      goals.top_change_on_screen_p99_ms,
    );
  }
  const t = results.throughput;
  line(`gate runs/s, metrics off (${t.rounds} × ${t.runs_per_round})`, t.off_runs_per_s.join(', '));
  line('gate runs/s, metrics on, scraped 10×/s', t.on_runs_per_s.join(', '));
  line(
    'on / off, wall clock (medians)',
    t.ratio_on_vs_off.toFixed(3),
    goals.metrics_on_vs_off_throughput_wall,
  );
  line('daemon CPU ms per run, off', t.off_cpu_ms_per_run.join(', '));
  line('daemon CPU ms per run, on', t.on_cpu_ms_per_run.join(', '));
  line(
    'on / off, runs per CPU-second (medians)',
    t.cpu_ratio_on_vs_off.toFixed(3),
    goals.metrics_on_vs_off_throughput_per_cpu,
  );
  line(
    "status median / node -e '' median",
    `${results.status_ms.median} / ${results.status_ms.node_e_median} (${results.status_ms.ratio}x)`,
  );
}
