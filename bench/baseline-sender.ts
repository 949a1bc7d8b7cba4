/**
 * The bench's baseline sender, run as its own process like the daemon:
 * `node dist/bench/baseline-sender.js '<json>'`. The plainest correct outbox, with the daemon's
 * own limits (imported, not re-declared), so the shipping ratio compares like with like.
 */

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { errorMessage } from '../src/errors/error-message.js';
import { MAX_BUFFERED_BYTES, MAX_EVENTS_PER_FRAME } from '../src/gateway/transport.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  GATEWAY_PROTOCOL_VERSION,
  GATEWAY_SUBPROTOCOL,
  type UpEvent,
} from '../src/protocol/gateway.js';
import type { JournalRow } from '../src/store/journal-entry.js';

/** Rows inserted per transaction when the sender fills its store. */
export const INSERT_BATCH = 100;

export interface SenderArgs {
  readonly db: string;
  readonly events: string;
  readonly url: string;
  readonly token: string;
}

interface Down {
  op?: unknown;
  up?: number;
  up_limit?: number;
  up_committed?: number;
  max_frame?: number;
  t?: number;
}

/**
 * The plainest correct outbox: the journal's table in a fresh SQLite file (WAL, synchronous
 * NORMAL), filled in batches of INSERT_BATCH per transaction, then streamed to the gateway like
 * the daemon does it — frames of up to 500 events within the credit and a 1 MiB socket buffer,
 * the ack cursor stored on every ack — with no framework around it. Prints `{insert_ms}`.
 */
async function baselineSender(args: SenderArgs): Promise<void> {
  const rows = readFileSync(args.events, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as UpEvent);
  const insertStarted = performance.now();
  const db = new Database(args.db);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE journal (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, run_id TEXT, run_seq INTEGER,
      type TEXT NOT NULL, data TEXT NOT NULL
    ) STRICT;
    CREATE INDEX journal_run ON journal (run_id, run_seq);
    INSERT INTO meta (key, value) VALUES ('up_acked', '0');
  `);
  const insert = db.prepare('INSERT INTO journal (ts, run_id, run_seq, type, data) VALUES (?, ?, ?, ?, ?)');
  const insertBatch = db.transaction((batch: readonly UpEvent[]) => {
    for (const e of batch) insert.run(e.ts, e.run_id, e.run_seq, e.type, JSON.stringify(e.data));
  });
  for (let i = 0; i < rows.length; i += INSERT_BATCH) insertBatch(rows.slice(i, i + INSERT_BATCH));
  const insertMs = performance.now() - insertStarted;

  const outbox = db.prepare<[number, number], JournalRow>(
    'SELECT seq, ts, run_id, run_seq, type, data FROM journal WHERE seq > ? ORDER BY seq LIMIT ?',
  );
  const storeAck = db.prepare<[string]>("UPDATE meta SET value = ? WHERE key = 'up_acked'");
  const last = rows.length;
  const endpoint = `${args.url.replace(/^http/, 'ws')}/v1/daemon`;
  const ws = new WebSocket(endpoint, GATEWAY_SUBPROTOCOL, {
    headers: { Authorization: `Bearer ${args.token}` },
    perMessageDeflate: false,
    maxPayload: DEFAULT_MAX_FRAME_BYTES,
  });
  let upLimit = 0;
  let sent = 0;
  let acked = 0;
  let maxFrame = DEFAULT_MAX_FRAME_BYTES;
  let scheduled = false;
  const pump = (): void => {
    scheduled = false;
    while (sent < upLimit && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MAX_BUFFERED_BYTES) {
      const events: UpEvent[] = outbox
        .all(sent, Math.min(MAX_EVENTS_PER_FRAME, upLimit - sent))
        .map((row) => ({
          seq: row.seq,
          run_id: row.run_id,
          run_seq: row.run_seq,
          type: row.type,
          ts: row.ts,
          data: JSON.parse(row.data) as unknown,
        }));
      if (events.length === 0) break;
      let text = JSON.stringify({ op: 'events', events });
      while (Buffer.byteLength(text) > maxFrame && events.length > 1) {
        events.splice(Math.ceil(events.length / 2));
        text = JSON.stringify({ op: 'events', events });
      }
      sent = events.at(-1)?.seq ?? sent;
      ws.send(text, () => {
        if (ws.bufferedAmount < MAX_BUFFERED_BYTES) schedule();
      });
    }
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  };
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () =>
      ws.send(
        JSON.stringify({
          op: 'hello',
          protocol: GATEWAY_PROTOCOL_VERSION,
          daemon_id: randomUUID(),
          epoch: 1,
          daemon_version: 'baseline',
          project: { name: 'baseline' },
          down_applied: 0,
        }),
      ),
    );
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Down;
      if (frame.op === 'welcome') {
        upLimit = frame.up_limit ?? 0;
        sent = frame.up_committed ?? 0;
        maxFrame = Math.min(frame.max_frame ?? DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES);
        schedule();
      } else if (frame.op === 'ack') {
        const up = Math.min(frame.up ?? 0, sent);
        if (up > acked) {
          acked = up;
          storeAck.run(String(acked));
        }
        upLimit = Math.max(upLimit, frame.up_limit ?? 0);
        if (acked >= last) {
          ws.close(1000, 'done');
          resolve();
        } else schedule();
      } else if (frame.op === 'ping') {
        ws.send(JSON.stringify({ op: 'pong', t: frame.t }));
      } else if (frame.op === 'error') {
        reject(new Error(`the gateway said: ${String(data)}`));
      }
    });
    ws.on('error', reject);
    ws.on('close', (code) =>
      acked >= last ? resolve() : reject(new Error(`closed with ${code} at ${acked}`)),
    );
  });
  db.close();
  await new Promise<void>((resolve) =>
    process.stdout.write(`${JSON.stringify({ insert_ms: insertMs })}\n`, () => resolve()),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await baselineSender(JSON.parse(process.argv[2] ?? '{}') as SenderArgs);
    process.exit(0);
  } catch (error) {
    console.error(errorMessage(error));
    process.exit(1);
  }
}
