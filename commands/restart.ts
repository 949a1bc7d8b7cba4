import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { targetProject } from '../src/cli/daemon-client.js';
import { stopDaemon, stopFlags } from '../src/cli/stop-daemon.js';
import { CharterError } from '../src/errors/charter-error.js';
import { LOG_LEVELS, type LogLevel } from '../src/logging/levels.js';
import { readRuntimeFile } from '../src/project/runtime-file.js';

export interface RestartJson {
  was_running: boolean;
  old_pid: number | null;
  pid: number;
  stopped_in_seconds: number;
  version: string;
}

export default class Restart extends DaemonCommand {
  static override summary = 'Drain and stop the project daemon, then start it again with the same settings.';
  static override description =
    `For use after an upgrade: the new daemon runs the installed version. The flags the daemon was started with (--gateway, --gateway-token-file, --max-runs, --log-level, --inspect) are kept; charter.yml and the environment (CHARTER_GATEWAY_URL, CHARTER_GATEWAY_TOKEN) are read again, from this shell.
The stop is the same as charter-daemon stop: new work is refused, executing steps get up to --timeout to reach a safe point (the documented stop policy), runs waiting at a gate or for input are kept and wait again after the start.
When no daemon runs, just starts one. A daemon running in the foreground (systemd) is restarted by its supervisor instead: systemctl restart UNIT.`;
  static override examples = ['<%= config.bin %> restart', '<%= config.bin %> restart --timeout 60 --json'];
  static override enableJsonFlag = true;
  static override flags = {
    ...stopFlags,
    'wait-timeout': Flags.integer({
      description: 'Seconds to wait for the new daemon to answer.',
      default: 15,
      min: 1,
      max: 600,
      helpValue: 'SECONDS',
    }),
  };

  async run(): Promise<RestartJson | undefined> {
    const { flags } = await this.parse(Restart);
    const target = targetProject(flags['project-path']);
    const launch = readRuntimeFile(target.paths.runtimeFile)?.launch;
    if (launch?.foreground) {
      throw new CharterError(
        'START_FAILED',
        'the daemon runs in the foreground (under a supervisor such as systemd): restart it there (systemctl restart UNIT)',
        {
          hint: 'A foreground daemon belongs to the process that started it; see docs/operations.md, Upgrades.',
        },
      );
    }
    const stopped = await stopDaemon(
      target,
      { timeoutSeconds: flags.timeout, force: flags.force },
      this.warnUser,
    );
    const logLevel = LOG_LEVELS.find((level) => level === launch?.logLevel) as LogLevel | undefined;
    const options = {
      ...(launch?.gatewayUrl === undefined ? {} : { gatewayUrl: launch.gatewayUrl }),
      ...(launch?.gatewayTokenFile === undefined ? {} : { gatewayTokenFile: launch.gatewayTokenFile }),
      ...(launch?.maxRuns === undefined ? {} : { maxRuns: launch.maxRuns }),
      ...(logLevel === undefined ? {} : { logLevel }),
      inspect: launch?.inspect ?? false,
      ...(launch?.inspectPort === undefined ? {} : { inspectPort: launch.inspectPort }),
    };
    const { launchDetached } = await import('../src/cli/launcher.js');
    const launched = await launchDetached(target, options, flags['wait-timeout'] * 1000, this.warnUser);
    const result: RestartJson = {
      was_running: stopped.was_running,
      old_pid: stopped.pid,
      pid: launched.status.pid,
      stopped_in_seconds: stopped.seconds,
      version: launched.status.version,
    };
    if (this.jsonEnabled()) return result;
    this.log(
      stopped.was_running
        ? `charter-daemon restarted: pid ${stopped.pid} stopped in ${stopped.seconds}s, pid ${result.pid} (version ${result.version}) serving`
        : `charter-daemon was not running: started (pid ${result.pid}, version ${result.version})`,
    );
    return undefined;
  }
}
