import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { checkRunId, projectSuffix } from '../src/cli/format.js';
import { parseJsonObjectFlag } from '../src/cli/json-flag.js';
import type { RunAck } from '../src/protocol/runs.js';

export default class SubmitInput extends DaemonCommand {
  static override summary = 'Answer the input step a run waits at, with a JSON object of field values.';
  static override description =
    `--answers is a JSON object mapping field names to values. The daemon checks them like run inputs: strings are read by the field's type, defaults fill absent fields, unknown and missing required fields are refused.
Refused answers fail with INVALID_ANSWERS listing every problem, and the run keeps waiting: fix them and submit again. \`charter-daemon runs show RUN_ID\` lists the fields, their types and which are required.
Prints the run's new state (--json: {"run_id", "state"}).`;
  static override examples = [
    `<%= config.bin %> submit-input r01M895FFEVNRBYAD18R06K01NW --answers '{"count": 2, "note": "hi"}'`,
    `<%= config.bin %> submit-input r01M895FFEVNRBYAD18R06K01NW --answers '{"count": "2"}' --json`,
  ];
  static override enableJsonFlag = true;
  static override args = {
    run_id: Args.string({ description: 'The run waiting at an input step.', required: true }),
  };
  static override flags = {
    answers: Flags.string({
      description: 'The answers, as a JSON object: {"field": value, …}.',
      required: true,
      helpValue: 'JSON_OBJECT',
    }),
  };

  async run(): Promise<RunAck | undefined> {
    const { args, flags } = await this.parse(SubmitInput);
    const answers = parseJsonObjectFlag('answers', flags.answers, '{"count": 2}');
    const runId = checkRunId(args.run_id);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let ack: RunAck;
    try {
      ack = await client.submitInput({ run_id: runId, answers });
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return ack;
    this.log(`run ${ack.run_id} answered: now ${ack.state}`);
    this.log(`  follow: charter-daemon logs ${ack.run_id} --follow${projectSuffix(target)}`);
    return undefined;
  }
}
