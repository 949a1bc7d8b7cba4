/**
 * Test helpers for the control socket: a raw NDJSON peer that writes arbitrary bytes and collects
 * the lines it receives, a minimal fake daemon built on plain `net`, and deadline-bounded waits.
 * Nothing here sleeps for a fixed time: every wait polls a condition until a deadline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_DEADLINE_MS = 5_000;

/** One received line: its text and, when it is JSON, the parsed value. */
export interface ReceivedLine {
  readonly text: string;
  readonly json: unknown;
}

/** The shape of a control response line, loosely typed for assertions. */
export interface WireLine {
  id: unknown;
  ok: boolean;
  result?: unknown;
  more?: boolean;
  error?: { code: string; message: string; hint?: string };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every few ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(
  predicate: () => boolean,
  what: string,
  timeoutMs = DEFAULT_DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Rejects when `promise` has not settled within `timeoutMs`. */
export function withDeadline<T>(
  promise: Promise<T>,
  what: string,
  timeoutMs = DEFAULT_DEADLINE_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A fresh temp dir with a short socket path in it; `cleanup` removes the dir. */
export interface TempSocket {
  readonly dir: string;
  readonly socketPath: string;
  cleanup(): void;
}

export function tempSocket(name = 'c.sock'): TempSocket {
  const dir = mkdtempSync(join(tmpdir(), 'cd-'));
  return {
    dir,
    socketPath: join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A raw client of the control socket: writes whatever it is given, records every line it reads. */
export class RawPeer {
  readonly lines: ReceivedLine[] = [];
  readonly errors: Error[] = [];
  #buffer = Buffer.alloc(0);
  #closed = false;
  #ended = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      this.#ended = true;
    });
    socket.on('error', (error) => this.errors.push(error));
    socket.on('close', () => {
      this.#closed = true;
    });
  }

  /** Connects to `socketPath`; rejects on a connect error or after the deadline. */
  static connect(socketPath: string, timeoutMs = DEFAULT_DEADLINE_MS): Promise<RawPeer> {
    return withDeadline(
      new Promise<RawPeer>((resolve, reject) => {
        const socket = connect({ path: socketPath });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(new RawPeer(socket));
        });
      }),
      `connect to ${socketPath}`,
      timeoutMs,
    );
  }

  /** The socket was closed (both ways). */
  get closed(): boolean {
    return this.#closed;
  }

  /** The other side ended its half of the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Parsed JSON lines. */
  get json(): WireLine[] {
    return this.lines.map((line) => line.json as WireLine);
  }

  /** Writes raw bytes; resolves when handed to the kernel or the socket failed (see `errors`). */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || this.socket.writableEnded) {
        resolve();
        return;
      }
      this.socket.write(data, () => resolve());
    });
  }

  /** Writes one request line `JSON.stringify(value) + "\n"`. */
  send(value: unknown): Promise<void> {
    return this.write(`${JSON.stringify(value)}\n`);
  }

  /** Sends the hello of control protocol `protocol`. */
  hello(id: number | string = 0, protocol = 1): Promise<void> {
    return this.send({ id, method: 'hello', params: { protocol, client_version: 'test-peer' } });
  }

  /** Resolves with all lines once at least `count` were received. */
  async waitForLines(count: number, timeoutMs = DEFAULT_DEADLINE_MS): Promise<WireLine[]> {
    await waitUntil(
      () => this.lines.length >= count,
      `${count} line(s) (got ${this.lines.length}: ${this.lines.map((l) => l.text).join(' | ')})`,
      timeoutMs,
    );
    return this.json;
  }

  /** Resolves with the first received line matching `predicate`. */
  async waitForLine(
    predicate: (line: WireLine) => boolean,
    what: string,
    timeoutMs = DEFAULT_DEADLINE_MS,
  ): Promise<WireLine> {
    let found: WireLine | undefined;
    await waitUntil(
      () => {
        found = this.json.find(predicate);
        return found !== undefined;
      },
      what,
      timeoutMs,
    );
    return found as WireLine;
  }

  /** Resolves once the socket is closed. */
  async waitForClose(timeoutMs = DEFAULT_DEADLINE_MS): Promise<void> {
    await waitUntil(() => this.#closed, 'the connection to close', timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const newline = this.#buffer.indexOf(0x0a);
      if (newline === -1) break;
      const text = this.#buffer.subarray(0, newline).toString('utf8');
      this.#buffer = this.#buffer.subarray(newline + 1);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      this.lines.push({ text, json });
    }
  }
}

/**
 * A minimal fake daemon on plain `net`: `onLine` gets each request line a client sends (parsed
 * when it is JSON) and answers through `socket.write`.
 */
export interface FakeDaemon {
  readonly server: Server;
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

export function startFakeDaemon(
  socketPath: string,
  onLine: (socket: Socket, request: { id?: unknown; method?: unknown; params?: unknown }) => void,
): Promise<FakeDaemon> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline !== -1; newline = buffer.indexOf('\n')) {
        const text = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let request: { id?: unknown; method?: unknown; params?: unknown } = {};
        try {
          request = JSON.parse(text) as typeof request;
        } catch {
          // leave it empty: the handler sees a request without id or method
        }
        onLine(socket, request);
      }
    });
  });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return withDeadline(
    new Promise<FakeDaemon>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve({ server, sockets, close });
      });
    }),
    `fake daemon listening on ${socketPath}`,
  );
}
