/**
 * Start-up recovery of runs. Waiting runs come back waiting (their gate or input can still be
 * answered); queued runs come back queued; a run that was executing a step when the previous
 * daemon died has its leftover processes killed, then fails with reason `interrupted` — unless
 * the step says `retry_on_restart: true`, in which case it is queued to run the step again. A
 * run whose step was waiting to retry (`retry:`) had no process: it resumes the wait from the
 * due time stored with its `step.retrying`, neither restarting it nor skipping it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { FinishedCounts } from '../../machines/daemon.machine.js';
import type { RunInput } from '../../machines/run-types.js';
import { errorMessage } from '../errors/error-message.js';
import type { RunRecord } from '../store/run-store.js';
import type { Store } from '../store/store.js';
import type { WorkflowCatalog } from '../workflow/catalog.js';
import type { Workflow } from '../workflow/definition.js';
import { killRunProcesses } from '../workflow/orphans.js';

export interface RunRecovery {
  readonly runs: RunInput[];
  readonly finished: FinishedCounts;
}

export async function recoverRuns(
  store: Store,
  catalog: WorkflowCatalog,
  logger: Logger,
  killGraceMs: number,
  /** `.charter/daemon/runs`: where the runs' files live (left-over output files are removed). */
  runsDir?: string,
): Promise<RunRecovery> {
  const restored: RunInput[] = [];
  const unfinished = store.runs.unfinished();
  // Leftover processes of every interrupted run get their SIGTERM at once: the grace periods
  // run side by side, so start-up waits one grace period, not one per run.
  const executing = unfinished.filter(
    (record) => record.state === 'running' || record.state === 'cancelling',
  );
  const killed = new Map(
    await Promise.all(
      executing.map(
        async (record) => [record.runId, await killRunProcesses(record.runId, killGraceMs)] as const,
      ),
    ),
  );
  // The CHARTER_OUTPUT file of a step cut off by the crash holds what it wrote in clear (secret
  // outputs included) and will never be read: its processes are gone now, so nothing writes to
  // it any more. A step that runs again gets a fresh one.
  if (runsDir !== undefined) {
    for (const record of executing) discardOutputFiles(runsDir, record.runId, logger);
  }
  for (const record of unfinished) {
    const log = logger.child({ run: record.runId });
    let workflow: Workflow;
    try {
      workflow = catalog.get(record.workflowId);
    } catch (error) {
      // Processes of a run whose workflow vanished must still not outlive the daemon that ran them.
      await killRunProcesses(record.runId, killGraceMs);
      const reason = `workflow_unavailable: ${errorMessage(error)}`;
      store.runs.record(record.runId, { state: 'failed', reason, finishedAt: now(), waiting: null }, [
        { type: 'run.failed', data: { reason, recovered: true } },
      ]);
      log.warn({ reason }, 'recovered run failed: its workflow cannot be loaded');
      continue;
    }
    const entry = (resume: RunInput['resume'], attempt = record.attempt, retryDueAt?: number): RunInput => ({
      runId: record.runId,
      plan: workflow,
      stepIndex: record.stepIndex,
      attempt,
      resume,
      ...(retryDueAt === undefined ? {} : { retryDueAt }),
    });
    if (record.state === 'queued') {
      restored.push(entry('queued'));
    } else if (record.state === 'waiting') {
      restored.push(entry('waiting'));
    } else {
      const resumed = recoverExecuting(store, record, workflow, log, killed.get(record.runId) ?? 0);
      if (resumed !== null) restored.push(entry('queued', resumed.attempt, resumed.retryDueAt));
    }
  }
  const counts = store.runs.counts();
  // Pruned runs still count: status reports every run the store has seen.
  const pruned = store.retention.prunedCounts();
  counts.succeeded += pruned.succeeded;
  counts.failed += pruned.failed;
  counts.cancelled += pruned.cancelled;
  return {
    runs: restored,
    finished: { succeeded: counts.succeeded, failed: counts.failed, cancelled: counts.cancelled },
  };
}

/**
 * A run that was running or cancelling: returns the attempt to re-queue it with (and, for a step
 * waiting to retry, when that attempt is due), or null if it ended.
 */
function recoverExecuting(
  store: Store,
  record: RunRecord,
  workflow: Workflow,
  log: Logger,
  killed: number,
): { attempt: number; retryDueAt?: number } | null {
  const step = workflow.steps[record.stepIndex];
  const stepRecord = store.runs.get(record.runId)?.steps[record.stepIndex];
  const stepState = stepRecord?.state;
  const idx = record.stepIndex;
  if (record.state === 'running' && stepState === 'retrying') {
    // No process was running: nothing is lost and nothing to record. The run stays `running` in
    // the store and waits for what is left of the wait once it has its slot again. A due time
    // that cannot be read (a salvaged store) counts as due now.
    const due = Date.parse(stepRecord?.retry_at ?? '');
    const retryDueAt = Number.isNaN(due) ? Date.now() : due;
    log.info(
      { attempt: record.attempt + 1, dueAt: new Date(retryDueAt).toISOString() },
      'recovered run resumes waiting to retry its step',
    );
    return { attempt: record.attempt, retryDueAt };
  }
  if (record.state === 'running' && (step === undefined || stepState === 'pending')) {
    // Between two steps (or after the last): nothing was executing, so nothing was lost.
    store.runs.record(record.runId, { state: 'queued' }, [
      { type: 'run.requeued', data: { reason: 'daemon restarted between steps', killed_processes: killed } },
    ]);
    log.info('recovered run re-queued: it was between steps');
    return { attempt: record.attempt };
  }
  if (record.state === 'cancelling') {
    store.runs.record(
      record.runId,
      { state: 'cancelled', reason: record.reason ?? 'cancelled', finishedAt: now(), currentStep: null },
      [
        {
          type: 'run.cancelled',
          data: { reason: record.reason, while: 'restart', killed_processes: killed },
        },
      ],
      [{ idx, state: 'cancelled', finishedAt: now() }],
    );
    log.info({ killed }, 'recovered run cancelled: it was being cancelled');
    return null;
  }
  if (step?.kind === 'run' && step.retryOnRestart) {
    const attempt = record.attempt + 1;
    store.runs.record(
      record.runId,
      { state: 'queued', attempt },
      [
        {
          type: 'step.retrying',
          data: {
            step_id: step.id,
            attempt: record.attempt,
            next_attempt: attempt,
            reason: 'interrupted',
            killed_processes: killed,
          },
        },
      ],
      [{ idx, state: 'interrupted', finishedAt: now(), reason: 'interrupted' }],
    );
    log.info({ killed, attempt }, 'recovered run re-queued: its step is retry_on_restart');
    return { attempt };
  }
  store.runs.record(
    record.runId,
    { state: 'failed', reason: 'interrupted', finishedAt: now(), currentStep: null, waiting: null },
    [
      {
        type: 'run.failed',
        data: { reason: 'interrupted', step_id: step?.id ?? null, killed_processes: killed },
      },
    ],
    [{ idx, state: 'interrupted', finishedAt: now(), reason: 'interrupted' }],
  );
  log.warn({ killed }, 'recovered run failed: the daemon stopped while its step was running');
  return null;
}

function now(): string {
  return new Date().toISOString();
}

/** Removes `runs/<id>/outputs` (a link there is removed, never followed); a failure is logged. */
function discardOutputFiles(runsDir: string, runId: string, logger: Logger): void {
  try {
    rmSync(join(runsDir, runId, 'outputs'), { recursive: true, force: true });
  } catch (error) {
    logger.warn({ run: runId, err: error }, 'could not remove the output files of an interrupted step');
  }
}
