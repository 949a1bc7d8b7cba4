/**
 * Writes a store fixture: a small but complete store (runs in every kind of state with their
 * steps, step outputs and an earlier attempt of a retried step, output, lifecycle entries,
 * gateway cursor and inbox) made by the code of the schema version at hand. One is committed
 * per schema version (test/fixtures/store/v<N>.db) and never rewritten: the migration tests
 * open each with the newest code. Write the fixture of a new
 * version with `WRITE_STORE_FIXTURE=1 npx vitest run test/unit/store-fixtures.test.ts`.
 */
import { Store } from '../../src/store/store.js';

const at = (minute: number) => new Date(Date.UTC(2026, 0, 15, 10, minute));
const gate = (since: Date) => ({
  kind: 'gate' as const,
  step_id: 'review',
  prompt: 'Ship it?',
  fields: null,
  since: since.toISOString(),
});

/** Fills a fresh store at `path`; returns its schema version. */
export function writeStoreFixture(path: string): number {
  const store = Store.open(path);
  try {
    store.beginEpoch();
    store.append({ type: 'daemon.started', data: { pid: 1, version: 'fixture' }, ts: at(0) });
    const steps = [
      { id: 'build', kind: 'run' as const },
      { id: 'review', kind: 'gate' as const },
    ];
    const runIds = ['01JFIXTURE0000000000000001', '01JFIXTURE0000000000000002', '01JFIXTURE0000000000000003'];
    for (const [i, runId] of runIds.entries()) {
      store.runs.createRun(
        { runId, workflowId: 'deploy', inputs: { target: `t${i}` }, steps, now: at(i + 1) },
        { type: 'run.queued', data: { workflow_id: 'deploy', inputs: { target: `t${i}` } } },
      );
      store.runs.record(
        runId,
        { state: 'running', currentStep: 'build' },
        [{ type: 'run.started' }, { type: 'step.started', data: { step_id: 'build' } }],
        [{ idx: 0, state: 'running', attempt: 1, startedAt: at(i + 2).toISOString() }],
        at(i + 2),
      );
      store.runs.appendEvents(
        runId,
        [{ type: 'step.output', data: { step_id: 'build', stream: 'stdout', text: `line of ${runId}\n` } }],
        at(i + 2),
      );
    }
    const [succeeded, failed, waiting] = runIds as [string, string, string];
    store.runs.record(
      succeeded,
      { state: 'waiting', currentStep: 'review', stepIndex: 1, waiting: gate(at(5)) },
      [{ type: 'step.finished', data: { step_id: 'build', state: 'succeeded' } }, { type: 'run.waiting' }],
      [
        {
          idx: 0,
          state: 'succeeded',
          exitCode: 0,
          finishedAt: at(5).toISOString(),
          outputs: { version: '1.2.3' },
        },
      ],
      at(5),
    );
    store.runs.record(
      succeeded,
      { state: 'succeeded', finishedAt: at(6).toISOString(), waiting: null },
      [{ type: 'gate.decided', data: { decision: 'approve' } }, { type: 'run.succeeded' }],
      [{ idx: 1, state: 'succeeded' }],
      at(6),
    );
    // From schema 5 on, the failed run's step was retried once (from 6 on, with outputs) before
    // its second attempt failed too.
    store.runs.record(
      failed,
      {},
      [
        { type: 'step.finished', data: { step_id: 'build', state: 'failed' } },
        { type: 'step.retrying', data: { step_id: 'build', attempt: 1, next_attempt: 2 } },
      ],
      [
        {
          idx: 0,
          state: 'retrying',
          exitCode: 3,
          reason: 'step_failed: exit code 3 (attempt 1 of 2)',
          finishedAt: at(6).toISOString(),
          retryAt: at(7).toISOString(),
          outputs: { tried: '1' },
        },
      ],
      at(6),
    );
    store.runs.record(
      failed,
      { attempt: 2 },
      [{ type: 'step.started', data: { step_id: 'build', attempt: 2 } }],
      [
        {
          idx: 0,
          state: 'running',
          attempt: 2,
          startedAt: at(7).toISOString(),
          archiveAttempt: true,
          finishedAt: null,
          exitCode: null,
          reason: null,
          retryAt: null,
          outputs: null,
        },
      ],
      at(7),
    );
    store.runs.record(
      failed,
      { state: 'failed', reason: 'step_failed: exit code 2', finishedAt: at(7).toISOString() },
      [{ type: 'step.finished', data: { step_id: 'build', state: 'failed' } }, { type: 'run.failed' }],
      [{ idx: 0, state: 'failed', exitCode: 2, finishedAt: at(7).toISOString(), outputs: { tried: '2' } }],
      at(7),
    );
    store.runs.record(
      waiting,
      { state: 'waiting', currentStep: 'review', stepIndex: 1, waiting: gate(at(8)) },
      [{ type: 'step.finished', data: { step_id: 'build', state: 'succeeded' } }, { type: 'run.waiting' }],
      [{ idx: 0, state: 'succeeded', exitCode: 0, finishedAt: at(8).toISOString() }],
      at(8),
    );
    store.gateway.rememberMaxFrame(1_048_576);
    store.gateway.receiveCommand(
      { op: 'command', dseq: 1, cmd_id: 'cmd-1', kind: 'run.cancel', run_id: failed, args: {} },
      at(9),
    );
    store.gateway.settleCommand('cmd-1', {
      status: 'rejected',
      error: { code: 'RUN_FINISHED', message: 'x' },
    });
    store.gateway.receiveCommand(
      {
        op: 'command',
        dseq: 2,
        cmd_id: 'cmd-2',
        kind: 'gate.decide',
        run_id: waiting,
        args: { decision: 'approve' },
      },
      at(10),
    );
    store.gateway.ackUp(5);
    store.append({ type: 'daemon.stopped', data: { reason: 'fixture' }, ts: at(11) });
    return store.schemaVersion();
  } finally {
    store.close();
  }
}
