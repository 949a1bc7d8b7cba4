/**
 * The intake's log streams against a real store: history, then live entries, the end of the
 * stream when the run ends, and no subscription left behind when the caller goes away.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createIntake } from '../../src/daemon/intake.js';
import { RunEventBus } from '../../src/daemon/run-events.js';
import { newRunId } from '../../src/daemon/run-id.js';
import type { ControlReply } from '../../src/protocol/control.js';
import type { LogBatch } from '../../src/protocol/runs.js';
import { Store } from '../../src/store/store.js';
import { WorkflowCatalog } from '../../src/workflow/catalog.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'cdi-'));
  mkdirSync(join(root, 'workflows/park'), { recursive: true });
  writeFileSync(join(root, 'charter.yml'), 'name: t\n');
  writeFileSync(join(root, 'workflows/park/manifest.yml'), 'id: park\nname: Park\n');
  writeFileSync(join(root, 'workflows/park/plan.yml'), 'steps:\n  - id: hold\n    gate: { prompt: Hold }\n');
  const store = Store.open(join(root, 'state.db'));
  cleanups.push(() => {
    store.close();
    rmSync(root, { recursive: true, force: true });
  });
  const bus = new RunEventBus();
  const intake = createIntake({ store, catalog: new WorkflowCatalog(root), bus });
  const runId = newRunId();
  store.runs.createRun(
    { runId, workflowId: 'park', inputs: {}, steps: [{ id: 'hold', kind: 'gate' }] },
    { type: 'run.queued', data: {} },
  );
  const replies: ControlReply[] = [];
  const io = {
    reply: (reply: ControlReply) => {
      replies.push(reply);
      return true;
    },
    toRoot: () => undefined,
  };
  const batches = () => replies.map((reply) => ('result' in reply ? (reply.result as LogBatch) : null));
  return { store, bus, intake, runId, io, replies, batches };
}

describe('intake: replies from the root', () => {
  it('an error decided by the root gets the catalogue hint on its way to the client', () => {
    const t = setup();
    const delivered: ControlReply[] = [];
    t.intake.deliver(
      'k',
      { error: { code: 'QUEUE_FULL', message: '1000 runs are already waiting' } },
      (reply) => {
        delivered.push(reply);
        return true;
      },
    );
    expect(delivered).toEqual([
      {
        error: {
          code: 'QUEUE_FULL',
          message: '1000 runs are already waiting',
          hint: 'Wait for queued runs to start, or raise daemon.max_queued_runs in charter.yml.',
        },
      },
    ]);
  });
});

describe('intake: run.logs', () => {
  it('without follow: the history, then the end of the stream', () => {
    const t = setup();
    t.intake.handle(
      { key: 'k', method: 'run.logs', params: { run_id: t.runId, follow: false, after_seq: 0 } },
      t.io,
    );
    expect(t.batches().map((b) => b?.entries.map((e) => e.type))).toEqual([['run.queued'], []]);
    expect(t.batches().at(-1)?.done).toBe(true);
    expect(t.bus.followers).toBe(0);
  });

  it('with follow: live entries until the run ends, then unsubscribed', () => {
    const t = setup();
    t.intake.handle(
      { key: 'k', method: 'run.logs', params: { run_id: t.runId, follow: true, after_seq: 0 } },
      t.io,
    );
    expect(t.bus.followers).toBe(1);
    t.bus.publish(t.runId, t.store.runs.appendEvents(t.runId, [{ type: 'run.waiting', data: {} }]));
    t.bus.publish(
      t.runId,
      t.store.runs.record(t.runId, { state: 'cancelled', finishedAt: new Date().toISOString() }, [
        { type: 'run.cancelled', data: {} },
      ]),
    );
    const types = t.batches().flatMap((b) => b?.entries.map((e) => e.type) ?? []);
    expect(types).toEqual(['run.queued', 'run.waiting', 'run.cancelled']);
    expect(t.batches().at(-1)).toMatchObject({ done: true, state: 'cancelled' });
    expect(t.bus.followers).toBe(0);
  });

  it('a follow whose caller went away leaves no subscription behind', () => {
    const t = setup();
    t.intake.handle(
      { key: 'gone', method: 'run.logs', params: { run_id: t.runId, follow: true, after_seq: 0 } },
      t.io,
    );
    expect(t.bus.followers).toBe(1);
    t.intake.abandon('gone');
    expect(t.bus.followers).toBe(0);
  });
});
