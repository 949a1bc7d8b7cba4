/**
 * Section 14: the control socket against hostile local clients. `status` latency on an open
 * connection while 8 connections send ~1 MB lines as fast as the daemon reads them, against the
 * same `status` with no flood in the same run; and the daemon's RSS while 24 connections ask for
 * a large log and never read it, against its idle RSS. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod/mini';
import { ControlConnection } from '../src/client/connection.js';
import { StatusResultSchema } from '../src/protocol/control.js';
import { packageVersion } from '../src/version.js';
import { round1, rssMiB, summarize, timeNodeOk } from './measure.js';
import type { BenchHost, Goal } from './runs.js';

const STATUS_SAMPLES = 200;
const WARMUPS = 20;
const FLOODERS = 8;
const FLOOD_LINE_BYTES = 1_000_000;
const SILENT_CLIENTS = 24;
const SETTLE_MS = 20_000;
const GOAL_FLOOD_P95_MS = 100;

export interface ControlSocketResults {
  readonly status_ms: { readonly quiet: Percentiles; readonly flood: Percentiles };
  readonly flood_lines_handled: number;
  readonly rss_mib: {
    readonly idle: number | null;
    readonly silent_clients: number | null;
    readonly after_leaving: number | null;
    readonly settled: number | null;
  };
  readonly dropped_slow_clients: number;
  readonly buffered_bytes_peak: number;
  readonly goals: Record<string, Goal>;
}

interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
}

function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: round1(summarize(sorted).median),
    p95: round1(sorted[Math.ceil(0.95 * sorted.length) - 1] ?? Number.NaN),
    max: round1(sorted.at(-1) ?? Number.NaN),
  };
}

const helloLine = `${JSON.stringify({ id: 0, method: 'hello', params: { protocol: 1, client_version: 'bench' } })}\n`;

function rawClient(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** `status` request → response on the open connection, N times after warm-ups (ms). */
async function timeStatus(connection: ControlConnection, n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < WARMUPS + n; i++) {
    const started = performance.now();
    await connection.request('status', {}, z.unknown(), { timeoutMs: 30_000 });
    if (i >= WARMUPS) samples.push(performance.now() - started);
  }
  return samples;
}

/** Flooders writing ~1 MB lines as fast as the socket takes them; they read (and drop) every answer. */
async function startFlood(socketPath: string): Promise<{ stop: () => void; answers: () => number }> {
  const pad = 'p'.repeat(FLOOD_LINE_BYTES);
  const line = Buffer.from(
    `${JSON.stringify({ id: 'f', method: 'runs.list', params: { limit: 1 }, pad })}\n`,
  );
  let stopped = false;
  let answers = 0;
  const sockets = await Promise.all(
    Array.from({ length: FLOODERS }, async () => {
      const socket = await rawClient(socketPath);
      socket.on('data', (chunk: Buffer) => {
        for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) answers++;
      });
      socket.write(helloLine);
      const pump = () => {
        while (!stopped && !socket.destroyed && socket.write(line)) {
          // until the socket asks for a drain
        }
      };
      socket.on('drain', pump);
      pump();
      return socket;
    }),
  );
  return {
    stop: () => {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
    answers: () => answers,
  };
}

