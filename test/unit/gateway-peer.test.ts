/**
 * The test gateway (GatewayPeer) driven by a raw `ws` client playing the daemon: auth and
 * subprotocol on the upgrade, the hello/welcome handshake, events with credit, dedupe and gaps,
 * invalid frames, commands and their resend, epochs, and every injected fault. Loopback only;
 * every wait has a deadline.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect as netConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RawData, WebSocket } from 'ws';
import { GatewayPeer, type GatewayPeerOptions } from '../../src/gateway-server/gateway-peer.js';
import {
  CloseCode,
  DEFAULT_MAX_FRAME_BYTES,
  GATEWAY_SUBPROTOCOL,
  type UpEvent,
  WelcomeFrameSchema,
} from '../../src/protocol/gateway.js';
import { sleep, waitUntil, withDeadline } from '../support/control-peer.js';

const TOKEN = 'test-token';
const WAIT_MS = 3_000;

type Frame = Record<string, unknown> & { op: string };

const peers: GatewayPeer[] = [];
const daemons: RawDaemon[] = [];

afterEach(async () => {
  for (const daemon of daemons.splice(0)) daemon.ws.terminate();
  await Promise.all(peers.splice(0).map((peer) => withDeadline(peer.stop(), 'GatewayPeer.stop()')));
});

async function startPeer(options: GatewayPeerOptions = {}): Promise<GatewayPeer> {
  const peer = await GatewayPeer.start(options);
  peers.push(peer);
  return peer;
}

function endpoint(peer: GatewayPeer, path = '/v1/daemon'): string {
  return `${peer.url.replace(/^http/, 'ws')}${path}`;
}

interface OpenOptions {
  token?: string | null;
  protocols?: string[];
  path?: string;
  maxPayload?: number;
}

function clientOptions(options: OpenOptions): { headers: Record<string, string>; maxPayload?: number } {
  const token = options.token === undefined ? TOKEN : options.token;
  return {
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
    ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }),
  };
}

/** The daemon side, raw: sends what it is told, records every frame, answers gateway pings. */
class RawDaemon {
  readonly received: Frame[] = [];
  readonly errors: (Error & { code?: string })[] = [];
  closeCode: number | null = null;
  autoPong = true;
  readonly #cursor = new Map<string, number>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => {
      const text = data.toString();
      let frame: Frame;
      try {
        frame = JSON.parse(text) as Frame;
      } catch {
        frame = { op: 'raw', text };
      }
      this.received.push(frame);
      if (this.autoPong && frame.op === 'ping') this.send({ op: 'pong', t: frame.t });
    });
    ws.on('error', (error) => this.errors.push(error));
    ws.on('close', (code) => {
      this.closeCode = code;
    });
  }

  static open(peer: GatewayPeer, options: OpenOptions = {}): Promise<RawDaemon> {
    const ws = new WebSocket(
      endpoint(peer, options.path),
      options.protocols ?? [GATEWAY_SUBPROTOCOL],
      clientOptions(options),
    );
    const opened = new Promise<RawDaemon>((resolve, reject) => {
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        const daemon = new RawDaemon(ws);
        daemons.push(daemon);
        resolve(daemon);
      });
    });
    return withDeadline(opened, 'ws open', WAIT_MS);
  }

  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends hello and resolves with the welcome. */
  async hello(overrides: Record<string, unknown> = {}): Promise<Frame> {
    this.send({
      op: 'hello',
      protocol: 1,
      daemon_id: 'd-1',
      epoch: 1,
      daemon_version: '0.0.0-test',
      project: { name: 'demo' },
      down_applied: 0,
      ...overrides,
    });
    return this.next('welcome');
  }

  /** The next frame with `op` not returned before (per op), waiting up to the deadline. */
  async next(op: string, timeoutMs = WAIT_MS): Promise<Frame> {
    const from = this.#cursor.get(op) ?? 0;
    let found: { frame: Frame; index: number } | undefined;
    await waitUntil(
      () => {
        for (let i = from; i < this.received.length; i += 1) {
          const frame = this.received[i];
          if (frame?.op === op) {
            found = { frame, index: i };
            return true;
          }
        }
        return false;
      },
      `a '${op}' frame (received: ${this.received.map((f) => f.op).join(',')})`,
      timeoutMs,
    );
    if (found === undefined) throw new Error('unreachable');
    this.#cursor.set(op, found.index + 1);
    return found.frame;
  }

  all(op: string): Frame[] {
    return this.received.filter((frame) => frame.op === op);
  }

  /** Round-trip barrier: everything the gateway sent before answering this ping is received. */
  async barrier(): Promise<void> {
    const t = Math.random();
    this.send({ op: 'ping', t });
    await waitUntil(() => this.received.some((f) => f.op === 'pong' && f.t === t), 'pong barrier', WAIT_MS);
  }

  async closed(timeoutMs = WAIT_MS): Promise<number> {
    await waitUntil(() => this.closeCode !== null, 'the connection to close', timeoutMs);
    return this.closeCode ?? -1;
  }
}

