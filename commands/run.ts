import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { EntryPrinter, isFinal, projectSuffix, stateLine, waitingLines } from '../src/cli/format.js';
import { parseJsonObjectFlag } from '../src/cli/json-flag.js';
import { CharterError } from '../src/errors/charter-error.js';
import type { RunState } from '../src/protocol/control.js';

export interface RunJson {
  run_id: string;
  /** The state at submission (`queued`), or with --wait the state the run ended or paused in. */
  state: RunState;
}

/** Deadline for the first message of the `run.logs` stream; later messages may take as long as the run. */
const FIRST_MESSAGE_TIMEOUT_MS = 60_000;

export default class Run extends DaemonCommand {
  static override summary = 'Submit a detached run of a workflow and print its run id.';
  static override description =
    `The daemon checks the inputs against the workflow manifest (workflows/WORKFLOW_ID/manifest.yml) and queues the run; the command returns as soon as the run is accepted.
Inputs come from --input name=value (repeatable; values are strings, which the daemon reads by the input's type: integer, number, boolean yes/no/true/false/1/0, enum) and from --inputs-json (a JSON object of typed values). Both may be given; --input wins for a name given in both.
With --wait the command follows the run, printing its output and transitions, until it finishes or pauses at a gate or an input step, then prints the final state (and, when it waits, the command that answers it). With --wait the exit code is 0 when the run succeeded or waits, 1 when it failed or was cancelled.
--json prints {"run_id", "state"}: the state at submission, or with --wait the state the run ended or paused in.`;
  static override examples = [
    '<%= config.bin %> run greet --input name=Ana',
    '<%= config.bin %> run greet --input name=Ana --input shout=yes --wait',
    `<%= config.bin %> run greet --inputs-json '{"name": "Ana", "shout": true}' --json`,
  ];
  static override enableJsonFlag = true;
  static override args = {
    workflow_id: Args.string({
      description: 'The workflow to run (a folder under workflows/).',
      required: true,
    }),
  };
  static override flags = {
    input: Flags.string({
      description: 'An input as name=value (split at the first "="); repeat for several inputs.',
      multiple: true,
      multipleNonGreedy: true,
      helpValue: 'NAME=VALUE',
    }),
    'inputs-json': Flags.string({
      description: 'Inputs as a JSON object of typed values; --input wins for a name given in both.',
      helpValue: 'JSON',
    }),
    wait: Flags.boolean({
      description:
        'Follow the run until it finishes or pauses; exit 0 if it succeeded or waits, 1 if it failed or was cancelled.',
    }),
  };

  async run(): Promise<RunJson | undefined> {
    const { args, flags } = await this.parse(Run);
    const target = targetProject(flags['project-path']);
    const inputs = collectInputs(flags['inputs-json'], flags.input ?? []);

    const client = await connectToDaemon(target, this.warnUser);
    try {
      const ack = await client.submitRun({ workflow_id: args.workflow_id, inputs });
      const json = this.jsonEnabled();
      if (!flags.wait) {
        if (json) return { run_id: ack.run_id, state: ack.state };
        this.log(`run ${ack.run_id} ${ack.state} (workflow ${args.workflow_id})`);
        const suffix = projectSuffix(target);
        this.log(`  follow:  charter-daemon logs ${ack.run_id} --follow${suffix}`);
        this.log(`  details: charter-daemon runs show ${ack.run_id}${suffix}`);
        return undefined;
      }

      if (!json) this.log(`run ${ack.run_id} ${ack.state} (workflow ${args.workflow_id})`);
      const printer = new EntryPrinter();
      const batches = client.logs(ack.run_id, { follow: true }, { timeoutMs: FIRST_MESSAGE_TIMEOUT_MS });
      follow: for await (const batch of batches) {
        for (const entry of batch.entries) {
          if (!json) printer.print(entry);
          // A pause ends the wait: someone has to answer before the run goes on.
          if (entry.type === 'run.waiting') break follow;
        }
      }
      printer.finish();
      const detail = await client.showRun(ack.run_id);
      if (detail.state === 'failed' || detail.state === 'cancelled') process.exitCode = 1;
      if (json) return { run_id: detail.run_id, state: detail.state };
      printer.line(stateLine(detail));
      if (detail.waiting !== null && !isFinal(detail.state)) {
        for (const line of waitingLines(detail.run_id, detail.waiting, projectSuffix(target))) {
          printer.line(line);
        }
      }
      return undefined;
    } finally {
      client.close();
    }
  }
}

/** Merges --inputs-json and the --input pairs (which win per name); throws INVALID_FLAG. */
function collectInputs(inputsJson: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  // No prototype: a "__proto__" name is then an input like any other, never a prototype change.
  const inputs: Record<string, unknown> = Object.create(null);
  if (inputsJson !== undefined) {
    Object.assign(inputs, parseJsonObjectFlag('inputs-json', inputsJson, '{"name": "Ana"}'));
  }
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new CharterError(
        'INVALID_FLAG',
        at === 0
          ? `--input ${JSON.stringify(pair)}: the name before "=" is empty (expected name=value)`
          : `--input ${JSON.stringify(pair)}: expected name=value`,
      );
    }
    inputs[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return inputs;
}
