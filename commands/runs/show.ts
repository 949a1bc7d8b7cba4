import * as Args from '@oclif/core/args';
import { DaemonCommand } from '../../src/cli/base-command.js';
import { connectToDaemon, targetProject } from '../../src/cli/daemon-client.js';
import {
  checkRunId,
  earlierAttemptRows,
  formatDateTime,
  formatValues,
  outputLines,
  projectSuffix,
  renderTable,
  retryLine,
  stateLine,
  stepDuration,
  waitingLines,
} from '../../src/cli/format.js';
import type { RunDetail } from '../../src/protocol/runs.js';

export default class RunsShow extends DaemonCommand {
  static override summary = 'Show one run: its state, what it waits for, its steps and its inputs.';
  static override description =
    `Prints the run's state and reason, its current step, and — when it waits — the gate prompt or the input prompt with its fields (type, required or not), followed by the exact command that answers it (charter-daemon resume RUN_ID --approve, or charter-daemon submit-input RUN_ID --answers '{…}').
Then every step with its state, attempt, duration and exit code, the run's inputs, the answers given so far and the outputs run steps wrote (secrets as ***).
A run step that failed and is retried (retry: in plan.yml) is in state retrying until its next attempt: a line says when that starts, and the earlier attempts of retried steps are listed under the steps; the outputs an earlier attempt wrote are shown too, marked as not passed on (only a step's final, succeeded attempt passes its outputs to later steps).
--json prints the daemon's RunDetail as it is (run_id, workflow_id, state, reason, current_step, created_at, updated_at, finished_at, inputs, answers, waiting, steps; each step with its outputs, retry_at and its earlier attempts, each with its outputs).`;
  static override examples = [
    '<%= config.bin %> runs show r01M895FFEVNRBYAD18R06K01NW',
    '<%= config.bin %> runs show r01M895FFEVNRBYAD18R06K01NW --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    run_id: Args.string({
      description: 'The run (from `charter-daemon run` or `runs list`).',
      required: true,
    }),
  };

  async run(): Promise<RunDetail | undefined> {
    const { args, flags } = await this.parse(RunsShow);
    const runId = checkRunId(args.run_id);
    const target = targetProject(flags['project-path']);
    const client = await connectToDaemon(target, this.warnUser);
    let run: RunDetail;
    try {
      run = await client.showRun(runId);
    } finally {
      client.close();
    }
    if (this.jsonEnabled()) return run;

    this.log(stateLine(run));
    this.log(`  workflow:     ${run.workflow_id}`);
    this.log(`  state:        ${run.state}`);
    if (run.reason !== null) this.log(`  reason:       ${run.reason}`);
    this.log(`  current step: ${run.current_step ?? '-'}`);
    this.log(`  created:      ${formatDateTime(run.created_at)}`);
    this.log(`  updated:      ${formatDateTime(run.updated_at)}`);
    if (run.finished_at !== null) this.log(`  finished:     ${formatDateTime(run.finished_at)}`);

    if (run.waiting !== null) {
      this.log('');
      for (const line of waitingLines(run.run_id, run.waiting, projectSuffix(target))) this.log(line);
    }

    const now = Date.now();
    const retrying = run.steps.map((step) => retryLine(step, now)).filter((line) => line !== null);
    if (retrying.length > 0) {
      this.log('');
      for (const line of retrying) this.log(line);
    }

    this.log('');
    this.log('steps:');
    const rows = run.steps.map((step) => [
      step.id,
      step.kind,
      step.state,
      // Only run steps have attempts (a restart may run them again); gates and inputs are answered once.
      step.kind === 'run' && step.started_at !== null ? String(step.attempt) : '-',
      stepDuration(step, now),
      step.exit_code === null ? '-' : String(step.exit_code),
      step.reason ?? '',
    ]);
    for (const line of renderTable(
      ['STEP', 'KIND', 'STATE', 'ATTEMPT', 'DURATION', 'EXIT', 'REASON'],
      rows,
    )) {
      this.log(`  ${line}`);
    }
    const earlier = earlierAttemptRows(run.steps);
    if (earlier.length > 0) {
      this.log('');
      this.log('earlier attempts:');
      for (const line of renderTable(['STEP', 'ATTEMPT', 'DURATION', 'EXIT', 'REASON'], earlier)) {
        this.log(`  ${line}`);
      }
    }

    this.log('');
    this.log(`inputs: ${formatValues(run.inputs)}`);
    const answered = Object.entries(run.answers);
    if (answered.length > 0) {
      this.log('answers:');
      for (const [stepId, values] of answered) this.log(`  ${stepId}: ${formatValues(values)}`);
    }
    const written = outputLines(run.steps);
    if (written.length > 0) {
      this.log('outputs:');
      for (const line of written) this.log(`  ${line}`);
    }
    return undefined;
  }
}
