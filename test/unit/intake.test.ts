/**
 * The intake's log streams against a real store: history, then live entries, the end of the
 * stream when the run ends, and no subscription left behind when the caller goes away.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createIntake } from '../../src/intake/intake.js';
import type { ControlReply } from '../../src/protocol/control.js';
import type { LogBatch } from '../../src/protocol/runs.js';
import { RunFollowers } from '../../src/runs/run-followers.js';
import { newRunId } from '../../src/runs/run-id.js';
import { SecretBox } from '../../src/secrets/secret-box.js';
import { Store } from '../../src/store/store.js';
import { WorkflowCatalog } from '../../src/workflow/catalog.js';

const cleanups: (() => void)[] = [];
/** Followers are told after the writing transaction, on the next turn of the event loop. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
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
  const bus = new RunFollowers(store);
  const intake = createIntake({
    store,
    catalog: new WorkflowCatalog(root),
    followers: bus,
    secrets: new SecretBox(join(root, 'secrets.key')),
  });
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

  it('with follow: live entries from any writer until the run ends, then unsubscribed', async () => {
    const t = setup();
    t.intake.handle(
      { key: 'k', method: 'run.logs', params: { run_id: t.runId, follow: true, after_seq: 0 } },
      t.io,
    );
    expect(t.bus.followers).toBe(1);
    // Writers only write to the store (no second channel to remember): followers hear of it.
    t.store.runs.appendEvents(t.runId, [{ type: 'run.waiting', data: {} }]);
    await tick();
    // An entry whose transaction rolls back never reaches a follower.
    expect(() =>
      t.store.runs.transaction(() => {
        t.store.runs.appendEvents(t.runId, [{ type: 'rolled.back', data: {} }]);
        throw new Error('abort');
      }),
    ).toThrow('abort');
    await tick();
    // The way the crash path records a run's end: a plain store write.
    t.store.runs.record(t.runId, { state: 'failed', finishedAt: new Date().toISOString() }, [
      { type: 'run.failed', data: { reason: 'internal_error' } },
    ]);
    await tick();
    const types = t.batches().flatMap((b) => b?.entries.map((e) => e.type) ?? []);
    expect(types).toEqual(['run.queued', 'run.waiting', 'run.failed']);
    expect(t.batches().at(-1)).toMatchObject({ done: true, state: 'failed' });
    expect(t.bus.followers).toBe(0);
  });

  it('with follow: entries stored together arrive in order, then the end', async () => {
    const t = setup();
    t.intake.handle(
      { key: 'k', method: 'run.logs', params: { run_id: t.runId, follow: true, after_seq: 0 } },
      t.io,
    );
    t.store.runs.appendEvents(t.runId, [{ type: 'run.waiting', data: {} }]);
    t.store.runs.record(t.runId, { state: 'cancelled', finishedAt: new Date().toISOString() }, [
      { type: 'run.cancelled', data: {} },
    ]);
    await tick();
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

describe('intake: gateway command results', () => {
  function pendingCommand(t: ReturnType<typeof setup>, cmdId: string) {
    const frame = {
      op: 'command' as const,
      dseq: 1,
      cmd_id: cmdId,
      kind: 'gate.decide' as const,
      run_id: t.runId,
      args: { step_id: 'hold', decision: 'approve' as const },
    };
    expect(t.store.gateway.receiveCommand(frame)).toEqual({ kind: 'new' });
    return frame;
  }
  const results = (t: ReturnType<typeof setup>) =>
    t.store.readJournal({ type: 'command.result' }).map((entry) => entry.data);

  it('a result recorded with its effect is not recorded again when the answer reaches the intake', () => {
    const t = setup();
    pendingCommand(t, 'c-1');
    const reply = { result: { run_id: t.runId, state: 'queued' } };
    t.store.runs.transaction(() => t.intake.settleWithin('gw:c-1', reply));
    t.intake.deliver('gw:c-1', reply, () => true);
    expect(results(t)).toEqual([{ cmd_id: 'c-1', status: 'applied', run_id: t.runId }]);
    expect(t.store.gateway.pendingCommands()).toEqual([]);
  });

  it('a settlement inside a transaction that rolls back leaves the command pending', () => {
    const t = setup();
    pendingCommand(t, 'c-2');
    expect(() =>
      t.store.runs.transaction(() => {
        t.intake.settleWithin('gw:c-2', { result: { run_id: t.runId, state: 'queued' } });
        throw new Error('the effect failed');
      }),
    ).toThrow('the effect failed');
    expect(results(t)).toEqual([]);
    expect(t.store.gateway.pendingCommands().map((c) => c.cmdId)).toEqual(['c-2']);
  });

  it('settleWithin ignores socket calls; a refusal is settled once when delivered', () => {
    const t = setup();
    pendingCommand(t, 'c-3');
    t.intake.settleWithin('7:1', { result: {} });
    const refusal = { error: { code: 'RUN_NOT_WAITING', message: 'no' } };
    t.intake.deliver('gw:c-3', refusal, () => true);
    t.intake.deliver('gw:c-3', refusal, () => true);
    expect(results(t)).toEqual([
      {
        cmd_id: 'c-3',
        status: 'rejected',
        error: { code: 'RUN_NOT_WAITING', message: 'no' },
        run_id: t.runId,
      },
    ]);
  });
});
