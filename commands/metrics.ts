import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';

export default class Metrics extends DaemonCommand {
  static override summary = "Print the daemon's Prometheus metrics, read over the control socket.";
  static override description =
    `The same text GET /metrics serves (Prometheus text exposition format 0.0.4), but through the daemon's socket: no port needs to be open. Works whether or not the daemon was started with --metrics.
The families are listed in docs/operations.md ("Monitoring").`;
  static override examples = [
    '<%= config.bin %> metrics',
    "<%= config.bin %> metrics | grep '^charter_runs'",
  ];

  async run(): Promise<void> {
    const { flags } = await this.parse(Metrics);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    try {
      const { text } = await client.metrics();
      process.stdout.write(text);
    } finally {
      client.close();
    }
  }
}
