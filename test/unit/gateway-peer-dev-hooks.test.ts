/**
 * What GatewayPeer offers the dev gateway: a hook per newly stored event, connection changes
 * with the daemon's hello (welcomed, failed, closed), the stored daemon's id, and adopting a
 * daemon's `down_applied` when the gateway kept nothing. A raw `ws` client plays the daemon on
 * 127.0.0.1; every wait has a deadline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type RawData, WebSocket } from 'ws';
import {
  type ConnectionChange,
  GatewayPeer,
  type GatewayPeerOptions,
  type UpEvent,
} from '../../src/gateway-server/gateway-peer.js';
import { CloseCode, GATEWAY_SUBPROTOCOL } from '../../src/protocol/gateway.js';
import { waitUntil } from '../support/wait.js';

const TOKEN = 'hooks-token';
const WAIT_MS = 3_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Watched {
  peer: GatewayPeer;
  events: UpEvent[];
  changes: ConnectionChange[];
}

async function watchedPeer(options: GatewayPeerOptions = {}): Promise<Watched> {
  const events: UpEvent[] = [];
  const changes: ConnectionChange[] = [];
  const peer = await GatewayPeer.start({
    token: TOKEN,
    onEvent: (event) => events.push(event),
    onConnection: (change) => changes.push(change),
    ...options,
  });
  cleanups.push(() => peer.stop());
  return { peer, events, changes };
}

/** A daemon reduced to its frames: hello, events, and what it received. */
async function rawDaemon(
  peer: GatewayPeer,
  daemonId: string,
  downApplied = 0,
): Promise<{ ws: WebSocket; frames: Record<string, unknown>[] }> {
  const ws = new WebSocket(`${peer.url.replace(/^http/, 'ws')}/v1/daemon`, [GATEWAY_SUBPROTOCOL], {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  cleanups.push(() => ws.terminate());
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (data: RawData) => frames.push(JSON.parse(data.toString()) as Record<string, unknown>));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(
    JSON.stringify({
      op: 'hello',
      protocol: 1,
      daemon_id: daemonId,
      epoch: 1,
      daemon_version: '0.1.0',
      project: { name: `project-${daemonId}` },
      down_applied: downApplied,
    }),
  );
  return { ws, frames };
}

function upEvent(seq: number): UpEvent {
  return { seq, run_id: null, run_seq: null, type: 'daemon.started', ts: new Date().toISOString(), data: {} };
}

describe('GatewayPeer hooks for the dev gateway', () => {
  it('onEvent: each newly stored event once, in seq order; duplicates are not repeated', async () => {
    const { peer, events, changes } = await watchedPeer();
    const daemon = await rawDaemon(peer, 'd-1');
    await waitUntil(() => daemon.frames.some((f) => f.op === 'welcome'), WAIT_MS, 'welcome');
    expect(changes).toMatchObject([
      { kind: 'welcomed', hello: { daemon_id: 'd-1', project: { name: 'project-d-1' } } },
    ]);
    expect(peer.storedDaemonId()).toBe('d-1');

    daemon.ws.send(JSON.stringify({ op: 'events', events: [upEvent(1), upEvent(2)] }));
    daemon.ws.send(JSON.stringify({ op: 'events', events: [upEvent(2), upEvent(3)] }));
    await waitUntil(() => peer.storedMax() === 3, WAIT_MS, 'three events stored');
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3]);
    expect(peer.duplicatesSeen()).toBe(1);

    daemon.ws.close(1000);
    await waitUntil(() => changes.some((c) => c.kind === 'closed'), WAIT_MS, 'the close');
    expect(changes.at(-1)).toMatchObject({ kind: 'closed', record: { daemonId: 'd-1', closedWith: 1000 } });
  });

  it('onConnection: a second daemon is refused as failed, with its hello; the first stays stored', async () => {
    const { peer, changes } = await watchedPeer();
    const first = await rawDaemon(peer, 'd-first');
    await waitUntil(() => first.frames.some((f) => f.op === 'welcome'), WAIT_MS, 'welcome of the first');
    const second = await rawDaemon(peer, 'd-second');
    await waitUntil(() => changes.some((c) => c.kind === 'failed'), WAIT_MS, 'the refusal');
    expect(changes.find((c) => c.kind === 'failed')).toMatchObject({
      kind: 'failed',
      code: CloseCode.unknown,
      hello: { daemon_id: 'd-second', project: { name: 'project-d-second' } },
    });
    expect(second.frames.some((f) => f.op === 'welcome')).toBe(false);
    expect(peer.storedDaemonId()).toBe('d-first');
    expect(peer.currentConnection()?.daemonId).toBe('d-first');
  });

  it('adoptDownApplied: a daemon that stored commands before a restart of the gateway is served, and dseqs go on', async () => {
    const strict = await watchedPeer();
    await rawDaemon(strict.peer, 'd-1', 5);
    await waitUntil(() => strict.changes.some((c) => c.kind === 'failed'), WAIT_MS, 'the strict refusal');
    expect(strict.changes.find((c) => c.kind === 'failed')).toMatchObject({ code: CloseCode.cursorInvalid });

    const forgetful = await watchedPeer({ adoptDownApplied: true });
    const daemon = await rawDaemon(forgetful.peer, 'd-1', 5);
    await waitUntil(() => daemon.frames.some((f) => f.op === 'welcome'), WAIT_MS, 'welcome');
    expect(forgetful.peer.sendCommand({ cmd_id: 'c-6', kind: 'run.start', args: { workflow_id: 'w' } })).toBe(
      6,
    );
    await waitUntil(() => daemon.frames.some((f) => f.op === 'command'), WAIT_MS, 'the command');
    expect(daemon.frames.filter((f) => f.op === 'command')).toMatchObject([{ dseq: 6, cmd_id: 'c-6' }]);
    expect(forgetful.peer.commands().map((c) => c.dseq)).toEqual([6]);
  });

  it('adoptDownApplied leaves a hello of another daemon refused', async () => {
    const { peer, changes } = await watchedPeer({ adoptDownApplied: true });
    const first = await rawDaemon(peer, 'd-first');
    await waitUntil(() => first.frames.some((f) => f.op === 'welcome'), WAIT_MS, 'welcome of the first');
    await rawDaemon(peer, 'd-second', 9);
    await waitUntil(() => changes.some((c) => c.kind === 'failed'), WAIT_MS, 'the refusal');
    expect(peer.sendCommand({ cmd_id: 'c-1', kind: 'run.start', args: { workflow_id: 'w' } })).toBe(1);
  });
});
