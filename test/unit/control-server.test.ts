import { existsSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ControlConnection } from '../../src/client/connection.js';
import { type ControlCall, ControlServer, type ControlServerOptions } from '../../src/control/server.js';
import { CharterError, MESSAGE_CUT_MARKER } from '../../src/errors/charter-error.js';
import { MAX_CONTROL_LINE_BYTES } from '../../src/protocol/control.js';
import { MAX_JSON_DEPTH } from '../../src/protocol/json-limits.js';
import {
  type FakeDaemon,
  RawPeer,
  sleep,
  startFakeDaemon,
  type TempSocket,
  tempSocket,
  waitUntil,
  withDeadline,
} from '../support/control-peer.js';

const DAEMON_VERSION = '9.9.9-test';
const DAEMON_PID = 4242;
const StatusSchema = z.object({ state: z.string(), pid: z.number(), n: z.number() });

const temps: TempSocket[] = [];
const servers: ControlServer[] = [];
const peers: RawPeer[] = [];
const connections: ControlConnection[] = [];
const fakes: FakeDaemon[] = [];
const rawSockets: Socket[] = [];

afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  for (const peer of peers.splice(0)) peer.destroy();
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all([
    ...servers.splice(0).map((server) => withDeadline(server.close(), 'ControlServer.close()')),
    ...fakes.splice(0).map((fake) => withDeadline(fake.close(), 'fake daemon close')),
  ]);
  for (const temp of temps.splice(0)) temp.cleanup();
});

function newTemp(): TempSocket {
  const temp = tempSocket();
  temps.push(temp);
  return temp;
}

interface Harness {
  readonly server: ControlServer;
  readonly socketPath: string;
  /** Every dispatched call, in order. `status` is answered at once; `stop` never is. */
  readonly calls: ControlCall[];
}

async function startServer(options: Partial<ControlServerOptions> = {}): Promise<Harness> {
  const { socketPath } = newTemp();
  const calls: ControlCall[] = [];
  let statusCount = 0;
  const server: ControlServer = new ControlServer({
    socketPath,
    daemonVersion: DAEMON_VERSION,
    pid: DAEMON_PID,
    dispatch: (call) => {
      calls.push(call);
      if (call.method === 'status') {
        server.reply(call.key, { result: { state: 'serving', pid: DAEMON_PID, n: ++statusCount } });
      }
      // `stop` is left unanswered: it is the "request in flight" of these tests.
    },
    ...options,
  });
  servers.push(server);
  await server.listen();
  return { server, socketPath, calls };
}

async function peer(socketPath: string): Promise<RawPeer> {
  const p = await RawPeer.connect(socketPath);
  peers.push(p);
  return p;
}

/** A raw peer that has said hello and read the answer. */
async function greetedPeer(socketPath: string): Promise<RawPeer> {
  const p = await peer(socketPath);
  await p.hello(0);
  const [hello] = await p.waitForLines(1);
  expect(hello).toMatchObject({ id: 0, ok: true, result: { protocol: 1 } });
  return p;
}

async function open(socketPath: string, helloTimeoutMs = 5_000): Promise<ControlConnection> {
  const connection = await ControlConnection.open({ socketPath, clientVersion: 'test-cli', helloTimeoutMs });
  connections.push(connection);
  return connection;
}

/** The CharterError `promise` rejects with (fails the test if it resolves or rejects otherwise). */
async function charterError(promise: Promise<unknown>): Promise<CharterError> {
  const error = await withDeadline(
    promise.then(
      () => undefined,
      (e: unknown) => e,
    ),
    'the promise to reject',
  );
  expect(error).toBeInstanceOf(CharterError);
  return error as CharterError;
}

