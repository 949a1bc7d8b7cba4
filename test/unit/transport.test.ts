/**
 * The real transport under the real link machine, against the in-process test gateway
 * (`src/gateway-server/gateway-peer.ts`) and a real store on disk: no daemon process. Frames, credit,
 * the ack cursor, the frame budget and commands, each checked where they happen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type AnyActorRef, createActor } from 'xstate';
import { gatewayLinkMachine } from '../../machines/gateway-link.machine.js';
import { transportLogic } from '../../src/gateway/transport.js';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import type { CommandFrame } from '../../src/protocol/gateway.js';
import { Store } from '../../src/store/store.js';
import { waitUntil } from '../support/wait.js';

const TOKEN = 'transport-test-token';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: { maxFrame?: number; initialCredit?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cdt-'));
  const store = Store.open(join(dir, 'state.db'));
  const peer = await GatewayPeer.start({ token: TOKEN, hbMs: 1000, ...options });
  const applied: CommandFrame[] = [];
  const link = gatewayLinkMachine.provide({
    actors: {
      transport: transportLogic({
        store,
        logger: pino({ level: 'silent' }),
        hello: { daemonId: store.daemonId, epoch: 1, daemonVersion: '0.0.0-test', projectName: 'unit' },
        token: () => TOKEN,
        applyCommand: (command) => applied.push(command),
      }),
    },
    // The link reports its state to the root; here there is none to tell.
    actions: { report: () => undefined },
  });
  let actor: AnyActorRef | undefined;
  const start = () => {
    actor = createActor(link, { input: { url: peer.url } }).start();
    return actor;
  };
  cleanups.push(async () => {
    actor?.stop();
    await peer.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const append = (count: number, data: (i: number) => unknown = (i) => ({ i })) =>
    store.appendMany(Array.from({ length: count }, (_, i) => ({ type: 'test.event', data: data(i) })));
  return { store, peer, applied, start, append };
}

describe('transport against a real gateway peer', () => {
  it('ships a backlog exactly once, in order, within credit, and stores the ack cursor', async () => {
    const t = await setup({ initialCredit: 300 });
    t.append(2500);
    t.start();
    await t.peer.waitFor(() => t.peer.events.length === 2500, 10_000, 'the whole backlog');
    expect(t.peer.events.map((event) => event.seq)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect(t.peer.protocolErrors).toEqual([]); // never past up_limit, never a gap
    expect(t.peer.duplicatesSeen()).toBe(0);
    await waitUntil(() => t.store.gateway.upAcked() === 2500, 5000, 'the ack cursor');
    // Live events after the backlog go up too.
    t.append(3);
    await t.peer.waitFor(() => t.peer.events.length === 2503, 5000, 'live events');
  });

  it('keeps every frame within max_frame: packs small events, truncates one that cannot fit', async () => {
    const t = await setup({ maxFrame: 1024 });
    t.append(40);
    t.store.append({ type: 'test.large', data: { note: 'kept', blob: 'x'.repeat(5000) } });
    t.append(5);
    t.start();
    await t.peer.waitFor(() => t.peer.events.length === 46, 10_000, 'every event');
    const sentFrames = t.peer.frames.filter(
      (record) => record.dir === 'in' && (record.frame as { op?: string }).op === 'events',
    );
    expect(Math.max(...sentFrames.map((record) => record.bytes))).toBeLessThanOrEqual(1024);
    expect(
      sentFrames.some((record) => ((record.frame as { events: unknown[] }).events.length ?? 0) > 1),
    ).toBe(true);
    const large = t.peer.events[40] as { type: string; data: unknown; truncated?: { bytes: number } };
    expect(large.type).toBe('test.large');
    expect(large.data).toEqual({ note: 'kept' });
    expect(large.truncated?.bytes).toBeGreaterThan(5000);
    // The announced frame is remembered: step output is split to fit it from now on.
    expect(t.store.gateway.maxFrame()).toBe(1024);
  });

  it('stores a command before its cack, applies it once, and answers a resent cmd_id as a duplicate', async () => {
    const t = await setup();
    t.start();
    await t.peer.waitForConnection(5000);
    const args = { step_id: 'hold', decision: 'approve' };
    const first = t.peer.sendCommand({
      cmd_id: 'c-1',
      kind: 'gate.decide',
      run_id: 'r01M80000000000000000000000',
      args,
    });
    await t.peer.waitFor(() => t.peer.commandAcks.includes(first), 5000, 'the cack');
    expect(t.applied.map((command) => command.cmd_id)).toEqual(['c-1']);
    expect(t.store.gateway.pendingCommands().map((command) => command.cmdId)).toEqual(['c-1']);
    const again = t.peer.sendCommand({
      cmd_id: 'c-1',
      kind: 'gate.decide',
      run_id: 'r01M80000000000000000000000',
      args,
    });
    await t.peer.waitFor(() => t.peer.commandAcks.includes(again), 5000, 'the second cack');
    expect(t.applied).toHaveLength(1);
    await t.peer.waitFor(
      () => t.peer.events.some((event) => event.type === 'command.result'),
      5000,
      'the duplicate result upstream',
    );
    expect(
      t.peer.events.filter((event) => event.type === 'command.result').map((event) => event.data),
    ).toEqual([{ cmd_id: 'c-1', status: 'duplicate' }]);
    expect(t.store.gateway.downApplied()).toBe(again);
  });
});
