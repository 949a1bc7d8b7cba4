import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../src/cli/daemon-client.js';
import { checkRunId, EntryPrinter } from '../src/cli/format.js';
import { isCharterError } from '../src/errors/charter-error.js';

/** Deadline for the first message of the stream; later messages may take as long as the run. */
const FIRST_MESSAGE_TIMEOUT_MS = 60_000;

export default class Logs extends DaemonCommand {
  static override summary = "Print a run's output and transitions; --follow streams them until the run ends.";
  static override description =
    `One line per journal entry: step output as it was written (stderr chunks on stderr), transitions as "[HH:MM:SS] step.started build (attempt 1)" lines (local time).
Without --follow, prints the history so far and exits; with --follow, keeps printing until the run succeeds, fails or is cancelled (a run waiting at a gate or input step keeps the command waiting).
--json writes NDJSON for scripts: one JSON object per line and per entry, as the daemon stores it ({"seq", "run_seq", "ts", "type", "data"}; step output is a "step.output" entry), written as entries arrive. This is not the single JSON value other commands print with --json. Errors are a single {"error": {code, message, hint}} line.`;
  static override examples = [
    '<%= config.bin %> logs r01M895FFEVNRBYAD18R06K01NW',
    '<%= config.bin %> logs r01M895FFEVNRBYAD18R06K01NW --follow',
    `<%= config.bin %> logs r01M895FFEVNRBYAD18R06K01NW --json | jq -j 'select(.type == "step.output") | .data.text'`,
  ];
  static override args = {
    run_id: Args.string({ description: 'The run whose log to print.', required: true }),
  };
  static override flags = {
    follow: Flags.boolean({ char: 'f', description: 'Keep printing new entries until the run ends.' }),
    // Not oclif's --json (which prints one value at the end): entries are streamed as NDJSON.
    json: Flags.boolean({ description: 'Write one JSON entry per line (NDJSON), as entries arrive.' }),
  };

  #json = false;

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Logs);
    this.#json = flags.json;
    const runId = checkRunId(args.run_id);
    const target = targetProject(flags['project-path']);
    const printer = new EntryPrinter();
    const client = await connectToDaemon(target, this.warnUser);
    try {
      const batches = client.logs(runId, { follow: flags.follow }, { timeoutMs: FIRST_MESSAGE_TIMEOUT_MS });
      for await (const batch of batches) {
        for (const entry of batch.entries) {
          if (flags.json) process.stdout.write(`${JSON.stringify(entry)}\n`);
          else printer.print(entry);
        }
      }
    } finally {
      client.close();
      if (!flags.json) printer.finish();
    }
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    if (this.#json && isCharterError(error)) {
      process.exitCode = error.exitCode;
      process.stdout.write(`${JSON.stringify({ error: error.toWire() })}\n`);
      return undefined;
    }
    return super.catch(error);
  }
}
