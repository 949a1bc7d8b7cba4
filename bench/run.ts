/**
 * `npm run bench`: start-up cost of the charter-daemon CLI and of the daemon itself, runs, and the
 * gateway link, measured in one run against baselines measured in the same run. See bench/README.md.
 * `npm run bench -- --only cli` runs section 1 (CLI wall time) alone; with `--compare-cli PATH` (the
 * `dist/src/cli/run.js` of another build) it times that build's `status` in the same rounds.
 * `npm run bench -- --only reconnect` runs section 10 (the reconnect policy) alone, `--only masking`
 * section 11 (the cost of masking secrets in step output), `--only monitoring` section 12 (metrics,
 * /metrics scrapes, top), `--only history` (or `npm run bench:history`) section 13 (costs as
 * history grows), `--only socket` section 14 (the control socket against hostile clients).
 */

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../src/errors/error-message.js';
import { controlSocketBench, printControlSocket } from './control-socket.js';
import { gatewayBench, killGatewayChildren, printGateway } from './gateway.js';
import { printReconnectPolicy, reconnectPolicyBench } from './gateway-reconnect.js';
import { historyBench, printHistory } from './history.js';
import { maskingBench, printMasking } from './masking.js';
import { round1, roundStats, type Stats, summarize, timeNodeOk } from './measure.js';
import { monitoringBench, printMonitoring } from './monitoring.js';
import { printRuns, runsBench } from './runs.js';

const RUNS = 30;
const WARMUPS = 3;
const START_RUNS = 10;
const GOAL_STATUS_VS_OCLIF = 1.0;
const GOAL_STATUS_VS_NODE = 3.0;
/** `runs list`, `runs show` and `logs` against a minimal oclif command. */
const GOAL_READ_VS_OCLIF = 1.0;
const GOAL_START_MS = 1000;

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'dist/src/cli/run.js');
const baselineDir = join(repoRoot, 'dist/bench/baseline-oclif');
const resultsPath = join(repoRoot, 'dist/bench/results.json');
const cliResultsPath = join(repoRoot, 'dist/bench/results-cli.json');
const reconnectResultsPath = join(repoRoot, 'dist/bench/results-reconnect.json');
const maskingResultsPath = join(repoRoot, 'dist/bench/results-masking.json');
const monitoringResultsPath = join(repoRoot, 'dist/bench/results-monitoring.json');
const historyResultsPath = join(repoRoot, 'dist/bench/results-history.json');
const socketResultsPath = join(repoRoot, 'dist/bench/results-socket.json');

/** The sections that can run alone (`--only NAME`). */
const SECTIONS = ['cli', 'reconnect', 'masking', 'monitoring', 'history', 'socket'] as const;
type Section = (typeof SECTIONS)[number];

/** `--only NAME` (or `--only=NAME`): that section alone; undefined: everything. */
function onlySection(argv: readonly string[]): Section | undefined {
  const at = argv.findIndex((arg) => arg === '--only' || arg.startsWith('--only='));
  if (at === -1) return undefined;
  const arg = argv[at] ?? '';
  const name = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[at + 1];
  const section = SECTIONS.find((s) => s === name);
  if (section === undefined)
    throw new Error(`--only takes one of: ${SECTIONS.join(', ')} (got ${JSON.stringify(name ?? '')})`);
  return section;
}

/** Projects whose daemon may be running, and temp dirs to remove: both handled by cleanup(). */
const daemons = new Set<string>();
const tempDirs = new Set<string>();

/** Copies the baseline CLI next to the build and writes its oclif.manifest.json, as our build does. */
function prepareBaseline(): void {
  rmSync(baselineDir, { recursive: true, force: true });
  cpSync(join(repoRoot, 'bench/baseline-oclif'), baselineDir, { recursive: true });
  const manifest = spawnSync(join(repoRoot, 'node_modules/.bin/oclif'), ['manifest'], {
    cwd: baselineDir,
    encoding: 'utf8',
    env: { ...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true' },
  });
  if (manifest.status !== 0) throw new Error(`oclif manifest failed:\n${manifest.stdout}${manifest.stderr}`);
}

function makeProject(charterYml = 'name: bench\n'): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdb-'));
  tempDirs.add(dir);
  writeFileSync(join(dir, 'charter.yml'), charterYml);
  return dir;
}

