import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { isProcessAlive, waitForExit } from '../src/cli/process.js';
import { CharterError, hasCode, isCharterError } from '../src/errors/charter-error.js';
import { readRuntimeFile } from '../src/project/runtime-file.js';
import { StopResultSchema } from '../src/protocol/control.js';

export interface StopJson {
  was_running: boolean;
  stopped: boolean;
  pid: number | null;
  forced: boolean;
  seconds: number;
}

/** Time the daemon gets after its drain deadline to close the store and exit. */
const EXIT_GRACE_MS = 5000;

export default class Stop extends DaemonCommand {
  static override summary = 'Stop the project daemon gracefully and wait until its process is gone.';
  static override description =
    `The daemon refuses new work, lets in-flight work reach a safe point (up to --timeout, by default daemon.drain_timeout_seconds from charter.yml or 30 s), flushes its store and exits.
A daemon that cannot be asked over the socket (another protocol version) is sent SIGTERM, which drains the same way.
With --force, a daemon still alive after the timeout (or one that does not answer) is killed with SIGKILL.
Exits 0 when no daemon is running.`;
  static override examples = ['<%= config.bin %> stop', '<%= config.bin %> stop --timeout 5 --force'];
  static override enableJsonFlag = true;
  static override flags = {
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

  async run(): Promise<StopJson | undefined> {
    const { flags } = await this.parse(Stop);
    const target = targetProject(flags['project-path']);
    const started = Date.now();
    let pid: number;
    let drainMs: number;
    try {
      const connection = await connectToDaemon(target, this.warnUser);
      try {
        const params = flags.timeout === undefined ? {} : { timeout_ms: flags.timeout * 1000 };
        const result = await connection.request('stop', params, StopResultSchema, { timeoutMs: 5000 });
        pid = result.pid;
        drainMs = result.drain_timeout_ms;
      } finally {
        connection.close();
      }
    } catch (error) {
      if (hasCode(error, 'DAEMON_NOT_RUNNING')) {
        return this.report({ was_running: false, stopped: true, pid: null, forced: false, seconds: 0 });
      }
      const recordedPid = readRuntimeFile(target.paths.runtimeFile)?.pid;
      if (recordedPid === undefined || !isProcessAlive(recordedPid)) throw error;
      if (hasCode(error, 'PROTOCOL_MISMATCH')) {
        // Every daemon version drains on SIGTERM: the signal is the protocol-free way to stop it.
        this.warnUser(`${error.message}; sending SIGTERM to pid ${recordedPid} instead`);
        process.kill(recordedPid, 'SIGTERM');
        pid = recordedPid;
        drainMs = (flags.timeout ?? 30) * 1000;
      } else if (flags.force && isCharterError(error) && error.code === 'DAEMON_NOT_ANSWERING') {
        this.warnUser(`${error.message}; killing pid ${recordedPid} (--force)`);
        return this.kill(recordedPid, started);
      } else {
        throw error;
      }
    }
    if (await waitForExit(pid, drainMs + EXIT_GRACE_MS)) {
      return this.report({ was_running: true, stopped: true, pid, forced: false, seconds: elapsed(started) });
    }
    if (!flags.force) {
      throw new CharterError(
        'STOP_TIMEOUT',
        `the daemon (pid ${pid}) is still running ${(drainMs + EXIT_GRACE_MS) / 1000}s after the stop request`,
      );
    }
    return this.kill(pid, started);
  }

  private async kill(pid: number, started: number): Promise<StopJson | undefined> {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    if (!(await waitForExit(pid, EXIT_GRACE_MS))) {
      throw new CharterError('STOP_TIMEOUT', `pid ${pid} survived SIGKILL for ${EXIT_GRACE_MS / 1000}s`);
    }
    return this.report({ was_running: true, stopped: true, pid, forced: true, seconds: elapsed(started) });
  }

  private report(result: StopJson): StopJson | undefined {
    if (this.jsonEnabled()) return result;
    if (!result.was_running) this.log('charter-daemon is not running: nothing to stop');
    else if (result.forced) this.log(`charter-daemon (pid ${result.pid}) killed after ${result.seconds}s`);
    else this.log(`charter-daemon (pid ${result.pid}) stopped in ${result.seconds}s`);
    return undefined;
  }
}

function elapsed(started: number): number {
  return Math.round((Date.now() - started) / 100) / 10;
}
