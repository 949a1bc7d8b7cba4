import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { checkRunId, projectSuffix } from '../src/cli/format.js';
import { CharterError } from '../src/errors/charter-error.js';
import type { RunAck } from '../src/protocol/runs.js';

export default class Resume extends DaemonCommand {
  static override summary = 'Decide the gate a run waits at: --approve to go on, --deny to fail the run.';
  static override description =
    `Exactly one of --approve and --deny. Approving lets the run continue with its next step (it is queued for a slot); denying ends it as failed with reason gate_denied. --comment is recorded with the decision.
Prints the run's new state (--json: {"run_id", "state"}). Fails with RUN_NOT_WAITING when the run does not wait at a gate (see \`charter-daemon runs show RUN_ID\`), RUN_FINISHED when it has ended.`;
  static override examples = [
    '<%= config.bin %> resume r01M895FFEVNRBYAD18R06K01NW --approve',
    `<%= config.bin %> resume r01M895FFEVNRBYAD18R06K01NW --deny --comment 'not this week'`,
  ];
  static override enableJsonFlag = true;
  static override args = {
    run_id: Args.string({ description: 'The run waiting at a gate.', required: true }),
  };
  static override flags = {
    approve: Flags.boolean({ description: 'Approve the gate: the run continues.' }),
    deny: Flags.boolean({ description: 'Deny the gate: the run fails (reason gate_denied).' }),
    comment: Flags.string({
      description: 'A comment recorded with the decision (at most 4,096 characters).',
      helpValue: 'TEXT',
    }),
  };

  async run(): Promise<RunAck | undefined> {
    const { args, flags } = await this.parse(Resume);
    if (flags.approve === flags.deny) {
      throw new CharterError(
        'INVALID_FLAG',
        flags.approve
          ? '--approve and --deny exclude each other: give exactly one'
          : 'give exactly one of --approve and --deny',
      );
    }
    const runId = checkRunId(args.run_id);
    const target = targetProject(flags['project-path']);
    const decision = flags.approve ? 'approve' : 'deny';
    const client = await connectToDaemon(target, this.warnUser);
    let ack: RunAck;
    try {
      ack = await client.decideGate({
        run_id: runId,
        decision,
        ...(flags.comment === undefined ? {} : { comment: flags.comment }),
      });
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return ack;
    this.log(
      decision === 'approve'
        ? `run ${ack.run_id} approved: now ${ack.state}`
        : `run ${ack.run_id} denied: now ${ack.state} (gate_denied)`,
    );
    if (decision === 'approve') {
      this.log(`  follow: charter-daemon logs ${ack.run_id} --follow${projectSuffix(target)}`);
    }
    return undefined;
  }
}
