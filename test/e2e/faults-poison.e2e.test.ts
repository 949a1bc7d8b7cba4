/**
 * Poison commands against the built daemon: a `command` frame with a sound envelope (dseq,
 * cmd_id) but contents the daemon cannot use — args nested 10,000 deep, an unknown kind, args
 * over 64 KiB, args that are not an object — is stored, acknowledged and answered `rejected` on
 * the same connection, so it can never come back after a reconnect and wedge the link. `null`
 * counts as absent (`run_id: null` on a run.start is applied). Only a frame without a usable
 * envelope is a protocol error (4002), and the link comes back after it.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import { CloseCode } from '../../src/protocol/gateway.js';
import { assertBuilt, daemonPids, destroyProject } from '../support/cli.js';
import {
  type CommandResult,
  caughtUpStore,
  commandResults,
  faultProject,
  GATEWAY_TOKEN,
  readStore,
  startDaemon,
  untilRun,
} from '../support/fault-daemon.js';

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const DEPTH = 10_000;

/** Sends a raw command under the next dseq; resolves with its result once it is upstream. */
async function send(
  peer: GatewayPeer,
  cmdId: string,
  fields: (dseq: number) => string,
): Promise<{ dseq: number; result: CommandResult }> {
  const dseq = peer.sendRawCommand(fields);
  await peer.waitFor(
    () => commandResults(peer.events).some((result) => result.cmd_id === cmdId),
    10_000,
    `the result of ${cmdId}`,
  );
  const result = commandResults(peer.events).find((r) => r.cmd_id === cmdId) as CommandResult;
  return { dseq, result };
}

/** `{"op":"command","dseq":…,"cmd_id":…,` + rest: the envelope, then contents written as is. */
function frame(cmdId: string, rest: string): (dseq: number) => string {
  return (dseq) => `{"op":"command","dseq":${dseq},"cmd_id":${JSON.stringify(cmdId)},${rest}}`;
}

describe('poison commands', () => {
  it('are acknowledged and answered on the same connection; null is absent; a normal command then applies', async () => {
    const peer = await GatewayPeer.start({ token: GATEWAY_TOKEN, hbMs: 2000 });
    cleanups.push(() => peer.stop());
    const root = faultProject();
    cleanups.push(() => destroyProject(root));
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    const [pid] = daemonPids(root);
    const connection = peer.currentConnection();

    const poisons: [string, string, RegExp][] = [
      [
        'deep',
        `"kind":"gate.decide","run_id":"r01M80000000000000000000000","args":${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}`,
        /nested deeper than/,
      ],
      ['unknown-kind', '"kind":"run.teleport","args":{"workflow_id":"hold"}', /kind/],
      [
        'oversized',
        `"kind":"run.start","args":${JSON.stringify({ workflow_id: 'blob', inputs: { blob: 'x'.repeat(100 * 1024) } })}`,
        /bytes of JSON/,
      ],
      ['args-array', '"kind":"run.start","args":["hold"]', /args must be an object/],
      ['args-string', '"kind":"run.start","args":"hold"', /args must be an object/],
    ];
    for (const [cmdId, rest, why] of poisons) {
      const { dseq, result } = await send(peer, cmdId, frame(cmdId, rest));
      expect(result, cmdId).toMatchObject({
        status: 'rejected',
        error: { code: 'INVALID_PARAMS', message: expect.stringMatching(why) },
      });
      expect(Math.max(...peer.commandAcks), `${cmdId} acknowledged`).toBeGreaterThanOrEqual(dseq);
    }

    // run_id: null counts as absent: applied, and the run starts.
    const { result: started } = await send(
      peer,
      'null-run-id',
      frame('null-run-id', '"kind":"run.start","run_id":null,"args":{"workflow_id":"hold","inputs":{}}'),
    );
    expect(started).toMatchObject({ status: 'applied', run_id: expect.any(String) });
    await untilRun(root, started.run_id ?? '', (run) => run.state === 'waiting', 'waiting at its gate');

    // The link held: one connection, never closed, no protocol error on either side.
    expect(peer.currentConnection()?.connId).toBe(connection?.connId);
    expect(peer.connections).toHaveLength(1);
    expect(peer.protocolErrors).toEqual([]);
    expect(daemonPids(root)).toEqual([pid]);

    // A normal command afterwards is applied, on the same connection.
    peer.sendCommand({
      cmd_id: 'normal',
      kind: 'gate.decide',
      run_id: started.run_id,
      args: { step_id: 'hold', decision: 'approve' },
    });
    await untilRun(root, started.run_id ?? '', (run) => run.state === 'succeeded', 'succeeded');
    await caughtUpStore(root, peer);
    expect(commandResults(peer.events).find((r) => r.cmd_id === 'normal')).toMatchObject({
      status: 'applied',
    });
    expect(peer.connections).toHaveLength(1);

    // Each command answered once; the store keeps bounded copies of what was refused.
    const { inbox } = readStore(root);
    expect(inbox.map((row) => [row.cmd_id, row.status])).toEqual([
      ['deep', 'rejected'],
      ['unknown-kind', 'rejected'],
      ['oversized', 'rejected'],
      ['args-array', 'rejected'],
      ['args-string', 'rejected'],
      ['null-run-id', 'applied'],
      ['normal', 'applied'],
    ]);
    for (const row of inbox) expect(Buffer.byteLength(row.args), row.cmd_id).toBeLessThanOrEqual(4096);
    const results = commandResults(peer.events);
    for (const row of inbox)
      expect(
        results.filter((r) => r.cmd_id === row.cmd_id),
        row.cmd_id,
      ).toHaveLength(1);
  });

  it('a command without a usable envelope (no dseq) is a protocol error (4002); the link comes back', async () => {
    const peer = await GatewayPeer.start({ token: GATEWAY_TOKEN, hbMs: 2000 });
    cleanups.push(() => peer.stop());
    const root = faultProject();
    cleanups.push(() => destroyProject(root));
    await startDaemon(root, { gateway: peer });
    await peer.waitForConnection(10_000);
    const first = peer.connections.at(-1);

    peer.sendRaw(JSON.stringify({ op: 'command', cmd_id: 'no-dseq', kind: 'run.start', args: {} }));
    await peer.waitFor(() => first?.closedAt !== null, 10_000, 'the daemon to close the link');
    expect(first?.closedWith).toBe(CloseCode.invalidFrame);
    await peer.waitFor(() => peer.connections.length === 2, 15_000, 'a new connection');
    await peer.waitForConnection(15_000);

    // Nothing of it was stored or answered; the next command is applied.
    peer.sendCommand({ cmd_id: 'after', kind: 'run.start', args: { workflow_id: 'hold' } });
    await peer.waitFor(
      () => commandResults(peer.events).some((r) => r.cmd_id === 'after'),
      10_000,
      'the next command applied',
    );
    expect(commandResults(peer.events).map(({ cmd_id, status }) => ({ cmd_id, status }))).toEqual([
      { cmd_id: 'after', status: 'applied' },
    ]);
    expect(readStore(root).inbox.map((row) => row.cmd_id)).toEqual(['after']);
  });
});
