import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { checkRunId, projectSuffix } from '../src/cli/format.js';
import type { RunAck } from '../src/protocol/runs.js';

export default class Cancel extends DaemonCommand {
  static override summary = 'Cancel a run that has not finished (queued, running or waiting).';
  static override description =
    `A queued or waiting run is cancelled at once. A running step's process group gets SIGTERM, then SIGKILL after the grace period: the run is "cancelling" until its processes are gone, then "cancelled".
Prints the run's new state (--json: {"run_id", "state"}). Fails with RUN_FINISHED when the run has already ended.`;
  static override examples = [
    '<%= config.bin %> cancel r01M895FFEVNRBYAD18R06K01NW',
    `<%= config.bin %> cancel r01M895FFEVNRBYAD18R06K01NW --reason 'wrong tag' --json`,
  ];
  static override enableJsonFlag = true;
  static override args = {
    run_id: Args.string({ description: 'The run to cancel.', required: true }),
  };
  static override flags = {
    reason: Flags.string({
      description: 'Why; recorded with the run (default: "cancelled by request"; at most 1,000 characters).',
      helpValue: 'TEXT',
    }),
  };

  async run(): Promise<RunAck | undefined> {
    const { args, flags } = await this.parse(Cancel);
    const runId = checkRunId(args.run_id);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let ack: RunAck;
    try {
      ack = await client.cancelRun({
        run_id: runId,
        ...(flags.reason === undefined ? {} : { reason: flags.reason }),
      });
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return ack;
    if (ack.state === 'cancelling') {
      this.log(`run ${ack.run_id} cancelling: its step's processes are being stopped`);
      this.log(`  check: charter-daemon runs show ${ack.run_id}${projectSuffix(target)}`);
    } else {
      this.log(`run ${ack.run_id} ${ack.state}`);
    }
    return undefined;
  }
}
