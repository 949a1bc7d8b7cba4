/**
 * Starting a detached daemon from the CLI and waiting until it answers on its socket. The daemon
 * itself settles who runs (the project lock); the launcher only watches: its own child either
 * becomes ready, exits because another daemon holds the lock (then that one is awaited), or fails
 * (then the reason comes from the log).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { EXIT_ALREADY_RUNNING, type LaunchOptions } from '../daemon/launch-options.js';
import { prepareStateDirs } from '../daemon/state-dir.js';
import { CharterError, hasCode } from '../errors/charter-error.js';
import type { StatusResult } from '../protocol/control.js';
import { fetchStatus, type ProjectTarget } from './daemon-client.js';

export interface LaunchResult {
  readonly status: StatusResult;
  /** false when another daemon (started before us, or racing us) is the one running. */
  readonly startedByUs: boolean;
}

const POLL_MS = 20;

/**
 * V8 flags of a detached daemon. A 1 MiB young generation (default 16) lets the heap shrink back
 * after a burst: with 10,000 runs parked at gates the daemon settles near 110 MiB RSS instead of
 * staying at 200 MiB, for about 5 % more time in submissions (measured; see bench/README.md).
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=1'];

export async function launchDetached(
  target: ProjectTarget,
  options: Omit<LaunchOptions, 'projectRoot' | 'foreground'>,
  waitTimeoutMs: number,
  warn: (message: string) => void,
): Promise<LaunchResult> {
  prepareStateDirs(target.paths);
  const spawnedAt = Date.now();
  const child = spawnDaemon(target, options);
  let exitCode: number | null | undefined;
  child.once('exit', (code, signal) => {
    exitCode = code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0));
  });
  child.once('error', () => {
    exitCode = 1;
  });

  const deadline = spawnedAt + waitTimeoutMs;
  for (;;) {
    try {
      const status = await fetchStatus(target, warn, { connectTimeoutMs: 1000, requestTimeoutMs: 2000 });
      child.unref();
      return { status, startedByUs: status.pid === child.pid };
    } catch (error) {
      if (!hasCode(error, 'DAEMON_NOT_RUNNING')) throw error;
    }
    if (exitCode !== undefined && exitCode !== EXIT_ALREADY_RUNNING) {
      // A store the daemon refused is reported under its own code: the hint names the next step.
      const refusal = storeRefusal(target, spawnedAt);
      if (refusal !== undefined) {
        throw new CharterError(
          refusal.code,
          `the daemon refused to start: ${refusal.message}\n(log: ${target.paths.logPath})`,
        );
      }
      throw new CharterError(
        'START_FAILED',
        `the daemon exited with code ${exitCode}: ${failureReason(target, spawnedAt)}`,
      );
    }
    if (Date.now() >= deadline) {
      if (exitCode === undefined) child.kill('SIGTERM');
      throw new CharterError(
        'START_FAILED',
        `the daemon did not answer within ${waitTimeoutMs / 1000}s: ${failureReason(target, spawnedAt)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function spawnDaemon(
  target: ProjectTarget,
  options: Omit<LaunchOptions, 'projectRoot' | 'foreground'>,
): ChildProcess {
  const mainScript = fileURLToPath(new URL('../daemon/main.js', import.meta.url));
  if (!existsSync(mainScript)) {
    throw new CharterError(
      'START_FAILED',
      `the daemon entry point ${mainScript} is missing (run npm run build)`,
    );
  }
  // The daemon's own stdout/stderr: only what happens before its logger exists, or a native crash.
  const output = openSync(target.paths.outputPath, 'w', 0o600);
  try {
    const launch: LaunchOptions = { ...options, projectRoot: target.projectRoot, foreground: false };
    return spawn(process.execPath, [...DAEMON_NODE_FLAGS, mainScript, JSON.stringify(launch)], {
      cwd: target.projectRoot,
      detached: true,
      stdio: ['ignore', output, output],
      env: process.env,
    });
  } finally {
    closeSync(output);
  }
}

/** Codes of a store the daemon refuses to run on: `start` fails with the code itself. */
const STORE_REFUSALS = ['STORE_CORRUPT', 'STORE_MISSING', 'STORE_TOO_NEW'] as const;
type StoreRefusal = (typeof STORE_REFUSALS)[number];

/** The store refusal in the daemon's fatal log lines since the spawn, if that is why it exited. */
function storeRefusal(
  target: ProjectTarget,
  since: number,
): { code: StoreRefusal; message: string } | undefined {
  for (const line of tail(target.paths.logPath, 64 * 1024).reverse()) {
    try {
      const entry = JSON.parse(line) as {
        level?: number;
        time?: string;
        code?: unknown;
        msg?: string;
        err?: { message?: string };
      };
      if ((entry.level ?? 0) < 50 || entry.time === undefined || Date.parse(entry.time) < since - 1000)
        continue;
      const code = STORE_REFUSALS.find((refusal) => refusal === entry.code);
      if (code !== undefined) return { code, message: entry.err?.message ?? entry.msg ?? code };
    } catch {
      // a partial line at the start of the tail
    }
  }
  return undefined;
}

/** The daemon's own words for why it failed: its last error log lines since the spawn, and daemon.out. */
export function failureReason(target: ProjectTarget, since: number): string {
  const reasons: string[] = [];
  for (const line of tail(target.paths.logPath, 64 * 1024)) {
    try {
      const entry = JSON.parse(line) as { level?: number; time?: string; msg?: string };
      if ((entry.level ?? 0) >= 50 && entry.time !== undefined && Date.parse(entry.time) >= since - 1000) {
        reasons.push(entry.msg ?? line);
      }
    } catch {
      // a partial line at the start of the tail
    }
  }
  const output = tail(target.paths.outputPath, 4 * 1024)
    .join('\n')
    .trim();
  if (output !== '') reasons.push(output);
  if (reasons.length === 0) return `no reason was logged; see ${target.paths.logPath}`;
  return `${reasons.join('\n')}\n(log: ${target.paths.logPath})`;
}

function tail(path: string, bytes: number): string[] {
  try {
    const text = readFileSync(path, 'utf8');
    return text
      .slice(-bytes)
      .split('\n')
      .filter((line) => line.trim() !== '');
  } catch {
    return [];
  }
}