export async function controlSocketBench(host: BenchHost): Promise<ControlSocketResults> {
  const project = host.makeProject('name: bench\n');
  const dir = join(project, 'workflows', 'flood');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), 'id: flood\nname: Flood\n');
  writeFileSync(
    join(dir, 'plan.yml'),
    "steps:\n  - id: flood\n    run: yes 'a line of the flood run, long enough to matter' | head -c 16000000\n",
  );
  try {
    await host.startDaemon(project);
    const statusArgs = [host.cli, 'status', '--json', '--project-path', project];
    const daemonStatus = async () =>
      StatusResultSchema.parse(JSON.parse((await timeNodeOk(statusArgs, host.repoRoot)).stdout));
    const { socket_path: socketPath, pid } = await daemonStatus();
    const connection = await ControlConnection.open({ socketPath, clientVersion: packageVersion });
    try {
      // 14a: status with no flood, then during the flood, same connection.
      const quiet = await timeStatus(connection, STATUS_SAMPLES);
      const flood = await startFlood(socketPath);
      let flooded: number[];
      try {
        await sleep(500);
        flooded = await timeStatus(connection, STATUS_SAMPLES);
      } finally {
        flood.stop();
      }
      const floodAnswers = flood.answers();

      // 14b: RSS idle, with 24 clients that never read a 16 MB log, after they leave.
      const run = await timeNodeOk(
        [host.cli, 'run', 'flood', '--wait', '--json', '--project-path', project],
        host.repoRoot,
      );
      const runId = (JSON.parse(run.stdout) as { run_id: string }).run_id;
      await sleep(SETTLE_MS);
      const idle = rssMiB(pid);
      const silent: Socket[] = [];
      for (let n = 0; n < SILENT_CLIENTS; n++) {
        const socket = await rawClient(socketPath);
        socket.pause();
        silent.push(socket);
        const logs = [1, 2, 3, 4].map(
          (id) => `${JSON.stringify({ id, method: 'run.logs', params: { run_id: runId } })}\n`,
        );
        socket.write(helloLine + logs.join(''));
      }
      let bufferedPeak = 0;
      let withSilent: number | null = null;
      for (let i = 0; i < 20; i++) {
        await sleep(250);
        const control = (await daemonStatus()).control;
        bufferedPeak = Math.max(bufferedPeak, control?.buffered_bytes ?? 0);
        withSilent = Math.max(withSilent ?? 0, rssMiB(pid) ?? 0);
      }
      const dropped = (await daemonStatus()).control?.dropped_slow_clients ?? 0;
      for (const socket of silent) socket.destroy();
      await sleep(3_000);
      const afterLeaving = rssMiB(pid);
      await sleep(SETTLE_MS);
      const settled = rssMiB(pid);

      const quietStats = percentiles(quiet);
      const floodStats = percentiles(flooded);
      return {
        status_ms: { quiet: quietStats, flood: floodStats },
        flood_lines_handled: floodAnswers,
        rss_mib: { idle, silent_clients: withSilent, after_leaving: afterLeaving, settled },
        dropped_slow_clients: dropped,
        buffered_bytes_peak: bufferedPeak,
        goals: {
          status_p95_during_flood_ms: {
            goal: `< ${GOAL_FLOOD_P95_MS}`,
            value: floodStats.p95,
            met: floodStats.p95 < GOAL_FLOOD_P95_MS,
          },
        },
      };
    } finally {
      connection.close();
    }
  } finally {
    await host.stopDaemon(project);
    host.removeProject(project);
  }
}

export function printControlSocket(results: ControlSocketResults, verdict: (met: boolean) => string): void {
  const { quiet, flood } = results.status_ms;
  const mib = (value: number | null): string => (value === null ? 'n/a' : `${value.toFixed(1)} MiB`);
  console.log('\n14. The control socket against hostile clients');
  console.log(
    `  ${'status on an open connection (ms)'.padEnd(44)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'max'.padStart(8)}`,
  );
  const row = (label: string, p: Percentiles) =>
    `  ${label.padEnd(44)}${p.p50.toFixed(1).padStart(8)}${p.p95.toFixed(1).padStart(8)}${p.max.toFixed(1).padStart(8)}`;
  console.log(row(`no flood (N=${quiet.n})`, quiet));
  console.log(
    `${row(`${FLOODERS} x 1 MB lines flooding (N=${flood.n})`, flood)}  goal p95 < ${GOAL_FLOOD_P95_MS}  ${verdict(results.goals.status_p95_during_flood_ms?.met ?? false)}`,
  );
  console.log(`  flood lines answered meanwhile: ${results.flood_lines_handled}`);
  const rss = results.rss_mib;
  console.log(
    `  RSS: idle ${mib(rss.idle)}; ${SILENT_CLIENTS} clients never reading a 16 MB log: ${mib(rss.silent_clients)} ` +
      `(${results.dropped_slow_clients} dropped, at most ${(results.buffered_bytes_peak / 1024 / 1024).toFixed(1)} MiB buffered seen); ` +
      `3 s after they left ${mib(rss.after_leaving)}; ${SETTLE_MS / 1000} s later ${mib(rss.settled)}`,
  );
}