/** Attempts an upgrade that should be refused; resolves with the HTTP status and headers. */
function refusedUpgrade(
  peer: GatewayPeer,
  options: OpenOptions = {},
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  const ws = new WebSocket(
    endpoint(peer, options.path),
    options.protocols ?? [GATEWAY_SUBPROTOCOL],
    clientOptions(options),
  );
  ws.on('error', () => {});
  const answer = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
    ws.on('unexpected-response', (req, res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.resume();
      req.destroy();
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
  });
  return withDeadline(answer, 'the upgrade answer', WAIT_MS);
}

/** The raw HTTP response head to an upgrade request. */
function rawUpgradeHead(peer: GatewayPeer, headers: string[]): Promise<string> {
  const url = new URL(peer.url);
  return withDeadline(
    new Promise<string>((resolve, reject) => {
      const socket = netConnect({ host: url.hostname, port: Number(url.port) });
      let text = '';
      socket.on('error', reject);
      socket.on('data', (chunk) => {
        text += chunk.toString();
      });
      socket.on('close', () => resolve(text));
      socket.write(
        [
          'GET /v1/daemon HTTP/1.1',
          `Host: ${url.host}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Version: 13',
          ...headers,
          '',
          '',
        ].join('\r\n'),
      );
    }),
    'raw upgrade response',
    WAIT_MS,
  );
}

function event(seq: number, runId: string | null = 'r-1', runSeq: number | null = seq): UpEvent {
  return {
    seq,
    run_id: runId,
    run_seq: runId === null ? null : runSeq,
    type: 'step.output',
    ts: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    data: { n: seq },
  };
}

function range(from: number, to: number): UpEvent[] {
  const out: UpEvent[] = [];
  for (let seq = from; seq <= to; seq += 1) out.push(event(seq));
  return out;
}

describe('GatewayPeer: the upgrade', () => {
  it('refuses a wrong token and a missing one with 401 and a proper HTTP response', async () => {
    const peer = await startPeer();
    expect(peer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const wrong = await refusedUpgrade(peer, { token: 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await refusedUpgrade(peer, { token: null })).status).toBe(401);

    const head = await rawUpgradeHead(peer, [`Sec-WebSocket-Protocol: ${GATEWAY_SUBPROTOCOL}`]);
    expect(head.startsWith('HTTP/1.1 401 Unauthorized\r\n')).toBe(true);
    expect(head).toContain('\r\nConnection: close\r\n');
    expect(peer.connections).toHaveLength(0);
    expect(peer.upgrades.map((u) => u.status)).toEqual([401, 401, 401]);

    // setToken: the old token is refused from now on, the new one accepted.
    peer.setToken('rotated');
    expect((await refusedUpgrade(peer)).status).toBe(401);
    const daemon = await RawDaemon.open(peer, { token: 'rotated' });
    expect(daemon.ws.protocol).toBe(GATEWAY_SUBPROTOCOL);
  });

  it('refuses an upgrade that does not offer charter.v1 (400), and unknown paths (404)', async () => {
    const peer = await startPeer({ basePath: '/base/' });
    expect(peer.url).toMatch(/\/base$/);
    expect((await refusedUpgrade(peer, { protocols: [] })).status).toBe(400);
    expect((await refusedUpgrade(peer, { protocols: ['charter.v2'] })).status).toBe(400);
    const head = await rawUpgradeHead(peer, [`Authorization: Bearer ${TOKEN}`]);
    expect(head.startsWith('HTTP/1.1 404 Not Found\r\n')).toBe(true); // /v1/daemon without the base
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    expect(peer.connections).toHaveLength(1);
  });

  it('refuseUpgrades(503, 2) answers 503 with Retry-After: 2 until clearRefusal()', async () => {
    const peer = await startPeer();
    peer.refuseUpgrades(503, 2);
    const refused = await refusedUpgrade(peer);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('2');
    peer.refuseUpgrades(429);
    const limited = await refusedUpgrade(peer);
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBeUndefined();
    peer.clearRefusal();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    await peer.waitForConnection(WAIT_MS);
  });
});

describe('GatewayPeer: handshake and events', () => {
  it('answers hello with a welcome carrying its settings, and records the connection', async () => {
    const peer = await startPeer({ hbMs: 500, maxFrame: 64 * 1024, initialCredit: 10 });
    const daemon = await RawDaemon.open(peer);
    const welcome = WelcomeFrameSchema.parse(await daemon.hello({ daemon_id: 'd-7', epoch: 3 }));
    expect(welcome).toMatchObject({ hb_ms: 500, max_frame: 64 * 1024, up_committed: 0, up_limit: 10 });
    expect(Math.abs(Date.parse(welcome.server_time) - Date.now())).toBeLessThan(5_000);
    await peer.waitForConnection(WAIT_MS);
    expect(peer.currentConnection()).toMatchObject({ connId: welcome.conn_id, daemonId: 'd-7', epoch: 3 });
    expect(peer.frames.map((f) => `${f.dir}:${(f.frame as Frame).op}`).slice(0, 2)).toEqual([
      'in:hello',
      'out:welcome',
    ]);
    // The gateway pings every hb_ms and answers pings.
    const ping = await daemon.next('ping', 2_000);
    expect(typeof ping.t).toBe('number');
    await daemon.barrier();
  });

  it('stores events and acks them cumulatively with credit up_limit = storedMax + window', async () => {
    const peer = await startPeer({ initialCredit: 100 });
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    daemon.send({ op: 'events', events: range(1, 3) });
    expect(await daemon.next('ack')).toEqual({ op: 'ack', up: 3, up_limit: 103 });
    daemon.send({ op: 'events', events: [event(4, null), event(5, 'r-2', 1)] });
    expect(await daemon.next('ack')).toEqual({ op: 'ack', up: 5, up_limit: 105 });
    expect(peer.storedMax()).toBe(5);
    expect(peer.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(peer.events[4]).toMatchObject({ run_id: 'r-2', run_seq: 1, data: { n: 5 } });
    expect(peer.runSeqViolations()).toEqual([]);
    expect(peer.protocolErrors).toEqual([]);

    daemon.send({ op: 'events', events: [event(6, 'r-1', 5)] }); // r-1 was at 3
    await daemon.next('ack');
    expect(peer.runSeqViolations()).toEqual([expect.stringContaining('run r-1: seq 6')]);
  });

  it('ignores duplicates but still acks them', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    daemon.send({ op: 'events', events: range(1, 3) });
    await daemon.next('ack');
    daemon.send({ op: 'events', events: range(2, 4) });
    expect(await daemon.next('ack')).toMatchObject({ up: 4 });
    daemon.send({ op: 'events', events: range(1, 2) });
    expect(await daemon.next('ack')).toMatchObject({ up: 4 });
    expect(peer.duplicatesSeen()).toBe(4);
    expect(peer.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(peer.conflictingDuplicates()).toEqual([]);
    // A resend with different content is still a duplicate, and is reported.
    daemon.send({ op: 'events', events: [{ ...event(4), data: { n: 'changed' } }] });
    expect(await daemon.next('ack')).toMatchObject({ up: 4 });
    expect(peer.conflictingDuplicates()).toEqual([
      expect.stringContaining('seq 4 resent with different content'),
    ]);
    expect(daemon.closeCode).toBeNull();
  });

  it('closes with 4006 on a gap and stores nothing of that frame', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    daemon.send({ op: 'events', events: range(1, 2) });
    await daemon.next('ack');
    daemon.send({ op: 'events', events: [event(3), event(5)] });
    expect(await daemon.next('error')).toMatchObject({ code: CloseCode.cursorInvalid });
    expect(await daemon.closed()).toBe(CloseCode.cursorInvalid);
    expect(peer.storedMax()).toBe(2);
    expect(peer.protocolErrors).toEqual([expect.stringContaining('gap: seq 5 after 3')]);
    await peer.waitFor(() => peer.connections[0]?.closedWith === 4006, WAIT_MS, 'closedWith 4006');
  });

  it('closes with 4008 when a seq exceeds the credit, and stopAcking withholds credit', async () => {
    const peer = await startPeer({ initialCredit: 3 });
    const first = await RawDaemon.open(peer);
    expect(await first.hello()).toMatchObject({ up_limit: 3 });
    first.send({ op: 'events', events: range(1, 4) });
    expect(await first.next('error')).toMatchObject({ code: CloseCode.flowControl });
    expect(await first.closed()).toBe(CloseCode.flowControl);
    expect(peer.storedMax()).toBe(0);

    const second = await RawDaemon.open(peer);
    expect(await second.hello()).toMatchObject({ up_committed: 0, up_limit: 3 });
    peer.stopAcking();
    second.send({ op: 'events', events: range(1, 3) });
    await second.barrier();
    expect(peer.storedMax()).toBe(3);
    expect(second.all('ack')).toEqual([]);
    peer.resumeAcking();
    expect(await second.next('ack')).toEqual({ op: 'ack', up: 3, up_limit: 6 });
    peer.stopAcking();
    second.send({ op: 'events', events: range(4, 7) });
    expect(await second.closed()).toBe(CloseCode.flowControl);
    expect(peer.protocolErrors).toHaveLength(2);
  });

  it('delayAcks delays each ack', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    peer.delayAcks(300);
    const sentAt = Date.now();
    daemon.send({ op: 'events', events: range(1, 1) });
    await daemon.barrier();
    expect(daemon.all('ack')).toEqual([]);
    await daemon.next('ack');
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(280);
  });
});

describe('GatewayPeer: invalid frames', () => {
  const cases: { name: string; text: string; why: RegExp; hello: boolean }[] = [
    { name: 'not JSON', text: '{"op":"events",', why: /not JSON/, hello: true },
    { name: 'an unknown op', text: '{"op":"shout","t":1}', why: /invalid frame \(op shout\)/, hello: true },
    { name: 'a bad field', text: '{"op":"cack","down":-1}', why: /invalid frame \(op cack\)/, hello: true },
    {
      name: 'empty events',
      text: '{"op":"events","events":[]}',
      why: /invalid frame \(op events\)/,
      hello: true,
    },
    {
      name: 'events before hello',
      text: JSON.stringify({ op: 'events', events: [event(1)] }),
      why: /before hello/,
      hello: false,
    },
    {
      name: 'a hello missing down_applied',
      text: '{"op":"hello","protocol":1,"daemon_id":"d","epoch":1,"daemon_version":"x","project":{"name":"p"}}',
      why: /invalid frame \(op hello\)/,
      hello: false,
    },
  ];
  for (const testCase of cases) {
    it(`answers ${testCase.name} with error, close 4002 and a protocolErrors entry`, async () => {
      const peer = await startPeer();
      const daemon = await RawDaemon.open(peer);
      if (testCase.hello) await daemon.hello();
      daemon.ws.send(testCase.text);
      const error = await daemon.next('error');
      expect(error.code).toBe(CloseCode.invalidFrame);
      expect(String(error.message)).toMatch(testCase.why);
      expect(await daemon.closed()).toBe(CloseCode.invalidFrame);
      expect(peer.protocolErrors).toEqual([expect.stringMatching(testCase.why)]);
      expect(peer.storedMax()).toBe(0);
    });
  }

  it('closes with 4012 on an unsupported hello.protocol, and rejects a second daemon_id', async () => {
    const peer = await startPeer();
    const old = await RawDaemon.open(peer);
    old.send({
      op: 'hello',
      protocol: 2,
      daemon_id: 'd-1',
      epoch: 1,
      daemon_version: 'x',
      project: { name: 'p' },
      down_applied: 0,
    });
    expect(await old.closed()).toBe(CloseCode.unsupportedProtocol);
    const one = await RawDaemon.open(peer);
    await one.hello({ daemon_id: 'd-1' });
    const other = await RawDaemon.open(peer);
    other.send({
      op: 'hello',
      protocol: 1,
      daemon_id: 'd-2',
      epoch: 1,
      daemon_version: 'x',
      project: { name: 'p' },
      down_applied: 0,
    });
    expect(await other.closed()).toBe(CloseCode.unknown);
    expect(peer.protocolErrors).toHaveLength(2);
    expect(one.closeCode).toBeNull();
  });
});

describe('GatewayPeer: commands', () => {
  it('sends commands in dseq order, resends after a hello with a lower down_applied, not after cack', async () => {
    const peer = await startPeer();
    expect(peer.sendCommand({ cmd_id: 'c-1', kind: 'run.start', args: { workflow_id: 'w' } })).toBe(1);

    const first = await RawDaemon.open(peer);
    await first.hello({ down_applied: 0 });
    expect(await first.next('command')).toMatchObject({ dseq: 1, cmd_id: 'c-1', kind: 'run.start' });
    expect(peer.sendCommand({ cmd_id: 'c-2', kind: 'run.cancel', run_id: 'r-1', args: {} })).toBe(2);
    expect(await first.next('command')).toMatchObject({ dseq: 2, cmd_id: 'c-2', run_id: 'r-1' });
    first.send({ op: 'cack', down: 1 });
    first.send({ op: 'cack', down: 2 });
    await peer.waitFor(() => peer.commandAcks.length === 2, WAIT_MS, 'two cacks');
    expect(peer.commandAcks).toEqual([1, 2]);
    first.ws.close(1000);
    expect(await first.closed()).toBe(1000);

    // The daemon only durably applied dseq 1: the gateway resends dseq 2.
    const second = await RawDaemon.open(peer);
    await second.hello({ down_applied: 1 });
    await second.barrier();
    expect(second.all('command').map((c) => c.dseq)).toEqual([2]);
    second.send({ op: 'cack', down: 2 });
    second.ws.close(1000);
    await second.closed();

    // Everything applied: nothing is resent.
    const third = await RawDaemon.open(peer);
    await third.hello({ down_applied: 2 });
    await third.barrier();
    expect(third.all('command')).toEqual([]);
    expect(peer.protocolErrors).toEqual([]);
    expect(peer.commandAcks).toEqual([1, 2, 2]);
  });

  it('sendRawCommand queues a frame as written under the next dseq, resent like any command', async () => {
    const peer = await startPeer();
    peer.sendCommand({ cmd_id: 'c-1', kind: 'run.start', args: { workflow_id: 'w' } });
    const raw = (dseq: number) =>
      `{"op":"command","dseq":${dseq},"cmd_id":"c-2","kind":"run.teleport","args":[1]}`;
    expect(peer.sendRawCommand(raw)).toBe(2);
    expect(peer.sendCommand({ cmd_id: 'c-3', kind: 'run.cancel', run_id: 'r-1', args: {} })).toBe(3);
    // Raw commands are left out of commands(); the dseq they took is not reused.
    expect(peer.commands().map((c) => c.dseq)).toEqual([1, 3]);

    const first = await RawDaemon.open(peer);
    await first.hello({ down_applied: 1 });
    await first.barrier();
    expect(first.all('command')).toEqual([
      { op: 'command', dseq: 2, cmd_id: 'c-2', kind: 'run.teleport', args: [1] },
      expect.objectContaining({ dseq: 3, cmd_id: 'c-3' }),
    ]);
    first.ws.close(1000);
    await first.closed();

    const second = await RawDaemon.open(peer);
    await second.hello({ down_applied: 1 });
    await second.barrier();
    expect(second.all('command').map((c) => c.dseq)).toEqual([2, 3]);
    expect(peer.protocolErrors).toEqual([]);
    // Every frame is recorded with its size on the wire.
    const sent = peer.frames.find((f) => f.dir === 'out' && (f.frame as { dseq?: number }).dseq === 2);
    expect(sent?.bytes).toBe(Buffer.byteLength(raw(2)));
  });

  it('rejects a cack beyond what was sent (4006)', async () => {
    const peer = await startPeer();
    peer.sendCommand({
      cmd_id: 'c-1',
      kind: 'gate.decide',
      run_id: 'r',
      args: { step_id: 's', decision: 'approve' },
    });
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    await daemon.next('command');
    daemon.send({ op: 'cack', down: 5 });
    expect(await daemon.closed()).toBe(CloseCode.cursorInvalid);
    expect(peer.protocolErrors).toEqual([expect.stringContaining('cack.down 5')]);
  });
});

describe('GatewayPeer: epochs', () => {
  it('closes the older connection with 4005 when a newer epoch says hello, and refuses an older epoch', async () => {
    const peer = await startPeer();
    const a = await RawDaemon.open(peer);
    await a.hello({ epoch: 1 });
    const b = await RawDaemon.open(peer);
    await b.hello({ epoch: 2 });
    expect(await a.next('error')).toMatchObject({ code: CloseCode.superseded });
    expect(await a.closed()).toBe(CloseCode.superseded);

    const c = await RawDaemon.open(peer);
    c.send({
      op: 'hello',
      protocol: 1,
      daemon_id: 'd-1',
      epoch: 1,
      daemon_version: 'x',
      project: { name: 'p' },
      down_applied: 0,
    });
    expect(await c.closed()).toBe(CloseCode.superseded);
    expect(c.all('welcome')).toEqual([]);
    expect(b.closeCode).toBeNull();
    await peer.waitFor(
      () => peer.connections.filter((x) => x.closedWith === 4005).length === 2,
      WAIT_MS,
      'two 4005',
    );
    expect(peer.connections.map((x) => [x.epoch, x.closedWith])).toEqual([
      [1, 4005],
      [2, null],
      [1, 4005],
    ]);
    expect(peer.currentConnection()?.epoch).toBe(2);
    expect(peer.protocolErrors).toEqual([]);
  });
});

describe('GatewayPeer: faults', () => {
  it('zombie: no pongs, no pings, connection kept; waking up answers what queued', async () => {
    const peer = await startPeer({ hbMs: 200 });
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    await daemon.barrier();
    peer.zombie(true);
    const before = daemon.received.length;
    daemon.send({ op: 'ping', t: 42 });
    await sleep(700); // > 3 heartbeats: a live gateway would have pinged (and answered) by now
    expect(daemon.received.length).toBe(before);
    expect(daemon.closeCode).toBeNull();
    expect(daemon.ws.readyState).toBe(WebSocket.OPEN);
    peer.zombie(false);
    await waitUntil(
      () => daemon.received.some((f) => f.op === 'pong' && f.t === 42),
      'the late pong',
      WAIT_MS,
    );
  });

  it('closes with 4009 when the daemon sends nothing for 2 × hb_ms', async () => {
    const peer = await startPeer({ hbMs: 150 });
    const daemon = await RawDaemon.open(peer);
    daemon.autoPong = false;
    await daemon.hello();
    await daemon.next('ping');
    expect(await daemon.closed()).toBe(CloseCode.heartbeatTimeout);
    expect(peer.protocolErrors).toEqual([]);
  });

  it('closeMidBatch stores the first half of the next events frame, then terminates', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    peer.closeMidBatch();
    daemon.send({ op: 'events', events: range(1, 4) });
    expect(await daemon.closed()).toBe(1006);
    expect(peer.storedMax()).toBe(2);
    expect(daemon.all('ack')).toEqual([]);
    const again = await RawDaemon.open(peer);
    expect(await again.hello()).toMatchObject({ up_committed: 2 });
    again.send({ op: 'events', events: range(3, 4) });
    expect(await again.next('ack')).toMatchObject({ up: 4 });
    expect(peer.duplicatesSeen()).toBe(0);
  });

  it('restart keeps the stored events, the commands and the port', async () => {
    const peer = await startPeer();
    const url = peer.url;
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    daemon.send({ op: 'events', events: range(1, 3) });
    await daemon.next('ack');
    peer.sendCommand({
      cmd_id: 'c-1',
      kind: 'input.submit',
      run_id: 'r-1',
      args: { step_id: 's', answers: {} },
    });
    await daemon.next('command');
    await withDeadline(peer.restart(), 'restart');
    expect(await daemon.closed()).toBe(1006);
    expect(peer.url).toBe(url);
    const again = await RawDaemon.open(peer);
    expect(await again.hello()).toMatchObject({ up_committed: 3 });
    expect(await again.next('command')).toMatchObject({ dseq: 1, cmd_id: 'c-1' });
    again.send({ op: 'events', events: range(3, 4) });
    expect(await again.next('ack')).toMatchObject({ up: 4 });
    expect(peer.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(peer.connections.map((c) => c.closedWith)).toEqual([1006, null]);
  });

  it('restart(downMs) refuses connections while it is down, then serves on the same port', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    const restarted = peer.restart(300);
    expect(await daemon.closed()).toBe(1006);
    await expect(RawDaemon.open(peer)).rejects.toThrow(/ECONNREFUSED/);
    await withDeadline(restarted, 'restart(300)');
    const again = await RawDaemon.open(peer);
    expect(await again.hello()).toMatchObject({ op: 'welcome' });
  });

  it('dropConnections accepts each upgrade and drops it, before any frame or right after welcome', async () => {
    const peer = await startPeer();
    peer.dropConnections('upgrade');
    const early = await RawDaemon.open(peer); // the upgrade was accepted
    expect(await early.closed()).toBe(1006);
    expect(early.received).toEqual([]);

    peer.dropConnections('welcome');
    const late = await RawDaemon.open(peer);
    expect(await late.hello()).toMatchObject({ op: 'welcome' });
    expect(await late.closed()).toBe(1006);
    expect(late.received.map((f) => f.op)).toEqual(['welcome']);

    peer.dropConnections(null);
    const served = await RawDaemon.open(peer);
    await served.hello();
    await served.barrier();
    expect(served.closeCode).toBeNull();
    expect(peer.upgrades.map((u) => u.status)).toEqual([101, 101, 101]);
  });

  it('sendRaw, sendOversized and close(code) reach the daemon as such', async () => {
    const peer = await startPeer();
    const daemon = await RawDaemon.open(peer, { maxPayload: DEFAULT_MAX_FRAME_BYTES });
    await daemon.hello();
    peer.sendRaw('{"op":"nonsense"');
    expect(await daemon.next('raw')).toEqual({ op: 'raw', text: '{"op":"nonsense"' });
    peer.sendOversized();
    expect(await daemon.closed()).toBe(1006); // the daemon's ws fails the connection (1009 sent)
    expect(daemon.errors.map((e) => e.code)).toContain('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');

    const second = await RawDaemon.open(peer);
    await second.hello();
    peer.close(CloseCode.draining, 'draining');
    expect(await second.next('error')).toEqual({ op: 'error', code: 4013, message: 'draining' });
    expect(await second.closed()).toBe(4013);
    expect(() => peer.close(4004)).toThrow(/no open connection/);
  });

  it('a daemon frame over max_frame is refused by ws (1009) and recorded', async () => {
    const peer = await startPeer({ maxFrame: 4096 });
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    daemon.send({ op: 'events', events: [{ ...event(1), data: 'x'.repeat(5000) }] });
    expect(await daemon.closed()).toBe(1009);
    expect(peer.protocolErrors).toEqual([expect.stringContaining('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')]);
    expect(peer.storedMax()).toBe(0);
  });

  it('stop is idempotent and keeps the frame log bounded', async () => {
    const peer = await startPeer({ initialCredit: 20_000 });
    const daemon = await RawDaemon.open(peer);
    await daemon.hello();
    for (let seq = 1; seq <= 5_100; seq += 1) daemon.send({ op: 'events', events: [event(seq)] });
    await peer.waitFor(() => peer.storedMax() === 5_100, 10_000, 'all events stored');
    expect(peer.frames).toHaveLength(10_000);
    await Promise.all([peer.stop(), peer.stop()]);
    await peer.stop();
    expect(await daemon.closed()).toBe(1006);
  });
});
