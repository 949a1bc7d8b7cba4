/**
 * Start-up recovery of runs, on a real store and real workflow files, for each state a run can
 * have been stored in when its daemon died. (The end-to-end kill -9 tests drive the same code
 * through a daemon; these name each case.)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunState } from '../../src/protocol/control.js';
import { recoverRuns } from '../../src/runs/recovery.js';
import { newRunId } from '../../src/runs/run-id.js';
import type { RunPatch, StepPatch } from '../../src/store/run-store.js';
import { Store } from '../../src/store/store.js';
import { WorkflowCatalog } from '../../src/workflow/catalog.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'cdr-'));
  writeFileSync(join(root, 'charter.yml'), 'name: recovery\n');
  const workflow = (id: string, plan: string) => {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), plan);
  };
  workflow('build', 'steps:\n  - id: make\n    run: make\n  - id: ship\n    run: ship\n');
  workflow('retry', 'steps:\n  - id: fetch\n    run: fetch\n    retry_on_restart: true\n');
  workflow('gated', 'steps:\n  - id: hold\n    gate: { prompt: Go? }\n');
  const store = Store.open(join(root, 'state.db'));
  cleanups.push(() => {
    store.close();
    rmSync(root, { recursive: true, force: true });
  });
  const catalog = new WorkflowCatalog(root);
  /** A run stored as its daemon left it. */
  const run = (workflowId: string, state: RunState, patch: RunPatch = {}, steps: StepPatch[] = []) => {
    const runId = newRunId();
    const plan = catalog.get(workflowId);
    store.runs.createRun(
      { runId, workflowId, inputs: {}, steps: plan.steps.map((step) => ({ id: step.id, kind: step.kind })) },
      { type: 'run.queued', data: {} },
    );
    if (state !== 'queued')
      store.runs.record(runId, { state, ...patch }, [{ type: `test.${state}`, data: {} }], steps);
    return runId;
  };
  const recover = () => recoverRuns(store, catalog, pino({ level: 'silent' }), 100);
  return { root, store, run, recover };
}

describe('recovery of runs at start-up', () => {
  it('brings queued and waiting runs back as they were', async () => {
    const t = setup();
    const queued = t.run('build', 'queued');
    const waiting = t.run('gated', 'waiting', { stepIndex: 0 }, [{ idx: 0, state: 'waiting' }]);
    const report = await t.recover();
    expect(report.runs.map((r) => [r.runId, r.resume, r.stepIndex, r.attempt])).toEqual([
      [queued, 'queued', 0, 1],
      [waiting, 'waiting', 0, 1],
    ]);
    expect(t.store.runs.getRecord(waiting)?.state).toBe('waiting');
  });

  it('fails a run that was executing a step with `interrupted`', async () => {
    const t = setup();
    const id = t.run('build', 'running', { stepIndex: 0 }, [{ idx: 0, state: 'running' }]);
    const report = await t.recover();
    expect(report.runs).toEqual([]);
    expect(t.store.runs.getRecord(id)).toMatchObject({ state: 'failed', reason: 'interrupted' });
    expect(t.store.runs.get(id)?.steps[0]?.state).toBe('interrupted');
    expect(report.finished.failed).toBe(1);
  });

  it('re-queues a retry_on_restart step with the next attempt', async () => {
    const t = setup();
    const id = t.run('retry', 'running', { stepIndex: 0 }, [{ idx: 0, state: 'running' }]);
    const report = await t.recover();
    expect(report.runs.map((r) => [r.runId, r.resume, r.attempt])).toEqual([[id, 'queued', 2]]);
    expect(t.store.runs.getRecord(id)).toMatchObject({ state: 'queued', attempt: 2 });
    const types = t.store.runs.events(id, 0, 100).map((entry) => entry.type);
    expect(types.at(-1)).toBe('step.retrying');
  });

  it('a step waiting to retry resumes its wait from the stored due time, recording nothing', async () => {
    const t = setup();
    const dueAt = '2026-11-25T10:00:05.000Z';
    const id = t.run('build', 'running', { stepIndex: 0, attempt: 2 }, [
      { idx: 0, state: 'retrying', attempt: 2, exitCode: 3, retryAt: dueAt },
    ]);
    const before = t.store.runs.getRecord(id)?.lastRunSeq;
    const report = await t.recover();
    expect(report.runs).toMatchObject([
      { runId: id, resume: 'queued', stepIndex: 0, attempt: 2, retryDueAt: Date.parse(dueAt) },
    ]);
    expect(t.store.runs.getRecord(id)).toMatchObject({ state: 'running', lastRunSeq: before });
    expect(t.store.runs.get(id)?.steps[0]).toMatchObject({ state: 'retrying', retry_at: dueAt });
  });

  it('a retry_on_restart step journals step.retrying with the interrupted and the next attempt', async () => {
    const t = setup();
    const id = t.run('retry', 'running', { stepIndex: 0 }, [{ idx: 0, state: 'running', attempt: 1 }]);
    await t.recover();
    expect(t.store.runs.events(id, 0, 100).at(-1)?.data).toMatchObject({
      step_id: 'fetch',
      attempt: 1,
      next_attempt: 2,
      reason: 'interrupted',
    });
  });

  it('re-queues a run that was between two steps (nothing was executing)', async () => {
    const t = setup();
    const id = t.run('build', 'running', { stepIndex: 1 }, [{ idx: 0, state: 'succeeded' }]);
    const report = await t.recover();
    expect(report.runs.map((r) => [r.runId, r.resume, r.stepIndex])).toEqual([[id, 'queued', 1]]);
    expect(t.store.runs.events(id, 0, 100).at(-1)?.type).toBe('run.requeued');
  });

  it('finishes a run that was being cancelled as cancelled', async () => {
    const t = setup();
    const id = t.run('build', 'cancelling', { stepIndex: 0, reason: 'cancelled: enough' }, [
      { idx: 0, state: 'running' },
    ]);
    const report = await t.recover();
    expect(report.runs).toEqual([]);
    expect(t.store.runs.getRecord(id)).toMatchObject({ state: 'cancelled', reason: 'cancelled: enough' });
    expect(report.finished.cancelled).toBe(1);
  });

  it('fails a run whose workflow can no longer be loaded, naming why', async () => {
    const t = setup();
    const id = t.run('gated', 'waiting', { stepIndex: 0 });
    rmSync(join(t.root, 'workflows', 'gated'), { recursive: true });
    const report = await t.recover();
    expect(report.runs).toEqual([]);
    expect(t.store.runs.getRecord(id)?.reason).toMatch(/^workflow_unavailable: /);
  });
});
