/**
 * One connection to the control socket (docs/control-protocol.md): connect with a deadline, say
 * hello (protocol version), send requests with a deadline, read one or more responses. Every
 * failure ends as a CharterError from the catalogue, so a caller never hangs and always learns
 * what to do; an AbortSignal ends any wait at once. The typed client (`client.ts`) is built on
 * it; tests and benchmarks use it directly for raw calls.
 */
import { connect, type Socket } from 'node:net';
import type * as z from 'zod/mini';
import { LineDecoder, LineTooLongError } from '../control/line-decoder.js';
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import {
  CONTROL_PROTOCOL_VERSION,
  type HelloResult,
  HelloResultSchema,
  MAX_CONTROL_LINE_BYTES,
  type Response,
  ResponseSchema,
} from '../protocol/control.js';
import { parseBoundedJson } from '../protocol/json-limits.js';
import type { ControlMethod, ControlParams } from '../protocol/methods.js';

export interface OpenOptions {
  readonly socketPath: string;
  readonly clientVersion: string;
  readonly connectTimeoutMs?: number;
  /** Deadline for the hello answer. */
  readonly helloTimeoutMs?: number;
  /** Aborts the connect and the hello. */
  readonly signal?: AbortSignal | undefined;
}

export interface RequestOptions {
  /** Deadline for the (first) response. */
  readonly timeoutMs?: number | undefined;
  /**
   * Ends the wait with ABORTED. The request may already be with the daemon: aborting does not
   * undo a change it makes (a decision, a cancel), it only stops waiting for the answer.
   */
  readonly signal?: AbortSignal | undefined;
}

type Waiter = {
  onResponse: (response: Response) => void;
  onFailure: (error: CharterError) => void;
};

