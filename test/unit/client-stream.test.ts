/**
 * The client's streams against a fake daemon on a real Unix socket: a consumer that falls behind
 * makes the client stop reading (the daemon's writes back up) instead of buffering the stream in
 * memory, every item still arrives in order once it reads on, and leaving the loop closes the
 * stream's connection.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/index.js';
import {
  type FakeDaemon,
  sleep,
  startFakeDaemon,
  type TempSocket,
  tempSocket,
  waitUntil,
} from '../support/control-peer.js';

const ITEMS = 5_000;

const PAD = 'x'.repeat(1_000);

let daemon: FakeDaemon | undefined;
let temp: TempSocket | undefined;

afterEach(async () => {
  await daemon?.close();
  temp?.cleanup();
  daemon = undefined;
  temp = undefined;
});

interface Flood {
  /** The stream connections, one per `watch` call. */
  readonly streams: Socket[];
  /** Items written so far; the daemon waits for `drain` whenever the socket's buffer is full. */
  written: number;
}

/**
 * A daemon whose `watch` answers with ITEMS stream items of about 1 KB, written as fast as the
 * client reads them (the daemon waits for `drain` when the socket's buffer fills, as a real one
 * does).
 */
async function floodingDaemon(): Promise<Flood> {
  temp = tempSocket();
  const flood: Flood = { streams: [], written: 0 };
  daemon = await startFakeDaemon(temp.socketPath, (socket, request) => {
    if (request.method === 'hello') {
      socket.write(
        `${JSON.stringify({ id: request.id, ok: true, result: { protocol: 1, daemon_version: 't', pid: 1 } })}\n`,
      );
      return;
    }
    if (request.method !== 'watch') return;
    flood.streams.push(socket);
    const writeSome = (): void => {
      while (flood.written < ITEMS && !socket.destroyed) {
        const n = flood.written++;
        const line = `${JSON.stringify({ id: request.id, ok: true, result: update(n), more: n < ITEMS - 1 })}\n`;
        if (!socket.write(line)) {
          socket.once('drain', writeSome);
          return;
        }
      }
    };
    writeSome();
  });
  return flood;
}

function update(n: number) {
  return {
    header: {
      pid: 1,
      version: 't',
      state: 'serving',
      started_at: PAD,
      project_root: '/p',
      gateway: { state: 'offline', url: null, since: null },
      backlog: n,
      oldest_unacked_age_seconds: null,
      events_per_second: [],
      runs: { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 },
      store_fault: null,
    },
    reset: n === 0,
    runs: [],
    removed: [],
  };
}

describe('client streams', () => {
  it('stop reading while the consumer lags, then deliver every item in order', async () => {
    const flood = await floodingDaemon();
    const client = await connect({ socketPath: temp?.socketPath ?? '', timeoutMs: 5_000 });
    const seen: number[] = [];
    const updates = client.watch();
    const first = await updates.next();
    expect(first.done).toBe(false);
    if (!first.done) seen.push(first.value.header.backlog);
    // The consumer holds on to its first item. A client that read on regardless would take the
    // whole 5 MB stream into its memory meanwhile, and the daemon would finish writing it; this
    // one reads a few dozen items ahead, then stops reading, so the daemon stays blocked on a
    // full socket with most of the stream unwritten.
    await sleep(500);
    expect(flood.written).toBeLessThan(ITEMS / 2);
    for await (const item of updates) seen.push(item.header.backlog);
    expect(seen).toEqual(Array.from({ length: ITEMS }, (_, n) => n));
    expect(flood.written).toBe(ITEMS);
    client.close();
  });

  it('leaving the loop early closes the stream connection', async () => {
    const { streams } = await floodingDaemon();
    const client = await connect({ socketPath: temp?.socketPath ?? '', timeoutMs: 5_000 });
    for await (const update of client.watch()) {
      expect(update.reset).toBe(true);
      break;
    }
    await waitUntil(() => streams[0]?.destroyed === true, 'the stream connection to close');
    client.close();
  });
});
