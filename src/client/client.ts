/**
 * The typed client of the control socket: one method per control method, params and results
 * typed from the zod schemas the daemon itself validates with (`src/protocol/methods.ts`),
 * streams and pages as async iterators, an AbortSignal on every call and iterator, and every
 * failure a CharterError carrying a catalogue code. The charter-daemon CLI is a thin user of it.
 *
 * Connections: calls that answer once share one connection, opened by `connect()` and opened
 * again, transparently, for the next call after the daemon closed it (its idle timeout, a
 * restart). Each stream (`logs`, `watch`) runs on a connection of its own, because the protocol
 * stops a stream only by closing its connection (docs/control-protocol.md, "Streaming"): ending
 * an iterator early closes it, and the daemon drops the stream.
 */
import { CharterError } from '../errors/charter-error.js';
import type { HelloResult } from '../protocol/control.js';
import {
  type ControlMethod,
  type ControlParamsInput,
  type ControlResult,
  methodResults,
} from '../protocol/methods.js';
import type {
  GateDecideParams,
  InputSubmitParams,
  RunCancelParams,
  RunsListParams,
} from '../protocol/runs.js';
import { packageVersion } from '../version.js';
import { ControlConnection, type RequestOptions } from './connection.js';
import { locateSocket } from './socket-path.js';

export interface ConnectOptions {
  /** The project root (the folder with charter.yml); default: the current directory. */
  readonly projectPath?: string;
  /** The socket to use instead of finding the project's (`daemon.json`, else the default path). */
  readonly socketPath?: string;
  /** Deadline for the hello answer, and the default deadline of every call's first answer (default 10 s). */
  readonly timeoutMs?: number;
  /** Deadline for the socket connect itself (default 2 s). */
  readonly connectTimeoutMs?: number;
  /** Aborts connecting (and the reconnects of later calls that pass no signal of their own). */
  readonly signal?: AbortSignal;
  /** Sent in `hello`; the daemon logs it (default: this package's version). */
  readonly clientVersion?: string;
}

/** Options of one call or iterator. */
export interface CallOptions {
  /** Deadline for the (first) answer; default: the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Ends the wait with ABORTED; an iterator ends and closes its connection. */
  readonly signal?: AbortSignal;
}

/** Methods answered once. */
export type UnaryMethod = Exclude<ControlMethod, 'run.logs' | 'watch'>;
/** Methods answered by a stream. */
export type StreamMethod = Extract<ControlMethod, 'run.logs' | 'watch'>;

/** Stream items read ahead of the consumer before the client stops reading the socket. */
const READ_AHEAD_ITEMS = 64;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;

/**
 * Connects to the daemon of a project and says hello. Throws NOT_A_PROJECT, DAEMON_NOT_RUNNING,
 * SOCKET_PERMISSION_DENIED, DAEMON_NOT_ANSWERING, PROTOCOL_MISMATCH or ABORTED.
 */
export async function connect(options: ConnectOptions = {}): Promise<CharterClient> {
  const located =
    options.socketPath === undefined
      ? locateSocket(options.projectPath ?? '.')
      : { projectRoot: null, socketPath: options.socketPath };
  const settings: ClientSettings = {
    socketPath: located.socketPath,
    clientVersion: options.clientVersion ?? packageVersion,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    signal: options.signal,
  };
  const connection = await openConnection(settings, options.signal);
  return new CharterClient(located.projectRoot, settings, connection);
}

interface ClientSettings {
  readonly socketPath: string;
  readonly clientVersion: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly signal: AbortSignal | undefined;
}

export class CharterClient {
  /** The project root the socket was found for; null when `socketPath` was given. */
  readonly projectRoot: string | null;
  readonly socketPath: string;
  readonly #settings: ClientSettings;
  #connection: ControlConnection;
  #hello: HelloResult;
  #reopening: Promise<ControlConnection> | undefined;
  #closed = false;

