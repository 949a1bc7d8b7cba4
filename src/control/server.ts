/**
 * The daemon side of the control socket. It owns framing, validation, the version handshake,
 * deadlines and connection limits; it decides nothing about the daemon. Each valid request is
 * handed to `dispatch` with a key; whoever handles it answers through `reply(key, …)` — in the
 * daemon that is the root actor, through the control callback actor.
 *
 * Hostile clients are bounded three ways: what is buffered for clients that do not read (per
 * connection, and for all together: the slowest readers are dropped first, see `Outbox`), the
 * parse work each connection gets per event-loop turn (`FairTurns`), and descriptors
 * (`AcceptGuard`).
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import * as z from 'zod/mini';
import { boundWireError, CharterError } from '../errors/charter-error.js';
import {
  CONTROL_PROTOCOL_VERSION,
  type ControlReply,
  type ControlSocketStatus,
  HelloParamsSchema,
  type HelloResult,
  MAX_CONTROL_LINE_BYTES,
  type RequestId,
  RequestSchema,
  type Response,
} from '../protocol/control.js';
import { MAX_JSON_DEPTH, parseBoundedJson } from '../protocol/json-limits.js';
import { type ControlMethod, isControlMethod, methodParams } from '../protocol/methods.js';
import { AcceptGuard, type AcceptGuardOptions } from './accept-guard.js';
import { FairTurns } from './fair-turns.js';
import { LineDecoder, LineTooLongError } from './line-decoder.js';
import { Outbox } from './outbox.js';

export interface ControlCall {
  /** Unique across connections; pass it back to `reply`. */
  readonly key: string;
  readonly method: ControlMethod;
  readonly params: unknown;
}

export type { ControlReply };

export interface ControlServerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A stream stops producing while its client has this much unread (see `waitForRoom`). */
export const STREAM_HIGH_WATER_BYTES = 512 * 1024;
/**
 * Parse work one connection gets per event-loop turn: lines until this many bytes or lines
 * were handled, at least one line (so a 1 MiB line is one turn).
 */
export const PARSE_SLICE = { bytes: 64 * 1024, lines: 32 } as const;

export interface ControlServerOptions {
  readonly socketPath: string;
  readonly daemonVersion: string;
  readonly pid: number;
  readonly dispatch: (call: ControlCall) => void;
  /** A call whose client went away before its last reply (a stream can stop producing). */
  readonly abandon?: (key: string) => void;
  readonly logger?: ControlServerLogger;
  /** A connection with no request in flight that sends no complete line for this long is closed. */
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  /** Requests one connection may have in flight at once. */
  readonly maxInFlightPerConnection?: number;
  /** A client that does not read its responses is cut off past this many buffered bytes. */
  readonly maxBufferedBytes?: number;
  /** Past this many bytes buffered for all clients together, the slowest readers are dropped. */
  readonly maxTotalBufferedBytes?: number;
  /** How long a closing error (and what was queued before it) has to reach the client before the socket is destroyed. */
  readonly closeGraceMs?: number;
  /** Descriptor headroom and back-off (tests inject the descriptor count). */
  readonly descriptors?: Omit<AcceptGuardOptions, 'logger'>;
}

const DEFAULTS = {
  idleTimeoutMs: 10_000,
  maxConnections: 512,
  maxInFlightPerConnection: 32,
  maxBufferedBytes: 8 * 1024 * 1024,
  maxTotalBufferedBytes: 64 * 1024 * 1024,
  closeGraceMs: 1000,
};

interface Connection {
  readonly id: number;
  readonly socket: Socket;
  greeted: boolean;
  readonly inFlight: Map<string, RequestId>;
  idleTimer: NodeJS.Timeout | undefined;
  readonly decoder: LineDecoder;
  /** Complete lines not handled yet; the socket is paused while there are any. */
  lines: string[];
  nextLine: number;
  readonly outbox: Outbox;
  /** Streams waiting for the client to read (`waitForRoom`). */
  roomWaiters: (() => void)[];
}

export class ControlServer {
  readonly #options: ControlServerOptions & typeof DEFAULTS;
  readonly #server: Server;
  readonly #connections = new Map<number, Connection>();
  /** Every accepted socket, refused ones included, so that close() can end them all. */
  readonly #sockets = new Set<Socket>();
  /** key → connection id */
  readonly #calls = new Map<string, number>();
  readonly #turns = new FairTurns<Connection>((connection) => this.#parseSlice(connection));
  readonly #accepts: AcceptGuard;
  /**
   * At least the bytes buffered for all connections: every write adds to it, and it is brought
   * down to the exact sum only when it passes the cap (reads by clients are not seen one by one).
   */
  #bufferedBound = 0;
  #droppedSlowClients = 0;
  #nextConnectionId = 1;
  #nextCallId = 1;
  #closed = false;