export class ControlConnection {
  readonly #socket: Socket;
  readonly #waiters = new Map<number, Waiter>();
  #nextId = 1;
  #failure: CharterError | undefined;
  hello: HelloResult | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    const decoder = new LineDecoder(MAX_CONTROL_LINE_BYTES);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const line of decoder.push(chunk)) this.#onLine(line);
      } catch (error) {
        const reason = error instanceof LineTooLongError ? 'a response line over 1 MiB' : errorMessage(error);
        this.#fail(new CharterError('BAD_RESPONSE', `the daemon sent ${reason}`));
      }
    });
    socket.on('error', (error) => this.#fail(new CharterError('DAEMON_NOT_ANSWERING', error.message)));
    socket.on('close', () =>
      this.#fail(new CharterError('DAEMON_NOT_ANSWERING', 'the daemon closed the connection')),
    );
  }

  /** Connects and exchanges hello; throws DAEMON_NOT_RUNNING, SOCKET_PERMISSION_DENIED, PROTOCOL_MISMATCH, ABORTED, … */
  static async open(options: OpenOptions): Promise<ControlConnection> {
    const socket = await connectSocket(options.socketPath, options.connectTimeoutMs ?? 2000, options.signal);
    const connection = new ControlConnection(socket);
    try {
      const hello = await connection.request(
        'hello',
        { protocol: CONTROL_PROTOCOL_VERSION, client_version: options.clientVersion },
        HelloResultSchema,
        { timeoutMs: options.helloTimeoutMs ?? 5000, signal: options.signal },
      );
      connection.hello = hello;
      return connection;
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  /** Sends one request and resolves with its (final or first) result, validated by `schema`. */
  async request<S extends z.ZodMiniType>(
    method: ControlMethod | 'hello',
    params: ControlParams<ControlMethod> | Record<string, unknown>,
    schema: S,
    options: RequestOptions = {},
  ): Promise<z.infer<S>> {
    let result: z.infer<S> | undefined;
    await this.stream(
      method,
      params,
      schema,
      (item) => {
        result = item;
        return 'stop';
      },
      options,
    );
    return result as z.infer<S>;
  }

  /**
   * Sends one request and calls `onItem` for each result until the daemon sends the last one or
   * `onItem` returns 'stop'. The deadline covers the wait for the first response only: a stream
   * may then stay quiet for as long as its subject does.
   */
  stream<S extends z.ZodMiniType>(
    method: string,
    params: unknown,
    schema: S,
    onItem: (item: z.infer<S>) => 'stop' | undefined,
    options: RequestOptions = {},
  ): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const { signal } = options;
    if (signal?.aborted === true) return Promise.reject(abortedError(method, signal));
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = setTimeout(() => {
        settle();
        reject(
          new CharterError(
            'DAEMON_NOT_ANSWERING',
            `the daemon accepted the connection but did not answer "${method}" within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onAbort = (): void => {
        settle();
        reject(abortedError(method, signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(id);
      };
      this.#waiters.set(id, {
        onResponse: (response) => {
          if (timer !== undefined) clearTimeout(timer);
          timer = undefined;
          if (!response.ok) {
            settle();
            reject(CharterError.fromWire(response.error));
            return;
          }
          const parsed = schema.safeParse(response.result);
          if (!parsed.success) {
            settle();
            reject(
              new CharterError('BAD_RESPONSE', `unexpected result for "${method}": ${parsed.error.message}`),
            );
            return;
          }
          const verdict = onItem(parsed.data);
          if (verdict === 'stop' || response.more !== true) {
            settle();
            resolve();
          }
        },
        onFailure: (error) => {
          settle();
          reject(error);
        },
      });
      this.#socket.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  /** False once the connection failed or was closed: a new one is needed for further calls. */
  get usable(): boolean {
    return this.#failure === undefined && !this.#socket.destroyed;
  }

  /** Stops reading (backpressure for a stream whose items are not consumed yet). */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** Closes the connection; the daemon drops any stream that ran on it. */
  close(): void {
    this.#socket.destroy();
  }

  #onLine(line: string): void {
    // Bounded like every JSON the daemon reads: the CLI prints what it gets, recursively.
    const json = parseBoundedJson(line);
    if (!json.ok) {
      this.#fail(new CharterError('BAD_RESPONSE', `the daemon sent a line that is ${json.message}`));
      return;
    }
    const parsed = ResponseSchema.safeParse(json.value);
    if (!parsed.success) {
      this.#fail(new CharterError('BAD_RESPONSE', 'the daemon sent a response of an unknown shape'));
      return;
    }
    const response = parsed.data;
    if (response.id === null) {
      // A connection-level error (idle timeout, too many clients, …) fails every pending request.
      if (!response.ok) this.#fail(CharterError.fromWire(response.error));
      return;
    }
    const waiter = typeof response.id === 'number' ? this.#waiters.get(response.id) : undefined;
    waiter?.onResponse(response);
  }

  #fail(error: CharterError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    for (const waiter of [...this.#waiters.values()]) waiter.onFailure(error);
    this.#waiters.clear();
    this.#socket.destroy();
  }
}

function connectSocket(
  socketPath: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Socket> {
  if (signal?.aborted === true) return Promise.reject(abortedError('connect', signal));
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const timer = setTimeout(() => {
      done();
      socket.destroy();
      reject(
        new CharterError('DAEMON_NOT_ANSWERING', `could not connect to ${socketPath} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const onAbort = (): void => {
      done();
      socket.destroy();
      reject(abortedError('connect', signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      done();
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      done();
      reject(connectError(socketPath, error));
    });
  });
}

/** The error of a wait ended by the caller's AbortSignal; its reason is the cause. */
function abortedError(what: string, signal: AbortSignal | undefined): CharterError {
  return new CharterError('ABORTED', `"${what}" was aborted by the caller`, { cause: signal?.reason });
}

function connectError(socketPath: string, error: NodeJS.ErrnoException): CharterError {
  switch (error.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'ENOTSOCK':
      return new CharterError('DAEMON_NOT_RUNNING', `no daemon is listening on ${socketPath}`);
    case 'EACCES':
    case 'EPERM':
      return new CharterError('SOCKET_PERMISSION_DENIED', `cannot open ${socketPath}: permission denied`);
    case 'EAGAIN':
      return new CharterError(
        'DAEMON_NOT_ANSWERING',
        `the daemon's connection queue on ${socketPath} is full`,
      );
    default:
      return new CharterError('DAEMON_NOT_ANSWERING', `cannot connect to ${socketPath}: ${error.message}`, {
        cause: error,
      });
  }
}