describe('ControlServer', () => {
  it('creates the socket file with mode 0600 and restores the umask', async () => {
    const umaskBefore = process.umask(0o022);
    process.umask(umaskBefore);
    const { socketPath } = await startServer();
    const stat = statSync(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    const umaskAfter = process.umask(0o022);
    process.umask(umaskAfter);
    expect(umaskAfter).toBe(umaskBefore);
  });

  it('cuts an error message over 64 KiB in the reply, so the client can still read it', async () => {
    let server: ControlServer | undefined;
    const harness = await startServer({
      dispatch: (call) => {
        server?.reply(call.key, {
          error: { code: 'INVALID_INPUTS', message: `refused:\n${'  - x: unknown input\n'.repeat(100_000)}` },
        });
      },
    });
    server = harness.server;
    const connection = await open(harness.socketPath);
    const error = await charterError(connection.request('status', {}, z.unknown(), { timeoutMs: 5_000 }));
    expect(error.code).toBe('INVALID_INPUTS');
    expect(error.message.startsWith('refused:\n  - x: unknown input')).toBe(true);
    expect(error.message.endsWith(MESSAGE_CUT_MARKER)).toBe(true);
    expect(Buffer.byteLength(error.message)).toBeLessThanOrEqual(64 * 1024);
  });

  it('answers hello then status through ControlConnection', async () => {
    const { socketPath, calls } = await startServer();
    const connection = await open(socketPath);
    expect(connection.hello).toEqual({ protocol: 1, daemon_version: DAEMON_VERSION, pid: DAEMON_PID });
    const status = await connection.request('status', {}, StatusSchema, { timeoutMs: 5_000 });
    expect(status).toEqual({ state: 'serving', pid: DAEMON_PID, n: 1 });
    const again = await connection.request('status', {}, z.unknown(), { timeoutMs: 5_000 });
    expect(again).toEqual({ state: 'serving', pid: DAEMON_PID, n: 2 });
    expect(calls.map((call) => [call.method, call.params])).toEqual([
      ['status', {}],
      ['status', {}],
    ]);
    expect(new Set(calls.map((call) => call.key)).size).toBe(2);
  });

  it('refuses a request before hello with HELLO_REQUIRED and closes the connection', async () => {
    const { socketPath, calls } = await startServer();
    const p = await peer(socketPath);
    await p.send({ id: 1, method: 'status' });
    const [line] = await p.waitForLines(1);
    expect(line).toMatchObject({ id: 1, ok: false, error: { code: 'HELLO_REQUIRED' } });
    expect(line?.error?.hint).toContain('hello');
    await p.waitForClose();
    expect(p.lines).toHaveLength(1);
    expect(calls).toEqual([]);
  });

  it('does not act on lines that follow a closing refusal (HELLO_REQUIRED)', async () => {
    const { socketPath, server, calls } = await startServer();
    const p = await peer(socketPath);
    // One write: the refused request, then a hello and a stop before the server has closed.
    await p.write(
      [
        JSON.stringify({ id: 1, method: 'status' }),
        JSON.stringify({ id: 2, method: 'hello', params: { protocol: 1, client_version: 'x' } }),
        JSON.stringify({ id: 3, method: 'stop', params: {} }),
        '',
      ].join('\n'),
    );
    await p.waitForClose();
    expect(p.json).toEqual([
      expect.objectContaining({ id: 1, error: expect.objectContaining({ code: 'HELLO_REQUIRED' }) }),
    ]);
    // The connection was refused: nothing it sent afterwards may reach the daemon.
    expect(calls).toEqual([]);
    expect(server.connectionCount).toBe(0);
  });

  it('refuses hello with protocol 2 with PROTOCOL_MISMATCH and closes the connection', async () => {
    const { socketPath, calls } = await startServer();
    const p = await peer(socketPath);
    await p.hello(0, 2);
    const [line] = await p.waitForLines(1);
    expect(line).toMatchObject({ id: 0, ok: false, error: { code: 'PROTOCOL_MISMATCH' } });
    expect(line?.error?.message).toContain('protocol 2');
    expect(line?.error?.message).toContain(DAEMON_VERSION);
    await p.waitForClose();
    expect(calls).toEqual([]);
  });

  it('answers an invalid JSON line with BAD_JSON (id null) and keeps serving the connection', async () => {
    const { socketPath } = await startServer();
    const p = await greetedPeer(socketPath);
    await p.write('{"id":1,"method":"status"\n');
    await p.send({ id: 2, method: 'status' });
    const lines = await p.waitForLines(3);
    expect(lines[1]).toMatchObject({ id: null, ok: false, error: { code: 'BAD_JSON' } });
    expect(lines[2]).toEqual({ id: 2, ok: true, result: { state: 'serving', pid: DAEMON_PID, n: 1 } });
    expect(p.closed).toBe(false);
  });

  it('refuses a request nested deeper than the JSON limit with BAD_JSON naming it, before dispatch', async () => {
    const { socketPath, calls } = await startServer();
    const p = await greetedPeer(socketPath);
    for (const [id, depth] of [
      [11, 5_000],
      [12, 100_000],
    ] as const) {
      const inputs = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      await p.write(`{"id":${id},"method":"run.submit","params":{"workflow_id":"w","inputs":${inputs}}}\n`);
    }
    await p.write(`${'['.repeat(200_000)}\n`);
    await p.send({ id: 13, method: 'status' });
    const lines = await p.waitForLines(5);
    for (const [index, id] of [
      [1, 11],
      [2, 12],
      [3, null],
    ] as const) {
      expect(lines[index]).toMatchObject({ id, ok: false, error: { code: 'BAD_JSON' } });
      expect(lines[index]?.error?.message).toContain(`nested more than ${MAX_JSON_DEPTH} levels deep`);
    }
    expect(lines[4]).toMatchObject({ id: 13, ok: true });
    expect(calls.map((call) => call.method)).toEqual(['status']);
    expect(p.closed).toBe(false);
  });

  it('answers a JSON line without method with BAD_REQUEST, echoing the id only when it is valid', async () => {
    const { socketPath, calls } = await startServer();
    const p = await greetedPeer(socketPath);
    await p.send({ id: 7, params: {} });
    await p.send({ id: 'req-a' });
    await p.send({ id: { nested: true } });
    await p.send({ id: -1, method: 'status' });
    await p.write('[1,2]\nnull\n42\n');
    await p.send({ id: 8, method: 'status' });
    const lines = await p.waitForLines(9);
    expect(lines.slice(1, 8).map((line) => [line.id, line.ok, line.error?.code])).toEqual([
      [7, false, 'BAD_REQUEST'],
      ['req-a', false, 'BAD_REQUEST'],
      [null, false, 'BAD_REQUEST'],
      [null, false, 'BAD_REQUEST'],
      [null, false, 'BAD_REQUEST'],
      [null, false, 'BAD_REQUEST'],
      [null, false, 'BAD_REQUEST'],
    ]);
    expect(lines[8]).toMatchObject({ id: 8, ok: true });
    expect(calls.map((call) => call.method)).toEqual(['status']);
    expect(p.closed).toBe(false);
  });

  it('answers an unknown method with UNKNOWN_METHOD and keeps the connection', async () => {
    const { socketPath, calls } = await startServer();
    const p = await greetedPeer(socketPath);
    await p.send({ id: 3, method: 'frobnicate', params: {} });
    await p.send({ id: 4, method: 'status' });
    const lines = await p.waitForLines(3);
    expect(lines[1]).toMatchObject({ id: 3, ok: false, error: { code: 'UNKNOWN_METHOD' } });
    expect(lines[1]?.error?.message).toContain('frobnicate');
    expect(lines[2]).toMatchObject({ id: 4, ok: true });
    expect(calls.map((call) => call.method)).toEqual(['status']);
  });

  it('answers stop with timeout_ms -1 (and status with extra params) with INVALID_PARAMS, not dispatching', async () => {
    const { socketPath, calls } = await startServer();
    const p = await greetedPeer(socketPath);
    await p.send({ id: 5, method: 'stop', params: { timeout_ms: -1 } });
    await p.send({ id: 6, method: 'status', params: { verbose: true } });
    await p.send({ id: 7, method: 'status', params: {} });
    const lines = await p.waitForLines(4);
    expect(lines[1]).toMatchObject({ id: 5, ok: false, error: { code: 'INVALID_PARAMS' } });
    expect(lines[1]?.error?.message).toContain('timeout_ms');
    expect(lines[2]).toMatchObject({ id: 6, ok: false, error: { code: 'INVALID_PARAMS' } });
    expect(lines[3]).toMatchObject({ id: 7, ok: true });
    expect(calls.map((call) => call.method)).toEqual(['status']);
  });

  it('serves a request line of exactly 1 MiB', async () => {
    const { socketPath } = await startServer();
    const p = await greetedPeer(socketPath);
    const request = JSON.stringify({ id: 5, method: 'status' });
    await p.write(`${request.padEnd(MAX_CONTROL_LINE_BYTES, ' ')}\n`);
    const lines = await p.waitForLines(2);
    expect(lines[1]).toMatchObject({ id: 5, ok: true });
    expect(p.closed).toBe(false);
  });

  it('refuses a 1 MiB + 1 byte line (no newline) with FRAME_TOO_LARGE, closes, and still serves new clients', async () => {
    const { socketPath, server, calls } = await startServer();
    const p = await greetedPeer(socketPath);
    void p.write(Buffer.alloc(MAX_CONTROL_LINE_BYTES + 1, 0x61));
    const refusal = await p.waitForLine((line) => line.ok === false, 'FRAME_TOO_LARGE');
    expect(refusal).toMatchObject({ id: null, ok: false, error: { code: 'FRAME_TOO_LARGE' } });
    await p.waitForClose();
    expect(calls).toEqual([]);

    const connection = await open(socketPath);
    expect(await connection.request('status', {}, StatusSchema)).toMatchObject({ n: 1 });
    expect(server.connectionCount).toBe(1);
  });

  it('closes a silent client with IDLE_TIMEOUT after idleTimeoutMs while serving another client', async () => {
    const { socketPath } = await startServer({ idleTimeoutMs: 200 });
    const busy = await open(socketPath);
    const silent = await peer(socketPath);
    const connectedAt = Date.now();
    let served = 0;
    while (!silent.closed) {
      if (Date.now() - connectedAt > 5_000) throw new Error('the silent client was not closed');
      await busy.request('status', {}, StatusSchema, { timeoutMs: 2_000 });
      served++;
      await sleep(20); // poll interval of this deadline-bounded loop
    }
    const closedAfter = Date.now() - connectedAt;
    expect(silent.json).toEqual([
      expect.objectContaining({
        id: null,
        ok: false,
        error: expect.objectContaining({ code: 'IDLE_TIMEOUT' }),
      }),
    ]);
    expect(silent.json[0]?.error?.message).toContain('200 ms');
    expect(closedAfter).toBeGreaterThanOrEqual(180);
    expect(served).toBeGreaterThan(1);
    // The busy client kept sending requests, so it was never idle and is still served.
    expect(await busy.request('status', {}, StatusSchema)).toMatchObject({ n: served + 1 });
  });

  it('does not idle-close a client with a request in flight, and re-arms the timer once it is answered', async () => {
    const { socketPath, server, calls } = await startServer({ idleTimeoutMs: 200 });
    const p = await greetedPeer(socketPath);
    await p.send({ id: 1, method: 'stop', params: {} });
    await waitUntil(() => calls.length === 1, 'stop to be dispatched');

    // Two silent clients connected after the stop was sent get idle-closed one after the other:
    // more than two idle periods pass while the stop is in flight.
    for (let round = 0; round < 2; round++) {
      const reference = await peer(socketPath);
      await reference.waitForClose();
      expect(reference.json[0]?.error?.code).toBe('IDLE_TIMEOUT');
    }
    expect(p.closed).toBe(false);
    expect(p.lines).toHaveLength(1);
    expect(server.connectionCount).toBe(1);

    const stop = calls[0];
    if (stop === undefined) throw new Error('no stop call');
    server.reply(stop.key, { result: { pid: DAEMON_PID, already_stopping: false } });
    const answer = await p.waitForLine((line) => line.id === 1, 'the stop answer');
    expect(answer).toEqual({ id: 1, ok: true, result: { pid: DAEMON_PID, already_stopping: false } });
    // Nothing in flight any more: the connection is idle-closed again.
    const idle = await p.waitForLine((line) => line.id === null, 'IDLE_TIMEOUT');
    expect(idle.error?.code).toBe('IDLE_TIMEOUT');
    await p.waitForClose();
  });

  it('streams replies with more: true to ControlConnection.stream in order', async () => {
    const { socketPath, server, calls } = await startServer({ idleTimeoutMs: 200 });
    const connection = await open(socketPath);
    const items: unknown[] = [];
    let done = false;
    const streaming = connection
      .stream('stop', {}, z.object({ seq: z.number() }), (item) => {
        items.push(item);
        return undefined;
      })
      .then(() => {
        done = true;
      });
    await waitUntil(() => calls.length === 1, 'stop to be dispatched');
    const key = calls[0]?.key ?? '';
    for (let seq = 1; seq <= 3; seq++) server.reply(key, { result: { seq }, more: true });
    await waitUntil(() => items.length === 3, 'three streamed items');
    expect(done).toBe(false);
    server.reply(key, { result: { seq: 4 } });
    await withDeadline(streaming, 'the stream to end');
    expect(items).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }]);
  });

  it('answers 300 clients connecting at once, each doing hello + status', async () => {
    const { socketPath, calls } = await startServer();
    const results = await withDeadline(
      Promise.all(
        Array.from({ length: 300 }, async () => {
          const connection = await open(socketPath);
          return connection.request('status', {}, StatusSchema);
        }),
      ),
      '300 clients',
      8_000,
    );
    expect(results).toHaveLength(300);
    expect(new Set(results.map((result) => result.n)).size).toBe(300);
    expect(calls).toHaveLength(300);
  });

  it('refuses clients past maxConnections with TOO_MANY_CLIENTS, serves a fresh client, and can still close', async () => {
    const { socketPath, server } = await startServer({ maxConnections: 50 });
    const all = await withDeadline(
      Promise.all(
        Array.from({ length: 300 }, async () => {
          const p = await peer(socketPath);
          await p.write(
            `${JSON.stringify({ id: 0, method: 'hello', params: { protocol: 1, client_version: 't' } })}\n${JSON.stringify({ id: 1, method: 'status' })}\n`,
          );
          return p;
        }),
      ),
      '300 connections',
      8_000,
    );
    const isServed = (p: RawPeer) => p.lines.length >= 2 && p.json[1]?.ok === true;
    const isRefused = (p: RawPeer) => p.closed && p.json[0]?.error?.code === 'TOO_MANY_CLIENTS';
    await waitUntil(
      () => all.every((p) => isServed(p) || isRefused(p)),
      'every client served or refused',
      8_000,
    );
    const served = all.filter(isServed);
    const refused = all.filter(isRefused);
    expect(served).toHaveLength(50);
    expect(refused).toHaveLength(250);
    for (const p of refused) {
      expect(p.json).toEqual([
        expect.objectContaining({
          id: null,
          ok: false,
          error: expect.objectContaining({ code: 'TOO_MANY_CLIENTS' }),
        }),
      ]);
    }
    expect(served.every((p) => !p.closed)).toBe(true);
    expect(server.connectionCount).toBe(50);

    for (const p of served) p.destroy();
    await waitUntil(() => server.connectionCount === 0, 'the served clients to be forgotten');
    const connection = await open(socketPath);
    expect(await connection.request('status', {}, StatusSchema)).toMatchObject({ state: 'serving' });
    connection.close();
    // Every client is gone: shutting the server down must not wait on the refused connections.
    await withDeadline(
      server.close(),
      'close() after refusing 250 clients that have since disconnected',
      3_000,
    );
  });

  it('releases a client refused with TOO_MANY_CLIENTS after it sent its hello and disconnected', async () => {
    const { socketPath, server } = await startServer({ maxConnections: 1 });
    await open(socketPath);
    // The real client sends its hello right after connecting, before it reads the refusal.
    const error = await charterError(open(socketPath));
    expect(error.code).toBe('TOO_MANY_CLIENTS');
    expect(error.message).toContain('1 control connections');
    expect(server.connectionCount).toBe(1);
    for (const connection of connections.splice(0)) connection.close();
    await waitUntil(() => server.connectionCount === 0, 'the admitted client to be forgotten');
    // Both clients have disconnected: nothing may keep close() from settling.
    await withDeadline(server.close(), 'close() after the refused client disconnected', 2_500);
  });

  it('closes a client refused with TOO_MANY_CLIENTS even if it keeps its end open, so close() settles', async () => {
    const { socketPath, server } = await startServer({ maxConnections: 1 });
    await greetedPeer(socketPath);
    // A client that does not end its side when the server ends its own.
    const stubborn = connect({ path: socketPath, allowHalfOpen: true });
    rawSockets.push(stubborn);
    stubborn.on('error', () => {});
    let received = '';
    let closed = false;
    stubborn.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    stubborn.on('close', () => {
      closed = true;
    });
    await waitUntil(() => received.includes('\n'), 'the TOO_MANY_CLIENTS line');
    expect(JSON.parse(received)).toMatchObject({ id: null, error: { code: 'TOO_MANY_CLIENTS' } });
    await withDeadline(server.close(), 'close() with a refused client still connected', 2_500);
    // The daemon's end is gone: the next write fails (EPIPE) and the socket closes.
    stubborn.write('{}\n');
    await waitUntil(() => closed, 'the refused client to be disconnected', 1_000);
  });

  it('tells who produces for a call that its client went away (a log follow stops)', async () => {
    const abandoned: string[] = [];
    const { socketPath, calls } = await startServer({ abandon: (key) => abandoned.push(key) });
    const client = await greetedPeer(socketPath);
    await client.send({ id: 1, method: 'stop', params: {} });
    await waitUntil(() => calls.length === 1, 'the stop to be dispatched');
    expect(abandoned).toEqual([]);
    client.destroy();
    await waitUntil(() => abandoned.length === 1, 'the call to be abandoned');
    expect(abandoned).toEqual([calls[0]?.key]);
  });

  it('ignores replies to a client that disconnected, without throwing', async () => {
    const { socketPath, server, calls } = await startServer();
    const gone = await greetedPeer(socketPath);
    await gone.send({ id: 1, method: 'stop', params: {} });
    const quick = await greetedPeer(socketPath);
    await quick.send({ id: 1, method: 'stop', params: {} });
    await waitUntil(() => calls.length === 2, 'both stops to be dispatched');
    const [goneCall, quickCall] = calls;
    if (goneCall === undefined || quickCall === undefined) throw new Error('missing calls');

    // Replying right after the client went away, before the server noticed.
    quick.destroy();
    expect(() =>
      server.reply(quickCall.key, { result: { pid: DAEMON_PID, already_stopping: false } }),
    ).not.toThrow();

    gone.destroy();
    await waitUntil(() => server.connectionCount === 0, 'the server to notice the disconnects');
    expect(() => server.reply(goneCall.key, { result: { pid: 1, already_stopping: false } })).not.toThrow();
    expect(() =>
      server.reply(goneCall.key, { error: { code: 'INTERNAL', message: 'late', hint: 'none' } }),
    ).not.toThrow();
    expect(() => server.reply(quickCall.key, { result: {}, more: true })).not.toThrow();
    expect(() => server.reply('no-such-key', { result: {} })).not.toThrow();

    const connection = await open(socketPath);
    expect(await connection.request('status', {}, StatusSchema)).toMatchObject({ state: 'serving' });
  });

  it('close() disconnects clients, removes the socket file and is idempotent', async () => {
    const { socketPath, server } = await startServer();
    const connection = await open(socketPath);
    expect(existsSync(socketPath)).toBe(true);
    await withDeadline(Promise.all([server.close(), server.close()]), 'close() twice at once');
    expect(existsSync(socketPath)).toBe(false);
    await withDeadline(server.close(), 'close() once more');
    expect(existsSync(socketPath)).toBe(false);
    const error = await charterError(connection.request('status', {}, StatusSchema, { timeoutMs: 2_000 }));
    expect(error.code).toBe('DAEMON_NOT_ANSWERING');
    const refused = await charterError(open(socketPath));
    expect(refused.code).toBe('DAEMON_NOT_RUNNING');
  });
});

