import { DaemonCommand, formatDuration } from '../src/cli/base-command.js';
import { fetchStatus, targetProject } from '../src/cli/daemon-client.js';
import { hasCode } from '../src/errors/charter-error.js';
import type { StatusResult } from '../src/protocol/control.js';

export type StatusJson =
  | ({ running: true; uptime_seconds: number } & StatusResult)
  | { running: false; project_root: string; reason: string };

export default class Status extends DaemonCommand {
  static override summary = 'Show whether the project daemon runs, and what it is doing.';
  static override description =
    `Prints pid, version, uptime, project root, socket path, gateway link state, run counts by state and store path.
Exits 3 (LSB "not running") when no daemon runs for the project.`;
  static override examples = [
    '<%= config.bin %> status',
    '<%= config.bin %> status --json --project-path ~/work/site',
  ];
  static override enableJsonFlag = true;

  async run(): Promise<StatusJson | undefined> {
    const { flags } = await this.parse(Status);
    const target = targetProject(flags['project-path']);
    let status: StatusResult;
    try {
      status = await fetchStatus(target, this.warnUser);
    } catch (error) {
      if (!hasCode(error, 'DAEMON_NOT_RUNNING')) throw error;
      process.exitCode = 3;
      if (this.jsonEnabled())
        return { running: false, project_root: target.projectRoot, reason: error.message };
      this.log(`charter-daemon is not running for ${target.projectRoot}`);
      this.log('  start it with: charter-daemon start');
      return undefined;
    }
    const uptimeSeconds = Math.max(0, (Date.now() - Date.parse(status.started_at)) / 1000);
    if (this.jsonEnabled())
      return { running: true, uptime_seconds: Math.round(uptimeSeconds * 10) / 10, ...status };
    const runs = Object.entries(status.runs)
      .map(([state, count]) => `${count} ${state}`)
      .join(', ');
    const gateway =
      status.gateway.url === null
        ? `${status.gateway.state} (${status.gateway.detail ?? 'no gateway configured'})`
        : `${status.gateway.state} → ${status.gateway.url}${status.gateway.detail ? ` (${status.gateway.detail})` : ''}`;
    this.log(
      `charter-daemon is ${status.state === 'serving' ? 'running' : status.state} ` +
        `(pid ${status.pid}, version ${status.version}, up ${formatDuration(uptimeSeconds)})`,
    );
    this.log(`  project:   ${status.project_root}`);
    this.log(`  socket:    ${status.socket_path}`);
    this.log(`  store:     ${status.store_path}`);
    this.log(`  log:       ${status.log_path}`);
    this.log(`  gateway:   ${gateway}`);
    this.log(`  runs:      ${runs}`);
    if (status.inspector !== null) this.log(`  inspector: ${status.inspector.url}`);
    return undefined;
  }
}
