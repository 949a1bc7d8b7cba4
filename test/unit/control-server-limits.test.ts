/**
 * ControlServer under hostile load, on real Unix sockets: clients that never read their answers
 * (the total cap drops the slowest, streams are abandoned, a reading client is untouched),
 * streams that wait for room, clients that flood lines (parse work is shared in fair turns), and
 * a shortage of file descriptors (refusals, one log line per episode, recovery).
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ControlCall,
  ControlServer,
  type ControlServerLogger,
  type ControlServerOptions,
  PARSE_SLICE,
  STREAM_HIGH_WATER_BYTES,
} from '../../src/control/server.js';
import { RawPeer, type TempSocket, tempSocket, waitUntil, withDeadline } from '../support/control-peer.js';

const temps: TempSocket[] = [];
const servers: ControlServer[] = [];
const sockets: Socket[] = [];
const peers: RawPeer[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const peer of peers.splice(0)) peer.destroy();
  await Promise.all(servers.splice(0).map((server) => withDeadline(server.close(), 'close()')));
  for (const temp of temps.splice(0)) temp.cleanup();
});

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** A distinct valid run id per client, so a call tells which client sent it. */
const runId = (n: number): string =>
  `r01M896E058V48J02EPW2HVZJ${CROCKFORD[Math.floor(n / 32)]}${CROCKFORD[n % 32]}`;
const hello = `${JSON.stringify({ id: 0, method: 'hello', params: { protocol: 1, client_version: 't' } })}\n`;
const logsRequest = (n: number): string =>
  `${JSON.stringify({ id: 1, method: 'run.logs', params: { run_id: runId(n) } })}\n`;

async function startServer(
  options: Partial<ControlServerOptions> & Pick<ControlServerOptions, 'dispatch'>,
): Promise<ControlServer> {
  const temp = tempSocket();
  temps.push(temp);
  const server = new ControlServer({ socketPath: temp.socketPath, daemonVersion: 't', pid: 1, ...options });
  servers.push(server);
  await server.listen();
  return server;
}

const socketPathOf = (): string => temps.at(-1)?.socketPath as string;

/** A client that writes `lines` and never reads what comes back (until `resume()`). */
function nonReader(lines: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPathOf() });
    sockets.push(socket);
    socket.pause();
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(lines);
      resolve(socket);
    });
  });
}

/** Collects the lines a socket receives once it reads. */
function collectLines(socket: Socket): string[] {
  const lines: string[] = [];
  let rest = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts);
  });
  socket.resume();
  return lines;
}

const CHUNK = 'x'.repeat(128 * 1024);