  constructor(options: ControlServerOptions) {
    this.#options = { ...DEFAULTS, ...stripUndefined(options) } as ControlServerOptions & typeof DEFAULTS;
    this.#accepts = new AcceptGuard({
      ...this.#options.descriptors,
      ...(this.#options.logger === undefined ? {} : { logger: this.#options.logger }),
    });
    this.#server = createServer({ allowHalfOpen: false }, (socket) => this.#accept(socket));
    this.#server.on('error', (error: NodeJS.ErrnoException) => {
      if (error.syscall === 'accept') this.#acceptFailed(error);
      else this.#options.logger?.warn({ err: error }, 'control server error');
    });
  }

  /** Binds the socket (mode 0600). The caller has removed any stale socket file under the lock. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.#server.once('error', onError);
      // umask so the socket is never briefly group- or world-accessible; chmod in case umask is ignored.
      const previousUmask = process.umask(0o177);
      try {
        this.#server.listen({ path: this.#options.socketPath, backlog: 511 }, () => {
          this.#server.off('error', onError);
          try {
            chmodSync(this.#options.socketPath, 0o600);
            resolve();
          } catch (error) {
            reject(error);
          }
        });
      } finally {
        process.umask(previousUmask);
      }
    });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Bytes buffered for all connections that their clients have not read yet. */
  get bufferedBytes(): number {
    let total = 0;
    for (const connection of this.#connections.values()) total += connection.outbox.bytes;
    return total;
  }

  /** The server's own figures, for `status`. */
  get figures(): ControlSocketStatus {
    const accepts = this.#accepts.figures;
    return {
      connections: this.#connections.size,
      buffered_bytes: this.bufferedBytes,
      max_buffered_bytes: this.#options.maxTotalBufferedBytes,
      dropped_slow_clients: this.#droppedSlowClients,
      accepting: accepts.accepting,
      accept_errors: accepts.acceptErrors,
      last_accept_error: accepts.lastError,
      last_accept_error_at: accepts.lastErrorAt,
      next_accept_retry_at: accepts.nextRetryAt,
    };
  }

  /**
   * For a stream, before producing more: true when the call's client has at least
   * STREAM_HIGH_WATER_BYTES unread, and then `resume` is called once it has read them (never if
   * it goes away first). False: produce on (a call whose client has gone answers false to
   * `reply` instead).
   */
  waitForRoom(key: string, resume: () => void): boolean {
    const connectionId = this.#calls.get(key);
    const connection = connectionId === undefined ? undefined : this.#connections.get(connectionId);
    if (connection === undefined || connection.outbox.bytes < STREAM_HIGH_WATER_BYTES) return false;
    connection.roomWaiters.push(resume);
    return true;
  }

  /**
   * Answers a dispatched call. Returns false when nobody is listening any more (the client went
   * away): a stream should then stop producing.
   */
  reply(key: string, reply: ControlReply): boolean {
    const connectionId = this.#calls.get(key);
    if (connectionId === undefined) return false;
    const connection = this.#connections.get(connectionId);
    const id = connection?.inFlight.get(key);
    if (connection === undefined || id === undefined) {
      this.#calls.delete(key);
      return false;
    }
    const more = 'result' in reply && reply.more === true;
    if (!more) {
      connection.inFlight.delete(key);
      this.#calls.delete(key);
      if (connection.inFlight.size === 0) this.#armIdleTimer(connection);
    }
    const response: Response =
      'error' in reply
        ? { id, ok: false, error: boundWireError(reply.error) }
        : more
          ? { id, ok: true, result: reply.result, more: true }
          : { id, ok: true, result: reply.result };
    this.#send(connection, response);
    return this.#connections.has(connection.id) && !connection.socket.destroyed;
  }

  /** Stops accepting, closes every connection and removes the socket file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#turns.stop();
    this.#accepts.close();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
    try {
      unlinkSync(this.#options.socketPath);
    } catch {
      // already gone (server.close removes it on some platforms)
    }
  }

  #accept(socket: Socket): void {
    socket.on('error', (error) => this.#options.logger?.debug({ err: error }, 'control connection error'));
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    if (!this.#closed && !this.#accepts.admit()) {
      // Short of descriptors: this one is given back at once, not after the usual grace.
      const error = new CharterError(
        'TOO_MANY_CLIENTS',
        `the daemon is short of file descriptors and refuses new control connections for now (${this.#accepts.figures.lastError})`,
      );
      socket.end(connectionErrorLine(error));
      socket.destroy();
      return;
    }
    if (this.#closed || this.#connections.size >= this.#options.maxConnections) {
      const error = this.#closed
        ? new CharterError('DRAINING', 'the daemon is shutting down')
        : new CharterError(
            'TOO_MANY_CLIENTS',
            `the daemon already has ${this.#connections.size} control connections open`,
          );
      endAndDestroy(socket, connectionErrorLine(error), this.#options.closeGraceMs);
      this.#options.logger?.warn(
        { open: this.#connections.size },
        'control connection refused: too many clients',
      );
      return;
    }
    const connection: Connection = {
      id: this.#nextConnectionId++,
      socket,
      greeted: false,
      inFlight: new Map(),
      idleTimer: undefined,
      decoder: new LineDecoder(MAX_CONTROL_LINE_BYTES),
      lines: [],
      nextLine: 0,
      outbox: new Outbox(socket, () => this.#flushed(connection)),
      roomWaiters: [],
    };
    this.#connections.set(connection.id, connection);
    socket.on('data', (chunk: Buffer) => this.#received(connection, chunk));
    socket.on('close', () => this.#forget(connection));
    this.#armIdleTimer(connection);
  }

  /**
   * Bytes from a client: complete lines are queued and handled in fair turns, and the socket is
   * paused until they are (so a flooding client is read no faster than its lines are handled).
   */
  #received(connection: Connection, chunk: Buffer): void {
    // A refused connection is only waiting to be closed: nothing it sends is acted on.
    if (!this.#connections.has(connection.id)) return;
    let lines: string[];
    try {
      lines = connection.decoder.push(chunk);
    } catch (error) {
      if (!(error instanceof LineTooLongError)) throw error;
      this.#refuse(connection, null, new CharterError('FRAME_TOO_LARGE'), true);
      return;
    }
    if (lines.length === 0) return;
    for (const line of lines) connection.lines.push(line);
    connection.socket.pause();
    this.#turns.add(connection);
  }

  /** One turn's parse work for a connection (PARSE_SLICE); true when lines are left. */
  #parseSlice(connection: Connection): boolean {
    let bytes = 0;
    let handled = 0;
    while (connection.nextLine < connection.lines.length) {
      if (!this.#connections.has(connection.id)) return false;
      if (handled >= PARSE_SLICE.lines || bytes >= PARSE_SLICE.bytes) return true;
      const line = connection.lines[connection.nextLine++] as string;
      bytes += line.length;
      handled++;
      this.#armIdleTimer(connection);
      this.#handleLine(connection, line);
    }
    connection.lines = [];
    connection.nextLine = 0;
    if (this.#connections.has(connection.id)) connection.socket.resume();
    return false;
  }

  #handleLine(connection: Connection, line: string): void {
    if (line.trim() === '') return;
    const json = parseBoundedJson(line, MAX_JSON_DEPTH);
    if (!json.ok) {
      this.#refuse(connection, readableId(line), new CharterError('BAD_JSON', `the line is ${json.message}`));
      return;
    }
    const raw = json.value;
    const request = RequestSchema.safeParse(raw);
    if (!request.success) {
      const id = RequestSchema.shape.id.safeParse((raw as { id?: unknown } | null)?.id);
      this.#refuse(
        connection,
        id.success ? id.data : null,
        new CharterError('BAD_REQUEST', `bad request: ${z.prettifyError(request.error)}`),
      );
      return;
    }
    const { id, method, params } = request.data;
    if (method === 'hello') {
      this.#hello(connection, id, params);
      return;
    }
    if (!connection.greeted) {
      this.#refuse(connection, id, new CharterError('HELLO_REQUIRED'), true);
      return;
    }
    if (!isControlMethod(method)) {
      this.#refuse(connection, id, new CharterError('UNKNOWN_METHOD', `unknown method "${method}"`));
      return;
    }
    const parsed = methodParams[method].safeParse(params ?? {});
    if (!parsed.success) {
      this.#refuse(
        connection,
        id,
        new CharterError('INVALID_PARAMS', `invalid params for ${method}: ${z.prettifyError(parsed.error)}`),
      );
      return;
    }
    if (connection.inFlight.size >= this.#options.maxInFlightPerConnection) {
      this.#refuse(
        connection,
        id,
        new CharterError(
          'TOO_MANY_CLIENTS',
          `more than ${this.#options.maxInFlightPerConnection} requests in flight`,
        ),
      );
      return;
    }
    const key = `${connection.id}:${this.#nextCallId++}`;
    connection.inFlight.set(key, id);
    this.#calls.set(key, connection.id);
    this.#disarmIdleTimer(connection);
    this.#options.logger?.debug({ connection: connection.id, method }, 'control request');
    this.#options.dispatch({ key, method, params: parsed.data });
  }

  #hello(connection: Connection, id: RequestId, params: unknown): void {
    const parsed = HelloParamsSchema.safeParse(params);
    if (!parsed.success) {
      this.#refuse(
        connection,
        id,
        new CharterError('INVALID_PARAMS', `invalid hello: ${z.prettifyError(parsed.error)}`),
      );
      return;
    }
    if (parsed.data.protocol !== CONTROL_PROTOCOL_VERSION) {
      this.#refuse(
        connection,
        id,
        new CharterError(
          'PROTOCOL_MISMATCH',
          `the CLI (${parsed.data.client_version}) speaks control protocol ${parsed.data.protocol}; this daemon (${this.#options.daemonVersion}) speaks ${CONTROL_PROTOCOL_VERSION}`,
        ),
        true,
      );
      return;
    }
    connection.greeted = true;
    const result: HelloResult = {
      protocol: CONTROL_PROTOCOL_VERSION,
      daemon_version: this.#options.daemonVersion,
      pid: this.#options.pid,
    };
    this.#send(connection, { id, ok: true, result });
  }

  #refuse(connection: Connection, id: RequestId | null, error: CharterError, close = false): void {
    this.#options.logger?.debug({ code: error.code, connection: connection.id }, 'control request refused');
    const line = errorLine(id, error);
    if (close) {
      this.#forget(connection);
      endAndDestroy(connection.socket, line, this.#options.closeGraceMs);
    } else {
      this.#write(connection, line);
    }
  }

  #send(connection: Connection, response: Response): void {
    this.#write(connection, `${JSON.stringify(response)}\n`);
  }

  #write(connection: Connection, line: string): void {
    if (connection.socket.destroyed || connection.socket.writableEnded) return;
    const bytes = Buffer.from(line, 'utf8');
    connection.outbox.push(bytes);
    this.#bufferedBound += bytes.length;
    if (connection.outbox.bytes > this.#options.maxBufferedBytes) {
      this.#dropSlowClient(connection, `more than ${this.#options.maxBufferedBytes} bytes unread`);
    } else if (this.#bufferedBound > this.#options.maxTotalBufferedBytes) {
      this.#enforceTotalCap();
    }
  }

  /**
   * Drops the slowest readers until what is buffered for all clients is within the cap. The
   * slowest is the one whose unread backlog has stood longest without a drain (a client that
   * keeps reading drains often, one that stopped never does); between equals, the one with
   * more unread.
   */
  #enforceTotalCap(): void {
    let total = this.bufferedBytes;
    const cap = this.#options.maxTotalBufferedBytes;
    while (total > cap) {
      let slowest: Connection | undefined;
      let slowestSince = Number.POSITIVE_INFINITY;
      for (const connection of this.#connections.values()) {
        const since = connection.outbox.backlogSince;
        if (since === null) continue;
        if (
          since < slowestSince ||
          (since === slowestSince && connection.outbox.bytes > (slowest?.outbox.bytes ?? 0))
        ) {
          slowest = connection;
          slowestSince = since;
        }
      }
      if (slowest === undefined) break;
      total -= slowest.outbox.bytes;
      this.#dropSlowClient(slowest, `the ${cap} bytes buffered for all control clients were exceeded`);
    }
    this.#bufferedBound = total;
  }

  /**
   * Drops a client that does not read: what waits for it is discarded at once, its calls are
   * abandoned (a stream stops producing), and it is sent CLIENT_TOO_SLOW behind what its socket
   * already holds, which it gets only if it reads within the grace period before the close.
   */
  #dropSlowClient(connection: Connection, why: string): void {
    const unread = connection.outbox.bytes;
    const since = connection.outbox.backlogSince;
    this.#droppedSlowClients++;
    this.#options.logger?.warn(
      {
        connection: connection.id,
        unreadBytes: unread,
        unreadForMs: since === null ? 0 : Math.round(performance.now() - since),
      },
      `control client does not read its answers: dropped (CLIENT_TOO_SLOW: ${why})`,
    );
    this.#forget(connection);
    connection.outbox.discard();
    const error = new CharterError(
      'CLIENT_TOO_SLOW',
      `this connection had ${unread} bytes of answers unread (${why}); it was closed`,
    );
    endAndDestroy(connection.socket, connectionErrorLine(error), this.#options.closeGraceMs);
  }

  /** The socket took what waited for it: streams waiting for room may produce again. */
  #flushed(connection: Connection): void {
    if (connection.roomWaiters.length === 0 || connection.outbox.bytes >= STREAM_HIGH_WATER_BYTES) return;
    const waiters = connection.roomWaiters;
    connection.roomWaiters = [];
    for (const resume of waiters) {
      if (!this.#connections.has(connection.id)) return;
      resume();
    }
  }

  /**
   * An accept failed (EMFILE, ENFILE, …). libuv retries accept synchronously while connections
   * are pending, so a descriptor must be freed now or the loop spins: the guard's spare one, else
   * a refused socket still in its grace period, else an idle connection.
   */
  #acceptFailed(error: NodeJS.ErrnoException): void {
    if (this.#accepts.failed(error)) return;
    const served = new Set([...this.#connections.values()].map((connection) => connection.socket));
    for (const socket of this.#sockets) {
      if (!served.has(socket)) {
        socket.destroy();
        return;
      }
    }
    const victim =
      [...this.#connections.values()].find((connection) => connection.inFlight.size === 0) ??
      this.#connections.values().next().value;
    if (victim === undefined) return;
    this.#forget(victim);
    victim.socket.end(
      connectionErrorLine(
        new CharterError(
          'TOO_MANY_CLIENTS',
          'the daemon ran out of file descriptors; this connection was closed',
        ),
      ),
    );
    victim.socket.destroy();
  }

  #armIdleTimer(connection: Connection): void {
    this.#disarmIdleTimer(connection);
    if (connection.inFlight.size > 0) return;
    connection.idleTimer = setTimeout(() => {
      this.#refuse(
        connection,
        null,
        new CharterError('IDLE_TIMEOUT', `no request for ${this.#options.idleTimeoutMs} ms`),
        true,
      );
    }, this.#options.idleTimeoutMs);
    connection.idleTimer.unref();
  }

  #disarmIdleTimer(connection: Connection): void {
    if (connection.idleTimer !== undefined) clearTimeout(connection.idleTimer);
    connection.idleTimer = undefined;
  }

  #forget(connection: Connection): void {
    this.#disarmIdleTimer(connection);
    this.#turns.remove(connection);
    connection.lines = [];
    connection.nextLine = 0;
    connection.roomWaiters = [];
    for (const key of connection.inFlight.keys()) {
      this.#calls.delete(key);
      this.#options.abandon?.(key);
    }
    connection.inFlight.clear();
    this.#connections.delete(connection.id);
  }
}

/**
 * Sends a last line and closes. The socket keeps being read (so the peer's end is noticed) and
 * is destroyed after a grace period whatever the peer does, so a refused client cannot hold a
 * file descriptor or delay close().
 */
function endAndDestroy(socket: Socket, line: string, graceMs: number): void {
  socket.resume();
  socket.end(line);
  setTimeout(() => socket.destroy(), graceMs).unref();
}

function errorLine(id: RequestId | null, error: CharterError): string {
  return `${JSON.stringify({ id, ok: false, error: error.toWire() })}\n`;
}

/** An error about the whole connection (`id: null`). */
function connectionErrorLine(error: CharterError): string {
  return errorLine(null, error);
}

/**
 * The id of a request refused before it was parsed (nested too deeply), when it can be read:
 * the client then learns which request failed. V8's `JSON.parse` is iterative, so parsing a deep
 * line is safe; only walking the result recursively is not, and only the id is looked at.
 */
function readableId(line: string): RequestId | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  const id = RequestSchema.shape.id.safeParse((raw as { id?: unknown } | null)?.id);
  return id.success ? id.data : null;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
