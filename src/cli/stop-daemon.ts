/**
 * Stopping the project daemon and waiting until its process is gone: over the socket (it drains),
 * by SIGTERM when it speaks another protocol version, and with `force` by SIGKILL when it does
 * not stop in time or does not answer. Shared by `stop` and `restart`.
 */

import * as Flags from '@oclif/core/flags';
import { CharterError, hasCode, isCharterError } from '../errors/charter-error.js';
import { readRuntimeFile } from '../project/runtime-file.js';
import { connectToDaemon, type ProjectTarget } from './daemon-client.js';
import { isProcessAlive, waitForExit } from './process.js';

/** The flags of a stop, shared by `stop` and `restart`. */
export const stopFlags = {
  timeout: Flags.integer({
    description:
      'Seconds in-flight work may take to reach a safe point (default: the daemon’s drain timeout).',
    min: 1,
    max: 86_400,
    helpValue: 'SECONDS',
  }),
  force: Flags.boolean({
    description: 'Kill the daemon (SIGKILL) if it has not exited after the timeout.',
  }),
};

export interface StopOutcome {
  was_running: boolean;
  stopped: boolean;
  pid: number | null;
  forced: boolean;
  seconds: number;
}

export interface StopOptions {
  /** Seconds in-flight work may take; default the daemon's drain timeout. */
  readonly timeoutSeconds?: number | undefined;
  readonly force?: boolean;
}

/** Time the daemon gets after its drain deadline to close the store and exit. */
const EXIT_GRACE_MS = 5000;

export async function stopDaemon(
  target: ProjectTarget,
  options: StopOptions,
  warn: (message: string) => void,
): Promise<StopOutcome> {
  const started = Date.now();
  let pid: number;
  let drainMs: number;
  try {
    const client = await connectToDaemon(target, warn, { requestTimeoutMs: 5000 });
    try {
      const params =
        options.timeoutSeconds === undefined ? {} : { timeout_ms: options.timeoutSeconds * 1000 };
      const result = await client.stop(params);
      pid = result.pid;
      drainMs = result.drain_timeout_ms;
    } finally {
      client.close();
    }
  } catch (error) {
    if (hasCode(error, 'DAEMON_NOT_RUNNING')) {
      return { was_running: false, stopped: true, pid: null, forced: false, seconds: 0 };
    }
    const recordedPid = readRuntimeFile(target.paths.runtimeFile)?.pid;
    if (recordedPid === undefined || !isProcessAlive(recordedPid)) throw error;
    if (hasCode(error, 'PROTOCOL_MISMATCH')) {
      // Every daemon version drains on SIGTERM: the signal is the protocol-free way to stop it.
      warn(`${error.message}; sending SIGTERM to pid ${recordedPid} instead`);
      process.kill(recordedPid, 'SIGTERM');
      pid = recordedPid;
      drainMs = (options.timeoutSeconds ?? 30) * 1000;
    } else if (options.force && isCharterError(error) && error.code === 'DAEMON_NOT_ANSWERING') {
      warn(`${error.message}; killing pid ${recordedPid} (--force)`);
      return kill(recordedPid, started);
    } else {
      throw error;
    }
  }
  if (await waitForExit(pid, drainMs + EXIT_GRACE_MS)) {
    return { was_running: true, stopped: true, pid, forced: false, seconds: elapsed(started) };
  }
  if (!options.force) {
    throw new CharterError(
      'STOP_TIMEOUT',
      `the daemon (pid ${pid}) is still running ${(drainMs + EXIT_GRACE_MS) / 1000}s after the stop request`,
    );
  }
  return kill(pid, started);
}

async function kill(pid: number, started: number): Promise<StopOutcome> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
  if (!(await waitForExit(pid, EXIT_GRACE_MS))) {
    throw new CharterError('STOP_TIMEOUT', `pid ${pid} survived SIGKILL for ${EXIT_GRACE_MS / 1000}s`);
  }
  return { was_running: true, stopped: true, pid, forced: true, seconds: elapsed(started) };
}

function elapsed(started: number): number {
  return Math.round((Date.now() - started) / 100) / 10;
}