describe('ControlConnection', () => {
  it('rejects with DAEMON_NOT_RUNNING when the socket path does not exist', async () => {
    const { dir } = newTemp();
    const missing = join(dir, 'none.sock');
    const error = await charterError(open(missing));
    expect(error.code).toBe('DAEMON_NOT_RUNNING');
    expect(error.message).toContain(missing);
  });

  it('rejects with DAEMON_NOT_RUNNING when the socket path is a regular file', async () => {
    const { dir } = newTemp();
    const file = join(dir, 'file.sock');
    writeFileSync(file, 'not a socket');
    const error = await charterError(open(file));
    expect(error.code).toBe('DAEMON_NOT_RUNNING');
    expect(error.message).toContain(file);
  });

  it('rejects with DAEMON_NOT_ANSWERING when the server accepts but never answers hello', async () => {
    const { socketPath } = newTemp();
    const lines: unknown[] = [];
    const fake = await startFakeDaemon(socketPath, (_socket, request) => lines.push(request));
    fakes.push(fake);
    const error = await charterError(open(socketPath, 300));
    expect(error.code).toBe('DAEMON_NOT_ANSWERING');
    expect(error.message).toContain('hello');
    expect(lines).toEqual([
      expect.objectContaining({ method: 'hello', params: expect.objectContaining({ protocol: 1 }) }),
    ]);
    // The client closed its side after giving up.
    await waitUntil(() => fake.sockets.size === 0, 'the client to disconnect');
  });

  it('rejects with BAD_RESPONSE when the server answers with a line that is not JSON', async () => {
    const { socketPath } = newTemp();
    fakes.push(await startFakeDaemon(socketPath, (socket) => socket.write('HTTP/1.1 400 Bad Request\n')));
    const error = await charterError(open(socketPath));
    expect(error.code).toBe('BAD_RESPONSE');
  });

  it('rejects with BAD_RESPONSE when the server answers JSON of an unknown shape', async () => {
    const { socketPath } = newTemp();
    fakes.push(
      await startFakeDaemon(socketPath, (socket, request) =>
        socket.write(`${JSON.stringify({ id: request.id, ok: 'yes' })}\n`),
      ),
    );
    const error = await charterError(open(socketPath));
    expect(error.code).toBe('BAD_RESPONSE');
  });

  it('rejects with PROTOCOL_MISMATCH when the daemon refuses the hello', async () => {
    const { socketPath } = newTemp();
    fakes.push(
      await startFakeDaemon(socketPath, (socket, request) =>
        socket.end(
          `${JSON.stringify({
            id: request.id,
            ok: false,
            error: { code: 'PROTOCOL_MISMATCH', message: 'this daemon speaks control protocol 2' },
          })}\n`,
        ),
      ),
    );
    const error = await charterError(open(socketPath));
    expect(error.code).toBe('PROTOCOL_MISMATCH');
    expect(error.message).toBe('this daemon speaks control protocol 2');
  });

  it('delivers streamed responses (more: true, then a final one) to the stream callback in order', async () => {
    const { socketPath } = newTemp();
    let streamSocket: Socket | undefined;
    let streamId: unknown;
    fakes.push(
      await startFakeDaemon(socketPath, (socket, request) => {
        if (request.method === 'hello') {
          socket.write(
            `${JSON.stringify({ id: request.id, ok: true, result: { protocol: 1, daemon_version: 'fake', pid: 7 } })}\n`,
          );
          return;
        }
        streamSocket = socket;
        streamId = request.id;
        // Two items in one write, one alone, and a line for another id that must be ignored.
        socket.write(
          `${JSON.stringify({ id: request.id, ok: true, result: { seq: 1 }, more: true })}\n${JSON.stringify({ id: request.id, ok: true, result: { seq: 2 }, more: true })}\n`,
        );
        socket.write(`${JSON.stringify({ id: 999, ok: true, result: { seq: -1 }, more: true })}\n`);
        socket.write(`${JSON.stringify({ id: request.id, ok: true, result: { seq: 3 }, more: true })}\n`);
      }),
    );
    const connection = await open(socketPath);
    expect(connection.hello).toEqual({ protocol: 1, daemon_version: 'fake', pid: 7 });
    const items: Array<{ seq: number }> = [];
    let done = false;
    const streaming = connection
      .stream('logs', { follow: true }, z.object({ seq: z.number() }), (item) => {
        items.push(item);
        return undefined;
      })
      .then(() => {
        done = true;
      });
    await waitUntil(() => items.length === 3, 'three streamed items');
    expect(done).toBe(false);
    streamSocket?.write(`${JSON.stringify({ id: streamId, ok: true, result: { seq: 4 } })}\n`);
    await withDeadline(streaming, 'the stream to end');
    expect(items).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }]);
  });
});
