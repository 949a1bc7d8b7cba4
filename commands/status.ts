import { DaemonCommand, formatDuration } from '../src/cli/base-command.js';
import { fetchStatus, targetProject } from '../src/cli/daemon-client.js';
import { hasCode } from '../src/errors/charter-error.js';
import type { ControlSocketStatus, LogFileStatus, StatusResult } from '../src/protocol/control.js';

export type StatusJson =
  | ({ running: true; uptime_seconds: number } & StatusResult)
  | { running: false; project_root: string; reason: string };

export default class Status extends DaemonCommand {
  static override summary = 'Show whether the project daemon runs, and what it is doing.';
  static override description =
    `Prints pid, version, uptime, project root, socket path, store path (and, while its writes fail, since when and why: DISK_FULL or STORE_FAILED), log file (with the lines it dropped while it could not be written, and the last error), the control socket's trouble when there was some (new connections refused for lack of file descriptors, clients dropped for not reading their answers), run counts by state, and the gateway link: its state and since when, the last error, the next retry, and the backlog of events the gateway has not acknowledged (with the age of the oldest).
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
    const link = status.gateway;
    const since =
      link.since === null
        ? ''
        : ` since ${formatDuration(Math.max(0, (Date.now() - Date.parse(link.since)) / 1000))} ago`;
    const gateway =
      link.url === null
        ? `${link.state} (${link.detail ?? 'no gateway configured'})`
        : `${link.state} → ${link.url}${since}`;
    const linkDetails: string[] = [];
    if (link.url !== null) {
      if (link.last_error) linkDetails.push(`last error: ${link.last_error}`);
      if (link.next_retry_at) {
        const inSeconds = Math.max(0, (Date.parse(link.next_retry_at) - Date.now()) / 1000);
        linkDetails.push(`next retry in ${formatDuration(inSeconds)}`);
      }
    }
    if (link.url !== null && link.backlog !== undefined) {
      const age =
        link.oldest_unacked_age_seconds === null || link.oldest_unacked_age_seconds === undefined
          ? ''
          : `, oldest ${formatDuration(link.oldest_unacked_age_seconds)} old`;
      linkDetails.push(`backlog: ${link.backlog} unacknowledged event(s)${age}`);
    }
    this.log(
      `charter-daemon is ${status.state === 'serving' ? 'running' : status.state} ` +
        `(pid ${status.pid}, version ${status.version}, up ${formatDuration(uptimeSeconds)})`,
    );
    this.log(`  project:   ${status.project_root}`);
    this.log(`  socket:    ${status.socket_path}`);
    for (const trouble of describeControlTrouble(status.control)) this.log(`             ${trouble}`);
    this.log(`  store:     ${status.store_path}`);
    const fault = status.store_fault;
    if (fault !== undefined && fault !== null) {
      this.log(`             NOT WRITABLE since ${fault.since} (${fault.code}): ${fault.message}`);
    }
    this.log(`  log:       ${status.log_path}`);
    const logTrouble = describeLogTrouble(status.log);
    if (logTrouble !== undefined) this.log(`             ${logTrouble}`);
    this.log(`  gateway:   ${gateway}`);
    for (const detail of linkDetails) this.log(`             ${detail}`);
    this.log(`  runs:      ${runs}`);
    if (status.inspector !== null) this.log(`  inspector: ${status.inspector.url}`);
    if (status.metrics) this.log(`  metrics:   ${status.metrics.url}`);
    return undefined;
  }
}

/** Lines about the control socket's trouble since start; none while it never had any. */
function describeControlTrouble(control: ControlSocketStatus | undefined): string[] {
  if (control === undefined) return [];
  const lines: string[] = [];
  const ago = (at: string | null): string =>
    at === null ? '' : ` (${formatDuration(Math.max(0, (Date.now() - Date.parse(at)) / 1000))} ago)`;
  if (!control.accepting) {
    const retry =
      control.next_accept_retry_at === null
        ? ''
        : `; retry in ${formatDuration(Math.max(0, (Date.parse(control.next_accept_retry_at) - Date.now()) / 1000))}`;
    lines.push(
      `NOT ACCEPTING new connections: out of file descriptors, ${control.accept_errors} refused; last error: ${control.last_accept_error ?? 'unknown'}${retry}`,
    );
  } else if (control.accept_errors > 0) {
    lines.push(
      `${control.accept_errors} connection(s) refused for lack of file descriptors; last error: ${control.last_accept_error ?? 'unknown'}${ago(control.last_accept_error_at)}`,
    );
  }
  if (control.dropped_slow_clients > 0) {
    const cap = Math.round((control.max_buffered_bytes / 1024 / 1024) * 10) / 10;
    lines.push(
      `${control.dropped_slow_clients} client(s) dropped for not reading their answers (CLIENT_TOO_SLOW; at most ${cap} MiB unread for all clients)`,
    );
  }
  return lines;
}

/** A line about log lines lost, or nothing while the log file never failed. */
function describeLogTrouble(log: LogFileStatus | undefined): string | undefined {
  if (log === undefined || (log.dropped_lines === 0 && !log.failing)) return undefined;
  const dropped = `${log.dropped_lines} line(s) dropped`;
  const error = log.last_error === null ? '' : `; last error: ${log.last_error}`;
  const when =
    log.last_error_at === null
      ? ''
      : ` (${formatDuration(Math.max(0, (Date.now() - Date.parse(log.last_error_at)) / 1000))} ago)`;
  return log.failing
    ? `not writable, ${dropped}${error}${when}`
    : `${dropped} while not writable${error}${when}`;
}
