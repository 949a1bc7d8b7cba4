import * as Flags from '@oclif/core/flags';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import { formatDateTime, projectSuffix, renderTable, shellQuote } from '../../src/cli/format.js';
import { CharterError } from '../../src/errors/charter-error.js';
import { RunStateSchema } from '../../src/protocol/control.js';
import type { RunsListResult } from '../../src/protocol/runs.js';

export default class RunsList extends DaemonCommand {
  static override summary = 'List the runs of the project, newest first.';
  static override description =
    `Prints a table: run id, workflow, state, current step and creation time (local time), at most --limit runs per page.
When there are more, the last line gives the command for the next page (--cursor TOKEN).
--json prints the daemon's answer as it is: {"runs": [{run_id, workflow_id, state, reason, current_step, created_at, updated_at}], "next_cursor": TOKEN or null}.`;
  static override examples = [
    '<%= config.bin %> runs list',
    '<%= config.bin %> runs list --state waiting',
    '<%= config.bin %> runs list --limit 50 --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    limit: Flags.integer({
      description: 'Runs per page.',
      default: 20,
      min: 1,
      max: 500,
      helpValue: 'N',
    }),
    cursor: Flags.string({
      description: 'Where the previous page ended (printed after it, or next_cursor in --json).',
      helpValue: 'TOKEN',
    }),
    state: Flags.option({
      options: RunStateSchema.options,
      description: 'Only runs in this state.',
    })(),
  };

  async run(): Promise<RunsListResult | undefined> {
    const { flags } = await this.parse(RunsList);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let page: RunsListResult | undefined;
    try {
      // One page: the command prints the cursor of the next one rather than fetching it.
      for await (const first of client.listRuns({
        limit: flags.limit,
        ...(flags.cursor === undefined ? {} : { cursor: flags.cursor }),
        ...(flags.state === undefined ? {} : { state: flags.state }),
      })) {
        page = first;
        break;
      }
    } finally {
      client.close();
    }
    if (page === undefined)
      throw new CharterError('BAD_RESPONSE', 'the daemon answered runs.list with no page');
    if (this.jsonEnabled()) return page;

    if (page.runs.length === 0) {
      this.log(
        flags.cursor === undefined
          ? `no ${flags.state === undefined ? '' : `${flags.state} `}runs in ${target.projectRoot}`
          : 'no more runs',
      );
    } else {
      const rows = page.runs.map((run) => [
        run.run_id,
        run.workflow_id,
        run.state,
        run.current_step ?? '-',
        formatDateTime(run.created_at),
      ]);
      for (const line of renderTable(['RUN ID', 'WORKFLOW', 'STATE', 'STEP', 'CREATED'], rows))
        this.log(line);
    }
    if (page.next_cursor !== null) {
      const options = [
        flags.limit === 20 ? '' : ` --limit ${flags.limit}`,
        flags.state === undefined ? '' : ` --state ${flags.state}`,
      ].join('');
      this.log(
        `next page: charter-daemon runs list --cursor ${shellQuote(page.next_cursor)}${options}${projectSuffix(target)}`,
      );
    }
    return undefined;
  }
}
