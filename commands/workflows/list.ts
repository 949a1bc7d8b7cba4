import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import { projectSuffix, renderTable } from '../../src/cli/format.js';
import type { WorkflowsListResult } from '../../src/protocol/workflows.js';

export default class WorkflowsList extends DaemonCommand {
  static override summary =
    'List the workflows of the project: id, name, whether each loads, its inputs and steps.';
  static override description =
    `One line per folder under workflows/ with a manifest.yml and a plan.yml, sorted by id: its id, name, whether it loads (both files parse and validate), how many inputs and steps it has, and for one that does not load its first problem (\`workflows show ID\` lists them all). The daemon reads the files as they are now.
--json prints {"workflows": [{id, name, description, loads, inputs, steps, error}], "omitted"} (at most 1000 workflows are described; "omitted" counts the rest).`;
  static override examples = ['<%= config.bin %> workflows list', '<%= config.bin %> workflows list --json'];
  static override enableJsonFlag = true;

  async run(): Promise<WorkflowsListResult | undefined> {
    const { flags } = await this.parse(WorkflowsList);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let list: WorkflowsListResult;
    try {
      list = await client.listWorkflows();
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return list;
    if (list.workflows.length === 0) {
      this.log(
        `no workflows in ${target.projectRoot}/workflows (each needs <id>/manifest.yml and <id>/plan.yml)`,
      );
      return undefined;
    }
    const rows = list.workflows.map((workflow) => [
      workflow.id,
      workflow.name ?? '-',
      workflow.loads ? 'yes' : 'no',
      workflow.inputs === null ? '-' : String(workflow.inputs),
      workflow.steps === null ? '-' : String(workflow.steps),
      workflow.error === null ? '' : `${workflow.error.code}: ${workflow.error.message}`,
    ]);
    for (const line of renderTable(['ID', 'NAME', 'LOADS', 'INPUTS', 'STEPS', 'PROBLEM'], rows))
      this.log(line);
    if (list.omitted > 0) this.log(`… and ${list.omitted} more`);
    this.log(`details: charter-daemon workflows show ID${projectSuffix(target)}`);
    return undefined;
  }
}
