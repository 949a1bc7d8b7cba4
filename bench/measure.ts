/** Timing and statistics helpers for the benchmark. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Timed {
  /** Wall time from spawn to process exit, in milliseconds. */
  readonly ms: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Stats {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly min: number;
  readonly max: number;
}

/** Runs `node args…` and measures its wall time. The clock stops at process exit, not when pipes close. */
export function timeNode(args: readonly string[], cwd: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let ms = 0;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('exit', () => {
      ms = performance.now() - started;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ ms, code, stdout, stderr }));
  });
}

/** Like timeNode, but throws with the command's output when it does not exit 0. */
export async function timeNodeOk(args: readonly string[], cwd: string): Promise<Timed> {
  const result = await timeNode(args, cwd);
  if (result.code !== 0) {
    throw new Error(
      `node ${args.join(' ')} exited ${result.code}\n${result.stdout}${result.stderr}`.trimEnd(),
    );
  }
  return result;
}

/** Median, nearest-rank p90, min and max of a non-empty sample. */
export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (index: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, index))] ?? NaN;
  const mid = sorted.length / 2;
  const median = sorted.length % 2 === 0 ? (at(mid - 1) + at(mid)) / 2 : at(Math.floor(mid));
  return {
    n: sorted.length,
    median,
    p90: at(Math.ceil(0.9 * sorted.length) - 1),
    min: at(0),
    max: at(sorted.length - 1),
  };
}

/** Rounds to one decimal, for printing and for the JSON results. */
export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

export function roundStats(stats: Stats): Stats {
  return {
    n: stats.n,
    median: round1(stats.median),
    p90: round1(stats.p90),
    min: round1(stats.min),
    max: round1(stats.max),
  };
}

/** A latency distribution: count, median, nearest-rank p99, max (ms, one decimal). */
export interface Latency {
  readonly n: number;
  readonly median: number;
  readonly p99: number;
  readonly max: number;
}

export function latency(samples: readonly number[]): Latency {
  if (samples.length === 0) return { n: 0, median: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: round1(summarize(sorted).median),
    p99: round1(sorted[Math.ceil(0.99 * sorted.length) - 1] ?? Number.NaN),
    max: round1(sorted.at(-1) ?? Number.NaN),
  };
}

/** Resident memory of a process, in MiB, from /proc (Linux); null when it cannot be read. */
export function rssMiB(pid: number): number | null {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : round1(Number(kb) / 1024);
  } catch {
    return null;
  }
}
