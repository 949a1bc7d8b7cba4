/**
 * The daemon side of the control socket. It owns framing, validation, the version handshake,
 * deadlines and connection limits; it decides nothing about the daemon. Each valid request is
 * handed to `dispatch` with a key; whoever handles it answers through `reply(key, …)` — in the
 * daemon that is the root actor, through the control callback actor.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import * as z from 'zod/mini';
import { boundWireError, CharterError } from '../errors/charter-error.js';
import {
  CONTROL_PROTOCOL_VERSION,
  type ControlReply,
  HelloParamsSchema,
  type HelloResult,
  MAX_CONTROL_LINE_BYTES,
  type RequestId,
  RequestSchema,
  type Response,
} from '../protocol/control.js';
import { MAX_JSON_DEPTH, parseBoundedJson } from '../protocol/json-limits.js';
import { type ControlMethod, isControlMethod, methodParams } from '../protocol/methods.js';
import { LineDecoder, LineTooLongError } from './line-decoder.js';

export interface ControlCall {
  /** Unique across connections; pass it back to `reply`. */
  readonly key: string;
  readonly method: ControlMethod;
  readonly params: unknown;
}

export type { ControlReply };

export interface ControlServerLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

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
}

const DEFAULTS = {
  idleTimeoutMs: 10_000,
  maxConnections: 512,
  maxInFlightPerConnection: 32,
  maxBufferedBytes: 8 * 1024 * 1024,
};

interface Connection {
  readonly id: number;
  readonly socket: Socket;
  greeted: boolean;
  readonly inFlight: Map<string, RequestId>;
  idleTimer: NodeJS.Timeout | undefined;
}

export class ControlServer {
  readonly #options: ControlServerOptions & typeof DEFAULTS;
  readonly #server: Server;
  readonly #connections = new Map<number, Connection>();
  /** Every accepted socket, refused ones included, so that close() can end them all. */
  readonly #sockets = new Set<Socket>();
  /** key → connection id */
  readonly #calls = new Map<string, number>();
  #nextConnectionId = 1;
  #nextCallId = 1;
  #closed = false;

  constructor(options: ControlServerOptions) {
    this.#options = { ...DEFAULTS, ...stripUndefined(options) } as ControlServerOptions & typeof DEFAULTS;
    this.#server = createServer({ allowHalfOpen: false }, (socket) => this.#accept(socket));
    this.#server.on('error', (error) => this.#options.logger?.warn({ err: error }, 'control server error'));
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
    return !connection.socket.destroyed;
  }

  /** Stops accepting, closes every connection and removes the socket file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
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
    if (this.#closed || this.#connections.size >= this.#options.maxConnections) {
      const error = this.#closed
        ? new CharterError('DRAINING', 'the daemon is shutting down')
        : new CharterError(
            'TOO_MANY_CLIENTS',
            `the daemon already has ${this.#connections.size} control connections open`,
          );
      endAndDestroy(socket, `${JSON.stringify({ id: null, ok: false, error: error.toWire() })}\n`);
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
    };
    this.#connections.set(connection.id, connection);
    const decoder = new LineDecoder(MAX_CONTROL_LINE_BYTES);
    socket.on('data', (chunk: Buffer) => {
      // A refused connection is only waiting to be closed: nothing it sends is acted on.
      if (!this.#connections.has(connection.id)) return;
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (error) {
        if (!(error instanceof LineTooLongError)) throw error;
        this.#refuse(connection, null, new CharterError('FRAME_TOO_LARGE'), true);
        return;
      }
      for (const line of lines) {
        if (!this.#connections.has(connection.id)) return;
        this.#armIdleTimer(connection);
        this.#handleLine(connection, line);
      }
    });
    socket.on('close', () => this.#forget(connection));
    this.#armIdleTimer(connection);
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
    const line = `${JSON.stringify({ id, ok: false, error: error.toWire() })}\n`;
    if (close) {
      this.#forget(connection);
      endAndDestroy(connection.socket, line);
    } else {
      this.#write(connection, line);
    }
  }

  #send(connection: Connection, response: Response): void {
    this.#write(connection, `${JSON.stringify(response)}\n`);
  }

  #write(connection: Connection, line: string): void {
    if (connection.socket.destroyed || connection.socket.writableEnded) return;
    connection.socket.write(line);
    if (connection.socket.writableLength > this.#options.maxBufferedBytes) {
      this.#options.logger?.warn({ connection: connection.id }, 'control client does not read: disconnected');
      connection.socket.destroy();
    }
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
function endAndDestroy(socket: Socket, line: string): void {
  socket.resume();
  socket.end(line);
  setTimeout(() => socket.destroy(), 1000).unref();
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
