/**
 * Oversized events against a gateway with a small `max_frame`, with the built daemon: no frame
 * the daemon sends is ever larger than the gateway announced, so the link is never closed with
 * 1009 and nothing behind a large event is held up. Step output is split at its source to fit;
 * an event that cannot fit (a large `run.queued`, output journaled before any gateway announced
 * its frame) goes up in the truncated form, its full copy kept in the local journal.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayPeer, type UpEvent } from '../../src/gateway-server/gateway-peer.js';
import { assertBuilt, destroyProject } from '../support/cli.js';
import {
  caughtUpStore,
  faultProject,
  GATEWAY_TOKEN,
  LONG_LINE,
  readStore,
  runLog,
  showRun,
  startDaemon,
  stopDaemon,
  submitRun,
  untilRun,
} from '../support/fault-daemon.js';

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(maxFrame: number): Promise<GatewayPeer> {
  // A calm heartbeat: the link must hold, and a loaded machine must not make it time out.
  const peer = await GatewayPeer.start({ token: GATEWAY_TOKEN, hbMs: 2000, maxFrame });
  cleanups.push(() => peer.stop());
  return peer;
}

function project(): string {
  const root = faultProject();
  cleanups.push(() => destroyProject(root));
  return root;
}

type TruncatedEvent = UpEvent & { truncated?: { bytes: number } };

/** No daemon frame over `maxFrame`, no close for size, no protocol error; every stored event up, in order. */
async function expectWithinBudget(root: string, peer: GatewayPeer, maxFrame: number): Promise<void> {
  const { journal } = await caughtUpStore(root, peer);
  const inbound = peer.frames.filter((record) => record.dir === 'in');
  expect(inbound.length).toBeGreaterThan(0);
  const largest = Math.max(...inbound.map((record) => record.bytes));
  expect(largest).toBeLessThanOrEqual(maxFrame);
  expect(peer.connections.map((c) => c.closedWith).filter((code) => code === 1009)).toEqual([]);
  expect(peer.protocolErrors).toEqual([]);
  expect(peer.events.slice(0, journal.length).map((e) => [e.seq, e.type])).toEqual(
    journal.map((e) => [e.seq, e.type]),
  );
  expect(peer.runSeqViolations()).toEqual([]);
}

function outputOf(events: readonly { type: string; data: unknown }[]): string {
  return events
    .filter((event) => event.type === 'step.output')
    .map((event) => (event.data as { text: string }).text)
    .join('');
}

describe('events within a small max_frame', () => {
  it('max_frame 65,536: a 200 KB line with no newline arrives whole, in order, in frames that fit', async () => {
    const peer = await gateway(65_536);
    const root = project();
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    const runId = await submitRun(root, 'longline');
    await untilRun(root, runId, (run) => run.state === 'succeeded', 'succeeded');
    await expectWithinBudget(root, peer, 65_536);
    const output = peer.events.filter((e) => e.run_id === runId && e.type === 'step.output');
    expect(output.length).toBeGreaterThan(3);
    expect(output.filter((e) => (e as TruncatedEvent).truncated !== undefined)).toEqual([]);
    expect(outputOf(output)).toBe(LONG_LINE);
    expect(peer.connections).toHaveLength(1);
  });

  it('max_frame 1,024: a run.queued with a 4 KB input goes up truncated, everything after it follows', async () => {
    const peer = await gateway(1024);
    const root = project();
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    const blob = Array.from({ length: 400 }, (_, i) => `b${String(i).padStart(9, '0')}`).join('');
    expect(blob.length).toBe(4000);
    const runId = await submitRun(root, 'blob', [`blob=${blob}`]);
    await untilRun(root, runId, (run) => run.state === 'succeeded', 'succeeded');
    await expectWithinBudget(root, peer, 1024);
    const stored = readStore(root).journal.find((e) => e.run_id === runId && e.type === 'run.queued');
    const queued = peer.events.find((e) => e.run_id === runId && e.type === 'run.queued') as TruncatedEvent;
    expect(queued.seq).toBe(stored?.seq);
    expect(queued.truncated?.bytes).toBeGreaterThan(1024);
    expect(queued.data).toEqual({ workflow_id: 'blob' }); // the small fields are kept
    expect(JSON.stringify(queued)).not.toContain(blob);
    // Every later event of the run is delivered, up to its end.
    expect(peer.events.filter((e) => e.run_id === runId).map((e) => e.type)).toEqual([
      'run.queued',
      'run.started',
      'step.started',
      'step.output',
      'step.finished',
      'run.succeeded',
    ]);
    expect(outputOf(peer.events.filter((e) => e.run_id === runId))).toBe('blob received\n');
    // The full input is still known locally.
    expect((await showRun(root, runId)).inputs).toEqual({ blob });
    expect((await runLog(root, runId)).find((e) => e.type === 'run.queued')?.data).toMatchObject({
      inputs: { blob },
    });
    expect(peer.connections).toHaveLength(1);
  });

  it('output journaled offline, before any gateway announced a frame, reaches a 65,536 gateway whole, within it', async () => {
    const root = project();
    await startDaemon(root);
    const runId = await submitRun(root, 'longline');
    await untilRun(root, runId, (run) => run.state === 'succeeded', 'succeeded');
    await stopDaemon(root);

    const peer = await gateway(65_536);
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    await expectWithinBudget(root, peer, 65_536);
    // Split when stored for the default budget, which fits a 64 KiB frame: nothing truncated.
    const output = peer.events.filter((e) => e.run_id === runId && e.type === 'step.output');
    expect(output.filter((e) => (e as TruncatedEvent).truncated !== undefined)).toEqual([]);
    expect(outputOf(output)).toBe(LONG_LINE);
    expect(outputOf(await runLog(root, runId))).toBe(LONG_LINE);
    expect(peer.connections).toHaveLength(1);
  });

  it('max_frame 1,024: output stored for a larger frame goes up truncated, the journal keeps every byte', async () => {
    const root = project();
    await startDaemon(root);
    const runId = await submitRun(root, 'longline');
    await untilRun(root, runId, (run) => run.state === 'succeeded', 'succeeded');
    await stopDaemon(root);

    const peer = await gateway(1024);
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    await expectWithinBudget(root, peer, 1024);
    const output = peer.events.filter(
      (e) => e.run_id === runId && e.type === 'step.output',
    ) as TruncatedEvent[];
    // Each piece goes up whole if it fits, else truncated (its text left out, its size said).
    const truncated = output.filter((e) => e.truncated !== undefined);
    expect(truncated.length).toBeGreaterThan(0);
    for (const event of truncated) {
      expect(event.truncated?.bytes).toBeGreaterThan(1024);
      expect(event.data).not.toHaveProperty('text');
    }
    expect(outputOf(await runLog(root, runId))).toBe(LONG_LINE);
    expect(peer.connections).toHaveLength(1);
  });
});