function removeProject(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

async function startDaemon(project: string, extraArgs: readonly string[] = []): Promise<number> {
  daemons.add(project);
  return (await timeNodeOk([cli, 'start', '--project-path', project, ...extraArgs], repoRoot)).ms;
}

async function stopDaemon(project: string): Promise<number> {
  const { ms } = await timeNodeOk([cli, 'stop', '--project-path', project], repoRoot);
  daemons.delete(project);
  return ms;
}

/** `stop`, then `stop --force` when the graceful stop fails. */
async function stopOrKill(project: string): Promise<void> {
  try {
    await stopDaemon(project);
  } catch (error) {
    console.error(`graceful stop failed, forcing: ${errorMessage(error)}`);
    spawnSync(process.execPath, [cli, 'stop', '--force', '--timeout', '5', '--project-path', project], {
      stdio: 'ignore',
    });
    daemons.delete(project);
  }
}

/** Resident memory of the daemon, in MiB, from the pid that `status --json` reports (Linux only). */
async function daemonRssMiB(project: string): Promise<number | null> {
  const { stdout } = await timeNodeOk([cli, 'status', '--json', '--project-path', project], repoRoot);
  const status: unknown = JSON.parse(stdout);
  if (typeof status !== 'object' || status === null || !('pid' in status) || typeof status.pid !== 'number')
    throw new Error(`status --json did not report a pid: ${stdout}`);
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${status.pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : round1(Number(kb) / 1024);
  } catch {
    return null;
  }
}

/** Stops every daemon this run started and removes its temp dirs. Synchronous, so signal handlers can use it. */
function cleanup(): void {
  killGatewayChildren();
  for (const project of daemons) {
    spawnSync(process.execPath, [cli, 'stop', '--force', '--timeout', '5', '--project-path', project], {
      stdio: 'ignore',
    });
  }
  daemons.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

interface Command {
  readonly args: readonly string[];
  /** Text stdout must contain, so a command that fails quietly is not timed as fast. */
  readonly expect: string;
}

/** Runs the commands round-robin (rotating who goes first), so machine noise hits all of them equally. */
async function interleaved(commands: readonly Command[]): Promise<Stats[]> {
  const samples = commands.map((): number[] => []);
  for (let round = 0; round < WARMUPS + RUNS; round++) {
    for (let k = 0; k < commands.length; k++) {
      const index = (round + k) % commands.length;
      const command = commands[index];
      if (command === undefined) continue;
      const { ms, stdout } = await timeNodeOk(command.args, repoRoot);
      if (!stdout.includes(command.expect))
        throw new Error(`node ${command.args.join(' ')} printed no "${command.expect}":\n${stdout}`);
      if (round >= WARMUPS) samples[index]?.push(ms);
    }
  }
  return samples.map(summarize);
}

const fmt = (ms: number): string => ms.toFixed(1).padStart(8);
const row = (label: string, s: Stats): string =>
  `  ${label.padEnd(34)}${fmt(s.median)}${fmt(s.p90)}${fmt(s.min)}`;
const verdict = (met: boolean): string => (met ? 'MET' : 'NOT MET');
const ratioRow = (label: string, ratio: number, goal: number): string =>
  `  ${label.padEnd(34)}${ratio.toFixed(2).padStart(8)}  goal <= ${goal.toFixed(2)}  ${verdict(ratio <= goal)}`;

const host = {
  repoRoot,
  cli,
  makeProject,
  startDaemon,
  stopDaemon: stopOrKill,
  removeProject,
};

function writeResults(path: string, results: object): void {
  mkdirSync(join(repoRoot, 'dist/bench'), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults: ${path}`);
}

function machineLine(): string {
  const cpu = cpus();
  return (
    `charter-daemon bench: node ${process.version}, ${process.platform}-${process.arch}, ` +
    `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}`
  );
}

interface CliLatency {
  readonly nodeE: Stats;
  readonly oclif: Stats;
  readonly status: Stats;
  /** The other read commands (`runs list`, `runs show`, `logs`), of one finished run, same rounds. */
  readonly reads: readonly { readonly name: string; readonly stats: Stats }[];
  /** `status` of the build given with --compare-cli, timed in the same rounds. */
  readonly compared: Stats | undefined;
  readonly rssAfterStart: number | null;
  readonly rssAfterStatus: number | null;
}

/**
 * Section 1: `status` and the other read commands against a running daemon (with one finished
 * run to read), between `node -e ''` and a minimal oclif command.
 */
async function cliLatency(compareCli?: string): Promise<CliLatency> {
  const project = makeProject();
  mkdirSync(join(project, 'workflows/hello'), { recursive: true });
  writeFileSync(join(project, 'workflows/hello/manifest.yml'), 'id: hello\nname: Hello\n');
  writeFileSync(
    join(project, 'workflows/hello/plan.yml'),
    'steps:\n  - id: say\n    run: echo hello-bench\n',
  );
  await startDaemon(project);
  const rssAfterStart = await daemonRssMiB(project);
  const { stdout } = await timeNodeOk(
    [cli, 'run', 'hello', '--wait', '--json', '--project-path', project],
    repoRoot,
  );
  const runId = (JSON.parse(stdout) as { run_id: string }).run_id;
  const at = ['--project-path', project];
  const statusOf = (path: string): Command => ({
    args: [path, 'status', ...at],
    expect: 'charter-daemon is running',
  });
  const readCommands: { name: string; command: Command }[] = [
    { name: 'runs list', command: { args: [cli, 'runs', 'list', ...at], expect: runId } },
    { name: 'runs show', command: { args: [cli, 'runs', 'show', runId, ...at], expect: 'succeeded' } },
    { name: 'logs', command: { args: [cli, 'logs', runId, ...at], expect: 'hello-bench' } },
  ];
  const [nodeE, oclif, status, ...rest] = await interleaved([
    { args: ['-e', ''], expect: '' },
    { args: [join(baselineDir, 'bin/run.js'), 'hello'], expect: 'hello' },
    statusOf(cli),
    ...readCommands.map((read) => read.command),
    ...(compareCli === undefined ? [] : [statusOf(compareCli)]),
  ]);
  if (nodeE === undefined || oclif === undefined || status === undefined) throw new Error('missing stats');
  const reads = readCommands.map((read, index) => {
    const stats = rest[index];
    if (stats === undefined) throw new Error(`missing stats for ${read.name}`);
    return { name: read.name, stats };
  });
  const compared = compareCli === undefined ? undefined : rest[readCommands.length];
  const rssAfterStatus = await daemonRssMiB(project);
  await stopDaemon(project);
  return { nodeE, oclif, status, reads, compared, rssAfterStart, rssAfterStatus };
}

function printCliLatency(latency: CliLatency): void {
  const { nodeE, oclif, status, reads, compared } = latency;
  const vsNode = Math.round((status.median / nodeE.median) * 100) / 100;
  const vsOclif = Math.round((status.median / oclif.median) * 100) / 100;
  console.log(
    `\n1. CLI wall time, spawn to exit (ms), N=${RUNS} each after ${WARMUPS} warm-ups, round-robin`,
  );
  console.log(`  ${'command'.padEnd(34)}${'median'.padStart(8)}${'p90'.padStart(8)}${'min'.padStart(8)}`);
  console.log(row("node -e ''", nodeE));
  console.log(row('minimal oclif 4 command', oclif));
  console.log(row('charter-daemon status', status));
  for (const read of reads) console.log(row(`charter-daemon ${read.name}`, read.stats));
  if (compared !== undefined) console.log(row('status of --compare-cli', compared));
  console.log(ratioRow('status / minimal oclif (median)', vsOclif, GOAL_STATUS_VS_OCLIF));
  console.log(ratioRow("status / node -e '' (median)", vsNode, GOAL_STATUS_VS_NODE));
  for (const read of reads) {
    const ratio = Math.round((read.stats.median / oclif.median) * 100) / 100;
    console.log(ratioRow(`${read.name} / minimal oclif (median)`, ratio, GOAL_READ_VS_OCLIF));
  }
  if (compared !== undefined) {
    const vsCompared = Math.round((status.median / compared.median) * 100) / 100;
    console.log(`  ${'status / --compare-cli (median)'.padEnd(34)}${vsCompared.toFixed(2).padStart(8)}`);
  }
}

/** Section 1 alone (`--only cli [--compare-cli PATH]`), to its own results file. */
async function cliOnly(compareCli: string | undefined): Promise<void> {
  prepareBaseline();
  console.log(machineLine());
  const latency = await cliLatency(compareCli);
  printCliLatency(latency);
  writeResults(cliResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    cli_wall_ms: {
      runs: RUNS,
      warmups: WARMUPS,
      node_e: roundStats(latency.nodeE),
      minimal_oclif: roundStats(latency.oclif),
      status: roundStats(latency.status),
      ...Object.fromEntries(
        latency.reads.map((read) => [read.name.replace(' ', '_'), roundStats(read.stats)]),
      ),
      ...(latency.compared === undefined ? {} : { compared_status: roundStats(latency.compared) }),
    },
  });
}

/** `--compare-cli PATH` (or `--compare-cli=PATH`), else undefined. */
function compareCliArg(argv: readonly string[]): string | undefined {
  const at = argv.findIndex((arg) => arg === '--compare-cli' || arg.startsWith('--compare-cli='));
  if (at === -1) return undefined;
  const arg = argv[at] ?? '';
  return arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[at + 1];
}

/** Section 10 alone: its results go to their own file, so a full run's results.json stays. */
async function reconnectOnly(): Promise<void> {
  console.log(machineLine());
  const reconnect = await reconnectPolicyBench(host);
  printReconnectPolicy(reconnect, verdict);
  writeResults(reconnectResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    gateway_reconnect_policy: { restarts: reconnect.restarts, flapping: reconnect.flapping },
    goals: reconnect.goals,
  });
}

/** Section 11 alone, to its own results file. */
async function maskingOnly(): Promise<void> {
  console.log(machineLine());
  const masking = await maskingBench();
  printMasking(masking, verdict);
  writeResults(maskingResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    masking,
    goals: masking.goals,
  });
}

/** Section 12 alone, with its own results file. */
async function monitoringOnly(): Promise<void> {
  console.log(machineLine());
  const monitoring = await monitoringBench(host);
  printMonitoring(monitoring, verdict);
  writeResults(monitoringResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    monitoring,
    goals: monitoring.goals,
  });
}

/** Section 13 alone, with its own results file. */
async function historyOnly(): Promise<void> {
  console.log(machineLine());
  const history = await historyBench(host);
  printHistory(history, verdict);

  // 14. The control socket against hostile clients: a flood of 1 MB lines, clients that never read.
  const socket = await controlSocketBench(host);
  printControlSocket(socket, verdict);
  writeResults(historyResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    history,
  });
}

/** Section 14 alone, with its own results file. */
async function socketOnly(): Promise<void> {
  console.log(machineLine());
  const socket = await controlSocketBench(host);
  printControlSocket(socket, verdict);
  writeResults(socketResultsPath, {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    socket,
    goals: socket.goals,
  });
}

async function main(): Promise<void> {
  prepareBaseline();

  // 1. CLI wall time against a running daemon.
  const latency = await cliLatency();
  const { nodeE, oclif, status, rssAfterStart, rssAfterStatus } = latency;

  // 2. Daemon start-to-ready, each in a fresh project; stop is timed separately.
  const starts: number[] = [];
  const stops: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const fresh = makeProject();
    starts.push(await startDaemon(fresh));
    stops.push(await stopDaemon(fresh));
    removeProject(fresh);
  }
  const start = summarize(starts);
  const stop = summarize(stops);

  const vsNode = Math.round((status.median / nodeE.median) * 100) / 100;
  const vsOclif = Math.round((status.median / oclif.median) * 100) / 100;
  const goals = {
    status_vs_minimal_oclif: {
      goal: `<= ${GOAL_STATUS_VS_OCLIF}`,
      ratio: vsOclif,
      met: vsOclif <= GOAL_STATUS_VS_OCLIF,
    },
    status_vs_node_e: {
      goal: `<= ${GOAL_STATUS_VS_NODE}`,
      ratio: vsNode,
      met: vsNode <= GOAL_STATUS_VS_NODE,
    },
    start_median_ms: {
      goal: `<= ${GOAL_START_MS}`,
      value: round1(start.median),
      met: start.median <= GOAL_START_MS,
    },
  };

  const cpu = cpus();
  console.log(machineLine());
  printCliLatency(latency);
  console.log(`\n2. Daemon lifecycle, wall time (ms), N=${START_RUNS} fresh projects`);
  console.log(`  ${'command'.padEnd(34)}${'median'.padStart(8)}${'p90'.padStart(8)}${'min'.padStart(8)}`);
  console.log(
    `${row('start (until it answers)', start)}  goal median <= ${GOAL_START_MS}  ${verdict(goals.start_median_ms.met)}`,
  );
  console.log(`${row('stop (until it exits)', stop)}  informational`);
  const mib = (value: number | null): string => (value === null ? 'n/a' : `${value.toFixed(1)} MiB`);
  console.log(
    `\n3. Daemon RSS: ${mib(rssAfterStart)} after start, ${mib(rssAfterStatus)} after ${WARMUPS + RUNS} status calls`,
  );

  // 4–5. Runs: parked at a gate, and trivial runs through the concurrency limit.
  const runs = await runsBench(host);
  printRuns(runs, verdict);

  // 6–9. The gateway link: shipping rate, reconnect, latency, fairness.
  const gateway = await gatewayBench(host);
  printGateway(gateway, verdict);

  // 10. The reconnect policy: rolling gateway restarts, and a flapping gateway.
  const reconnect = await reconnectPolicyBench(host);
  printReconnectPolicy(reconnect, verdict);

  // 11. Masking secrets in step output.
  const masking = await maskingBench();
  printMasking(masking, verdict);

  // 12. Watching the daemon: scrapes, top, metrics on vs off.
  const monitoring = await monitoringBench(host);
  printMonitoring(monitoring, verdict);

  // 13. Costs as history grows: 0, 10,000 and 100,000 finished runs; pruning.
  const history = await historyBench(host);
  printHistory(history, verdict);

  // 14. The control socket against hostile clients: a flood of 1 MB lines, clients that never read.
  const socket = await controlSocketBench(host);
  printControlSocket(socket, verdict);

  const results = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpu.length,
    cli_wall_ms: {
      runs: RUNS,
      warmups: WARMUPS,
      node_e: roundStats(nodeE),
      minimal_oclif: roundStats(oclif),
      status: roundStats(status),
      ...Object.fromEntries(
        latency.reads.map((read) => [read.name.replace(' ', '_'), roundStats(read.stats)]),
      ),
      ratio_status_vs_node_e: vsNode,
      ratio_status_vs_minimal_oclif: vsOclif,
    },
    daemon_wall_ms: { runs: START_RUNS, start: roundStats(start), stop: roundStats(stop) },
    daemon_rss_mib: { after_start: rssAfterStart, after_status_calls: rssAfterStatus },
    runs: { parked: runs.parked, trivial: runs.trivial },
    gateway: {
      hb_ms: gateway.hb_ms,
      credit: gateway.credit,
      shipping: gateway.shipping,
      reconnect: gateway.reconnect,
      latency: gateway.latency,
      fairness: gateway.fairness,
      integrity: gateway.integrity,
    },
    gateway_reconnect_policy: { restarts: reconnect.restarts, flapping: reconnect.flapping },
    masking,
    monitoring,
    history: {
      rows: history.rows,
      prune: history.prune,
      size_prune: history.size_prune,
      flowing: history.flowing,
    },
    socket,
    goals: {
      ...goals,
      ...runs.goals,
      ...gateway.goals,
      ...reconnect.goals,
      ...masking.goals,
      ...monitoring.goals,
      ...history.goals,
      ...socket.goals,
    },
  };
  writeResults(resultsPath, results);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

try {
  const only = onlySection(process.argv.slice(2));
  if (only === 'cli') await cliOnly(compareCliArg(process.argv.slice(2)));
  else if (only === 'reconnect') await reconnectOnly();
  else if (only === 'masking') await maskingOnly();
  else if (only === 'monitoring') await monitoringOnly();
  else if (only === 'history') await historyOnly();
  else if (only === 'socket') await socketOnly();
  else await main();
} catch (error) {
  console.error(errorMessage(error));
  process.exitCode = 1;
} finally {
  cleanup();
}
