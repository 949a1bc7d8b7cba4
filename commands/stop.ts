import { DaemonCommand } from '../src/cli/base-command.js';
import { targetProject } from '../src/cli/daemon-client.js';
import { type StopOutcome, stopDaemon, stopFlags } from '../src/cli/stop-daemon.js';

export type StopJson = StopOutcome;

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
    ...stopFlags,
  };

  async run(): Promise<StopJson | undefined> {
    const { flags } = await this.parse(Stop);
    const target = targetProject(flags['project-path']);
    return this.report(
      await stopDaemon(target, { timeoutSeconds: flags.timeout, force: flags.force }, this.warnUser),
    );
  }

  private report(result: StopJson): StopJson | undefined {
    if (this.jsonEnabled()) return result;
    if (!result.was_running) this.log('charter-daemon is not running: nothing to stop');
    else if (result.forced) this.log(`charter-daemon (pid ${result.pid}) killed after ${result.seconds}s`);
    else this.log(`charter-daemon (pid ${result.pid}) stopped in ${result.seconds}s`);
    return undefined;
  }
}
