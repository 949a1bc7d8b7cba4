import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { waitForExit } from '../src/cli/process.js';
import { CharterError } from '../src/errors/charter-error.js';
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
    `The daemon refuses new work, lets in-flight work reach a safe point (up to --timeout), flushes its store and exits.
With --force, a daemon still alive after the timeout (or one that does not answer) is killed with SIGKILL.
Exits 0 when no daemon is running.`;
  static override examples = ['<%= config.bin %> stop', '<%= config.bin %> stop --timeout 5 --force'];
  static override enableJsonFlag = true;
  static override flags = {
    timeout: Flags.integer({
      description: 'Seconds in-flight work may take to reach a safe point.',
      default: 30,
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
    const timeoutMs = flags.timeout * 1000;
    let pid: number;
    try {
      const connection = await connectToDaemon(target, this.warnUser);
      try {
        const result = await connection.request('stop', { timeout_ms: timeoutMs }, StopResultSchema);
        pid = result.pid;
      } finally {
        connection.close();
      }
    } catch (error) {
      if (error instanceof CharterError && error.code === 'DAEMON_NOT_RUNNING') {
        return this.report({ was_running: false, stopped: true, pid: null, forced: false, seconds: 0 });
      }
      // A daemon that does not answer can still be killed when the user asks for it.
      const stuckPid = readRuntimeFile(target.paths.runtimeFile)?.pid;
      if (
        !(flags.force && error instanceof CharterError && error.code === 'DAEMON_NOT_ANSWERING' && stuckPid)
      ) {
        throw error;
      }
      this.warnUser(`${error.message}; killing pid ${stuckPid} (--force)`);
      return this.kill(stuckPid, started);
    }
    if (await waitForExit(pid, timeoutMs + EXIT_GRACE_MS)) {
      return this.report({ was_running: true, stopped: true, pid, forced: false, seconds: elapsed(started) });
    }
    if (!flags.force) {
      throw new CharterError(
        'STOP_TIMEOUT',
        `the daemon (pid ${pid}) is still running ${flags.timeout + EXIT_GRACE_MS / 1000}s after the stop request`,
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
