/**
 * The store's side of the gateway link on a real SQLite file: the outbox cursor, and the command
 * inbox — resends, duplicates, rejected contents, settlement once, pending after a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandFrame } from '../../src/protocol/gateway.js';
import { Store } from '../../src/store/store.js';

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function open(path?: string): { store: Store; path: string } {
  const file = path ?? join(mkdtempSync(join(tmpdir(), 'cdg-')), 'state.db');
  if (path === undefined) dirs.push(join(file, '..'));
  const store = Store.open(file);
  stores.push(store);
  return { store, path: file };
}

const command = (dseq: number, cmdId: string): CommandFrame => ({
  op: 'command',
  dseq,
  cmd_id: cmdId,
  kind: 'run.cancel',
  run_id: 'r01M80000000000000000000000',
  args: { reason: 'test' },
});
const results = (store: Store) => store.readJournal({ type: 'command.result' }).map((entry) => entry.data);

describe('gateway store: the outbox cursor', () => {
  it('moves the ack cursor forward only, and counts the backlog after it', () => {
    const { store } = open();
    store.appendMany(Array.from({ length: 10 }, () => ({ type: 't' })));
    expect(store.gateway.backlog().count).toBe(10);
    expect(store.gateway.ackUp(6)).toBe(6);
    expect(store.gateway.ackUp(3)).toBe(6); // a late, older ack changes nothing
    expect(store.gateway.upAcked()).toBe(6);
    expect(store.gateway.backlog().count).toBe(4);
    expect(store.gateway.outbox(6, 100).map((event) => event.seq)).toEqual([7, 8, 9, 10]);
  });

  it('remembers the last max_frame across a restart', () => {
    const first = open();
    expect(first.store.gateway.maxFrame()).toBeNull();
    first.store.gateway.rememberMaxFrame(65_536);
    first.store.close();
    expect(open(first.path).store.gateway.maxFrame()).toBe(65_536);
  });
});

describe('gateway store: the command inbox', () => {
  it('stores a new command as pending, takes a resend as a resend, and moves down_applied', () => {
    const { store } = open();
    expect(store.gateway.receiveCommand(command(1, 'a'))).toEqual({ kind: 'new' });
    expect(store.gateway.receiveCommand(command(1, 'a'))).toEqual({ kind: 'resent' });
    expect(store.gateway.downApplied()).toBe(1);
    expect(store.gateway.pendingCommands().map((pending) => pending.cmdId)).toEqual(['a']);
    expect(results(store)).toEqual([]);
  });

  it('answers a cmd_id seen before under a new dseq as a duplicate, in the transaction that covers it', () => {
    const { store } = open();
    store.gateway.receiveCommand(command(1, 'a'));
    expect(store.gateway.receiveCommand(command(2, 'a'))).toEqual({ kind: 'duplicate', status: 'pending' });
    // down_applied covers dseq 2 and its answer is already stored: a crash now loses nothing.
    expect(store.gateway.downApplied()).toBe(2);
    expect(results(store)).toEqual([{ cmd_id: 'a', status: 'duplicate' }]);
    expect(store.gateway.pendingCommands()).toHaveLength(1);
  });

  it('stores unusable contents as rejected, answered, never pending', () => {
    const { store } = open();
    const received = store.gateway.receiveRejectedCommand({
      dseq: 1,
      cmdId: 'bad',
      kind: 'run.teleport',
      runId: null,
      argsCopy: '{"x":1}',
      error: { code: 'INVALID_PARAMS', message: 'invalid command: kind: invalid option' },
    });
    expect(received).toEqual({ kind: 'rejected' });
    expect(store.gateway.pendingCommands()).toEqual([]);
    expect(results(store)).toEqual([
      {
        cmd_id: 'bad',
        status: 'rejected',
        error: { code: 'INVALID_PARAMS', message: 'invalid command: kind: invalid option' },
      },
    ]);
    // Its cmd_id is taken: the same id again is a duplicate.
    expect(store.gateway.receiveCommand(command(2, 'bad')).kind).toBe('duplicate');
  });

  it('settles a command once; a settlement rolled back with its effect leaves it pending', () => {
    const { store } = open();
    store.gateway.receiveCommand(command(1, 'a'));
    expect(() =>
      store.runs.transaction(() => {
        store.gateway.settleCommand('a', { status: 'applied' });
        throw new Error('the effect failed');
      }),
    ).toThrow('the effect failed');
    expect(store.gateway.pendingCommands()).toHaveLength(1);
    expect(store.gateway.settleCommand('a', { status: 'applied' })).toBeDefined();
    expect(
      store.gateway.settleCommand('a', { status: 'rejected', error: { code: 'X', message: 'y' } }),
    ).toBeUndefined();
    expect(results(store)).toEqual([{ cmd_id: 'a', status: 'applied' }]);
  });

  it('keeps pending commands across a restart, in dseq order, for the next daemon to apply', () => {
    const first = open();
    first.store.gateway.receiveCommand(command(1, 'a'));
    first.store.gateway.receiveCommand(command(2, 'b'));
    first.store.gateway.settleCommand('a', { status: 'applied' });
    first.store.gateway.receiveCommand(command(3, 'c'));
    first.store.close();
    const second = open(first.path).store;
    expect(second.gateway.pendingCommands().map((pending) => [pending.dseq, pending.cmdId])).toEqual([
      [2, 'b'],
      [3, 'c'],
    ]);
    expect(second.gateway.downApplied()).toBe(3);
  });
});