  /** @internal Use `connect()`. */
  constructor(projectRoot: string | null, settings: ClientSettings, connection: ControlConnection) {
    this.projectRoot = projectRoot;
    this.socketPath = settings.socketPath;
    this.#settings = settings;
    this.#connection = connection;
    this.#hello = helloOf(connection);
  }

  /** The daemon's answer to the latest hello: protocol, daemon_version, pid. */
  get hello(): HelloResult {
    return this.#hello;
  }

  // ---- one method per control method -------------------------------------------------------

  status(options?: CallOptions): Promise<ControlResult<'status'>> {
    return this.call('status', {}, options);
  }

  /** Queues a run; the answer is `{run_id, state: 'queued'}`. */
  submitRun(
    params: ControlParamsInput<'run.submit'>,
    options?: CallOptions,
  ): Promise<ControlResult<'run.submit'>> {
    return this.call('run.submit', params, options);
  }

  /** The runs of the project, newest first, one page (`limit` runs, default 20) at a time. */
  async *listRuns(
    params: Partial<RunsListParams> = {},
    options?: CallOptions,
  ): AsyncGenerator<ControlResult<'runs.list'>, void, undefined> {
    let cursor = params.cursor;
    for (;;) {
      const page = await this.call(
        'runs.list',
        { ...params, ...(cursor === undefined ? {} : { cursor }) },
        options,
      );
      yield page;
      if (page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }

  showRun(runId: string, options?: CallOptions): Promise<ControlResult<'runs.show'>> {
    return this.call('runs.show', { run_id: runId }, options);
  }

  decideGate(params: GateDecideParams, options?: CallOptions): Promise<ControlResult<'gate.decide'>> {
    return this.call('gate.decide', params, options);
  }

  submitInput(params: InputSubmitParams, options?: CallOptions): Promise<ControlResult<'input.submit'>> {
    return this.call('input.submit', params, options);
  }

  cancelRun(params: RunCancelParams, options?: CallOptions): Promise<ControlResult<'run.cancel'>> {
    return this.call('run.cancel', params, options);
  }

  /**
   * A run's journal in batches. Without `follow` the history so far; with it, new entries as
   * they come until the run finishes (the last batch has `done: true`).
   */
  logs(
    runId: string,
    params: { readonly follow?: boolean; readonly afterSeq?: number } = {},
    options?: CallOptions,
  ): AsyncGenerator<ControlResult<'run.logs'>, void, undefined> {
    return this.stream(
      'run.logs',
      {
        run_id: runId,
        ...(params.follow === undefined ? {} : { follow: params.follow }),
        ...(params.afterSeq === undefined ? {} : { after_seq: params.afterSeq }),
      },
      options,
    );
  }

  /** The live view behind `charter-daemon top`; ends when the daemon stops. */
  watch(
    params: ControlParamsInput<'watch'> = {},
    options?: CallOptions,
  ): AsyncGenerator<ControlResult<'watch'>, void, undefined> {
    return this.stream('watch', params, options);
  }

  /** The Prometheus text exposition, as `GET /metrics` serves it. */
  metrics(options?: CallOptions): Promise<ControlResult<'metrics'>> {
    return this.call('metrics', {}, options);
  }

  /** Asks the daemon to drain and stop; it answers before it exits. */
  stop(params: ControlParamsInput<'stop'> = {}, options?: CallOptions): Promise<ControlResult<'stop'>> {
    return this.call('stop', params, options);
  }

  pruneStore(
    params: ControlParamsInput<'store.prune'> = {},
    options?: CallOptions,
  ): Promise<ControlResult<'store.prune'>> {
    return this.call('store.prune', params, options);
  }

  backupStore(
    params: ControlParamsInput<'store.backup'>,
    options?: CallOptions,
  ): Promise<ControlResult<'store.backup'>> {
    return this.call('store.backup', params, options);
  }

  /** The project's workflows (sorted by id), with whether each loads and its first problem if not. */
  listWorkflows(options?: CallOptions): Promise<ControlResult<'workflows.list'>> {
    return this.call('workflows.list', {}, options);
  }

  /** One workflow's inputs (types, defaults, required, secret) and steps; INVALID_WORKFLOW lists every problem. */
  showWorkflow(workflowId: string, options?: CallOptions): Promise<ControlResult<'workflows.show'>> {
    return this.call('workflows.show', { workflow_id: workflowId }, options);
  }

  // ---- any method ---------------------------------------------------------------------------

  /** Calls a method answered once; its result is validated against the method's schema. */
  async call<M extends UnaryMethod>(
    method: M,
    params: ControlParamsInput<M>,
    options: CallOptions = {},
  ): Promise<ControlResult<M>> {
    const connection = await this.#sharedConnection(options.signal);
    // Sound: the value was validated by this very schema, whose output type ControlResult<M> is.
    const result = await connection.request(
      method,
      params,
      methodResults[method],
      this.#requestOptions(options),
    );
    return result as ControlResult<M>;
  }

  /**
   * Calls a streaming method on a connection of its own and yields each item. Ending the loop
   * early (break, an exception, the signal) closes that connection.
   */
  async *stream<M extends StreamMethod>(
    method: M,
    params: ControlParamsInput<M>,
    options: CallOptions = {},
  ): AsyncGenerator<ControlResult<M>, void, undefined> {
    this.#checkOpen();
    const connection = await openConnection(this.#settings, options.signal ?? this.#settings.signal);
    const schema = methodResults[method];
    const items: ControlResult<M>[] = [];
    let ended = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    connection
      .stream(
        method,
        params,
        schema,
        (item) => {
          items.push(item as ControlResult<M>);
          // Backpressure: a consumer that falls behind stops the socket, not the client's memory.
          if (items.length >= READ_AHEAD_ITEMS) connection.pause();
          notify();
          return undefined;
        },
        this.#requestOptions(options),
      )
      .then(
        () => {
          ended = true;
          notify();
        },
        (error: unknown) => {
          failure = error;
          ended = true;
          notify();
        },
      );
    try {
      for (;;) {
        const item = items.shift();
        if (item !== undefined) {
          if (items.length < READ_AHEAD_ITEMS / 2) connection.resume();
          yield item;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      connection.close();
    }
  }

  /** Closes the shared connection; streams close their own when they end. */
  close(): void {
    this.#closed = true;
    this.#connection.close();
  }

  #requestOptions(options: CallOptions): RequestOptions {
    return { timeoutMs: options.timeoutMs ?? this.#settings.timeoutMs, signal: options.signal };
  }

  #checkOpen(): void {
    if (this.#closed) throw new CharterError('DAEMON_NOT_ANSWERING', 'this client was closed');
  }

  /** The shared connection, opened again if the daemon closed it since the last call. */
  async #sharedConnection(signal: AbortSignal | undefined): Promise<ControlConnection> {
    this.#checkOpen();
    if (this.#connection.usable) return this.#connection;
    this.#reopening ??= openConnection(this.#settings, signal ?? this.#settings.signal).finally(() => {
      this.#reopening = undefined;
    });
    const connection = await this.#reopening;
    if (this.#closed) {
      connection.close();
      this.#checkOpen();
    }
    this.#connection = connection;
    this.#hello = helloOf(connection);
    return connection;
  }
}

function openConnection(
  settings: ClientSettings,
  signal: AbortSignal | undefined,
): Promise<ControlConnection> {
  return ControlConnection.open({
    socketPath: settings.socketPath,
    clientVersion: settings.clientVersion,
    connectTimeoutMs: settings.connectTimeoutMs,
    helloTimeoutMs: settings.timeoutMs,
    signal,
  });
}

function helloOf(connection: ControlConnection): HelloResult {
  const hello = connection.hello;
  if (hello === undefined) throw new CharterError('BAD_RESPONSE', 'the daemon did not answer hello');
  return hello;
}