describe('ControlServer: clients that do not read', () => {
  it('drops the slowest readers past the total cap, abandons their streams, and leaves a reading client alone', async () => {
    const cap = 2 * 1024 * 1024;
    const streamBytes = 3 * 1024 * 1024;
    const abandoned = new Set<string>();
    const keyOf = new Map<number, string>();
    let maxBuffered = 0;
    let server: ControlServer | undefined;
    /** A producer that ignores backpressure: 128 KiB items until done or its client is gone. */
    const produce = (call: ControlCall, n: number) => {
      let sent = 0;
      const next = () => {
        if (server === undefined) return;
        if (sent >= streamBytes) {
          server.reply(call.key, { result: { done: true } });
          return;
        }
        sent += CHUNK.length;
        const alive = server.reply(call.key, { result: { n, chunk: CHUNK }, more: true });
        maxBuffered = Math.max(maxBuffered, server.bufferedBytes);
        if (alive) setImmediate(next);
      };
      next();
    };
    server = await startServer({
      maxTotalBufferedBytes: cap,
      closeGraceMs: 30_000,
      abandon: (key) => abandoned.add(key),
      dispatch: (call) => {
        const n = CROCKFORD.indexOf((call.params as { run_id: string }).run_id.at(-1) ?? '');
        keyOf.set(n, call.key);
        produce(call, n);
      },
    });

    // Six clients that never read, each asking for a 3 MiB stream: 18 MiB against a 2 MiB cap.
    const silent = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => nonReader(hello + logsRequest(n))));
    const victims = new Map<number, string[]>();
    await waitUntil(() => server.figures.dropped_slow_clients >= 3, 'slow clients to be dropped', 10_000);
    // A dropped client that reads now gets what its socket held, then CLIENT_TOO_SLOW.
    for (const [n, key] of keyOf) {
      if (abandoned.has(key)) victims.set(n, collectLines(silent[n] as Socket));
    }

    // A client that reads its stream, started while the silent ones hold their backlogs.
    const reader = await RawPeer.connect(socketPathOf());
    peers.push(reader);
    await reader.write(hello + logsRequest(9));
    const last = await reader.waitForLine(
      (line) => (line.result as { done?: boolean } | undefined)?.done === true || line.ok === false,
      'the reading client to get its whole stream',
      20_000,
    );
    expect(last).toMatchObject({ id: 1, ok: true, result: { done: true } });
    expect(reader.json.filter((line) => line.more === true)).toHaveLength(streamBytes / CHUNK.length);
    expect(abandoned.has(keyOf.get(9) as string)).toBe(false);

    expect(maxBuffered).toBeLessThanOrEqual(cap);
    expect(server.bufferedBytes).toBeLessThanOrEqual(cap);
    const figures = server.figures;
    expect(figures.max_buffered_bytes).toBe(cap);
    // Every dropped client's stream was abandoned, and only theirs.
    expect(abandoned.size).toBe(figures.dropped_slow_clients);
    expect(victims.size).toBeGreaterThanOrEqual(3);
    for (const [n, lines] of victims) {
      await waitUntil(
        () => lines.some((line) => line.includes('CLIENT_TOO_SLOW')),
        `dropped client ${n} to read CLIENT_TOO_SLOW`,
      );
      const error = JSON.parse(lines.find((line) => line.includes('CLIENT_TOO_SLOW')) as string);
      expect(error).toMatchObject({ id: null, ok: false, error: { code: 'CLIENT_TOO_SLOW' } });
      expect(error.error.hint).toContain('slowest readers');
    }
  });

  it('lets a stream wait for room: a silent client holds little, then gets everything once it reads', async () => {
    const items = 64;
    let produced = 0;
    let server: ControlServer | undefined;
    server = await startServer({
      dispatch: (call) => {
        const next = (): void => {
          for (;;) {
            if (server === undefined) return;
            if (produced === items) {
              server.reply(call.key, { result: { done: true } });
              return;
            }
            produced++;
            if (!server.reply(call.key, { result: { chunk: CHUNK }, more: true })) return;
            if (server.waitForRoom(call.key, next)) return;
          }
        };
        next();
      },
    });
    const socket = await nonReader(hello + logsRequest(0));
    await waitUntil(
      () => produced > 0 && server.bufferedBytes >= STREAM_HIGH_WATER_BYTES,
      'the stream to pause',
    );
    // Paused at the high-water mark (plus the item that crossed it), not 8 MiB of items.
    expect(produced).toBeLessThan(items / 2);
    expect(server.bufferedBytes).toBeLessThanOrEqual(STREAM_HIGH_WATER_BYTES + CHUNK.length + 1024);
    const lines = collectLines(socket);
    await waitUntil(() => lines.some((line) => line.includes('"done":true')), 'the whole stream', 10_000);
    expect(lines.filter((line) => line.includes('"more":true'))).toHaveLength(items);
    expect(server.figures.dropped_slow_clients).toBe(0);
  });
});

