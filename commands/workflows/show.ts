import * as Args from '@oclif/core/args';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import { formatMs, projectSuffix, renderTable, shellQuote } from '../../src/cli/format.js';
import type { WorkflowDetail, WorkflowStep } from '../../src/protocol/workflows.js';

type InputSpec = WorkflowDetail['inputs'][string];

export default class WorkflowsShow extends DaemonCommand {
  static override summary =
    'Show one workflow: its inputs (types, defaults, required, secret) and its steps.';
  static override description =
    `Prints the workflow's name and description, every input with its type (enum values, secret), whether it is required and its default, then every step with its kind: a run step's time limit, runtime, retry policy and declared outputs (name, type, required), a gate's prompt, an input step's prompt and fields. Ends with the command that runs it, its required inputs filled in as NAME=VALUE.
A workflow that does not load fails with INVALID_WORKFLOW listing every problem of its manifest.yml and plan.yml (exit 2); an unknown id fails with UNKNOWN_WORKFLOW, which lists the known ones.
--json prints {id, name, description, inputs: {NAME: {type, required, description, values, default?}}, steps: [{id, kind, …}]}; a run step has timeout_ms, runtime, retry_on_restart, retry and outputs ({NAME: {type, required, description, values, default?}}, or null when it declares none).`;
  static override examples = [
    '<%= config.bin %> workflows show greet',
    '<%= config.bin %> workflows show greet --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    workflow_id: Args.string({ description: 'The workflow (a folder under workflows/).', required: true }),
  };

  async run(): Promise<WorkflowDetail | undefined> {
    const { args, flags } = await this.parse(WorkflowsShow);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let workflow: WorkflowDetail;
    try {
      workflow = await client.showWorkflow(args.workflow_id);
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return workflow;

    this.log(`workflow ${workflow.id}: ${workflow.name}`);
    if (workflow.description !== null) this.log(`  ${workflow.description}`);
    this.log('');
    const inputs = Object.entries(workflow.inputs);
    if (inputs.length === 0) {
      this.log('inputs: (none)');
    } else {
      this.log('inputs:');
      for (const line of fieldTable(inputs)) this.log(`  ${line}`);
    }
    this.log('');
    this.log('steps:');
    const rows = workflow.steps.map((step, index) => [
      String(index + 1),
      step.id,
      step.kind,
      stepDetails(step),
    ]);
    for (const line of renderTable(['#', 'STEP', 'KIND', 'DETAILS'], rows)) this.log(`  ${line}`);
    this.log('');
    const required = inputs.filter(([, spec]) => spec.required).map(([name]) => ` --input ${name}=VALUE`);
    this.log(
      `run it: charter-daemon run ${shellQuote(workflow.id)}${required.join('')}${projectSuffix(target)}`,
    );
    return undefined;
  }
}

function typeText(spec: InputSpec): string {
  return spec.type === 'enum' && spec.values !== null ? `enum (${spec.values.join(', ')})` : spec.type;
}

function fieldTable(fields: readonly [string, InputSpec][]): string[] {
  const rows = fields.map(([name, spec]) => [
    name,
    typeText(spec),
    spec.required ? 'required' : 'optional',
    spec.default === undefined ? '-' : JSON.stringify(spec.default),
    spec.description ?? '',
  ]);
  return renderTable(['NAME', 'TYPE', 'REQUIRED', 'DEFAULT', 'DESCRIPTION'], rows);
}

function stepDetails(step: WorkflowStep): string {
  switch (step.kind) {
    case 'run': {
      const parts = [
        step.timeout_ms === null || step.timeout_ms === undefined
          ? 'no time limit'
          : `timeout ${formatMs(step.timeout_ms)}`,
      ];
      if (step.runtime === 'python') parts.push('runtime python (.charter/.venv)');
      if (step.retry !== null && step.retry !== undefined) {
        const { limit, delay_ms, backoff, max_delay_ms, on } = step.retry;
        parts.push(
          `retry up to ${limit}× on ${on.join(', ')} (wait ${formatMs(delay_ms)}, ×${backoff}, at most ${formatMs(max_delay_ms)})`,
        );
      }
      if (step.retry_on_restart === true) parts.push('retried after a daemon restart');
      if (step.outputs !== null && step.outputs !== undefined) {
        const outputs = Object.entries(step.outputs).map(
          ([name, spec]) => `${name} (${typeText(spec)}${spec.required ? ', required' : ''})`,
        );
        parts.push(`outputs: ${outputs.join(', ') || '(none)'}`);
      }
      return parts.join(', ');
    }
    case 'gate':
      return JSON.stringify(step.prompt ?? '');
    case 'input': {
      const fields = Object.entries(step.fields ?? {}).map(
        ([name, spec]) => `${name} (${typeText(spec)}${spec.required ? ', required' : ''})`,
      );
      return `${JSON.stringify(step.prompt ?? '')}; fields: ${fields.join(', ') || '(none)'}`;
    }
  }
}