describe('ControlServer: fair parse work', () => {
  /** Flooders that write `line` over and over as fast as the socket takes it, reading every answer. */
  async function flood(count: number, line: string): Promise<() => void> {
    let stopped = false;
    const flooders = await Promise.all(
      Array.from({ length: count }, async () => {
        const peer = await RawPeer.connect(socketPathOf());
        peers.push(peer);
        await peer.write(hello);
        const pump = () => {
          while (!stopped && !peer.socket.destroyed && peer.socket.write(line)) {
            // keep writing until the socket asks for a drain
          }
        };
        peer.socket.on('drain', pump);
        pump();
        return peer;
      }),
    );
    return () => {
      stopped = true;
      for (const peer of flooders) peer.destroy();
    };
  }

  async function statusDuringFlood(floodLine: string, flooders: number): Promise<number> {
    let floodHandled = 0;
    let atQuietStatus: number | undefined;
    let server: ControlServer | undefined;
    server = await startServer({
      dispatch: (call) => {
        if (call.method === 'runs.list') floodHandled++;
        if (call.method === 'status') atQuietStatus ??= floodHandled;
        server?.reply(call.key, { result: {} });
      },
    });
    const stop = await flood(flooders, floodLine);
    try {
      await waitUntil(() => floodHandled >= flooders * 4, 'the flood to be under way', 20_000);
      const quiet = await RawPeer.connect(socketPathOf());
      peers.push(quiet);
      await quiet.write(hello);
      await quiet.waitForLines(1, 20_000);
      await quiet.send({ id: 1, method: 'status', params: {} });
      const sentAt = floodHandled;
      const answer = await quiet.waitForLine((line) => line.id === 1, 'the quiet status', 20_000);
      expect(answer).toMatchObject({ id: 1, ok: true });
      return (atQuietStatus as number) - sentAt;
    } finally {
      stop();
    }
  }

  it('answers a status from another client after at most a slice of each flooder (1 MiB lines)', async () => {
    const pad = 'p'.repeat(1_000_000);
    const line = `${JSON.stringify({ id: 'f', method: 'runs.list', params: {}, pad })}\n`;
    const flooders = 4;
    const between = await statusDuringFlood(line, flooders);
    // One line each per turn; the status can arrive just after a turn began: two turns at most.
    expect(between).toBeLessThanOrEqual(2 * flooders);
  });

  it('answers a status from another client promptly while flooders send thousands of small lines', async () => {
    const line = `${JSON.stringify({ id: 'f', method: 'runs.list', params: {} })}\n`;
    const flooders = 4;
    const between = await statusDuringFlood(line.repeat(1000), flooders);
    // Handling every complete line of every chunk at once would be thousands per flooder.
    expect(between).toBeLessThanOrEqual(2 * flooders * PARSE_SLICE.lines);
  });
});

describe('ControlServer: out of file descriptors', () => {
  it('refuses new connections at once while descriptors are short, logs once per episode, and recovers', async () => {
    let open = 95;
    const logged: { level: string; msg: string }[] = [];
    const logger: ControlServerLogger = {
      debug: () => {},
      info: (_obj, msg) => logged.push({ level: 'info', msg }),
      warn: (_obj, msg) => logged.push({ level: 'warn', msg }),
    };
    const server = await startServer({
      logger,
      dispatch: () => {},
      descriptors: { descriptorUse: () => ({ open, limit: 100 }), minBackoffMs: 10, maxBackoffMs: 50 },
    });
    for (let attempt = 0; attempt < 5; attempt++) {
      const peer = await RawPeer.connect(socketPathOf());
      peers.push(peer);
      const [refusal] = await peer.waitForLines(1);
      expect(refusal).toMatchObject({ id: null, ok: false, error: { code: 'TOO_MANY_CLIENTS' } });
      expect(refusal?.error?.message).toContain('short of file descriptors');
      expect(refusal?.error?.message).toContain('95 of 100 file descriptors open');
      await peer.waitForClose();
    }
    expect(server.figures).toMatchObject({ accepting: false, accept_errors: 5, connections: 0 });
    expect(server.figures.next_accept_retry_at).not.toBeNull();
    // Retries found no descriptors meanwhile, and said nothing more.
    expect(logged.filter((entry) => entry.msg.includes('file descriptors'))).toHaveLength(1);

    // Below the reserve again, but not yet twice the reserve free: retries keep refusing.
    open = 75;
    const retries = new Set<string | null>();
    await waitUntil(() => {
      retries.add(server.figures.next_accept_retry_at);
      return retries.size >= 3;
    }, 'two more retries');
    expect(server.figures.accepting).toBe(false);
    open = 20;
    await waitUntil(() => server.figures.accepting, 'the server to accept again');
    const peer = await RawPeer.connect(socketPathOf());
    peers.push(peer);
    await peer.hello(0);
    const [answer] = await peer.waitForLines(1);
    expect(answer).toMatchObject({ id: 0, ok: true });
    expect(server.figures).toMatchObject({ accepting: true, accept_errors: 5, connections: 1 });
    expect(server.figures.last_accept_error).toContain('EMFILE');
    expect(
      logged.filter((entry) => entry.level === 'info' && entry.msg.includes('accepting again')),
    ).toHaveLength(1);
  });
});
