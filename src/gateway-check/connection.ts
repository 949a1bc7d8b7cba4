/**
 * One scripted daemon-side connection of charter.v1: the upgrade the daemon makes (bearer token,
 * subprotocol, no compression, at most 1 MiB inbound; docs/protocol.md, "The upgrade request"),
 * every gateway frame read with the schemas of `src/protocol/gateway.ts`, gateway pings
 * answered and, from `welcome` on, a ping every `hb_ms` as the daemon sends ("Liveness"). What
 * it sends is up to the scenario; what it received is kept for the scenario to judge.
 */
import type { IncomingHttpHeaders } from 'node:http';
import WebSocket, { type RawData } from 'ws';
import { errorMessage } from '../errors/error-message.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  type DownFrame,
  GATEWAY_SUBPROTOCOL,
  type UpEvent,
  type UpFrame,
} from '../protocol/gateway.js';
import type { FrameLog } from './frame-log.js';
import { until } from './wait.js';

export type WelcomeFrame = Extract<DownFrame, { op: 'welcome' }>;
export type ErrorFrame = Extract<DownFrame, { op: 'error' }>;
export type CommandFrame = Extract<DownFrame, { op: 'command' }>;
export type HelloFrame = Extract<UpFrame, { op: 'hello' }>;

/**
 * What the upgrade offers as `Sec-WebSocket-Protocol`. `list`: the daemon's way (ws then checks
 * the answer selects one of them). `header`: the same header written by hand, which ws does not
 * check (to go on talking to a gateway that selects no subprotocol). `none`: no header.
 */
export type SubprotocolOffer =
  | { readonly kind: 'list'; readonly protocols: readonly string[] }
  | { readonly kind: 'header'; readonly value: string }
  | { readonly kind: 'none' };

export const DAEMON_OFFER: SubprotocolOffer = { kind: 'list', protocols: [GATEWAY_SUBPROTOCOL] };

export interface ConnectOptions {
  readonly endpoint: string;
  readonly token: string | null;
  readonly offer: SubprotocolOffer;
  readonly timeoutMs: number;
  readonly log: FrameLog;
}

export type UpgradeOutcome =
  | { readonly kind: 'open'; readonly conn: ScriptedConnection }
  | {
      readonly kind: 'refused';
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
    }
  | {
      readonly kind: 'failed';
      readonly message: string;
      /** The system error code (ECONNREFUSED, ENOTFOUND…) when the TCP connection failed. */
      readonly code: string | undefined;
      /** True when the gateway answered 101 (and the client then failed the handshake). */
      readonly upgraded: boolean;
      /** The subprotocol the 101 selected. */
      readonly selected: string | undefined;
    };

export type HelloOutcome =
  | { readonly kind: 'welcome'; readonly welcome: WelcomeFrame }
  | { readonly kind: 'closed'; readonly code: number; readonly error: ErrorFrame | undefined }
  | { readonly kind: 'timeout' };

/** An `ack` as received, with the highest seq this connection had sent by then. */
export interface AckSeen {
  readonly up: number;
  readonly upLimit: number;
  readonly sentMax: number;
}

/** Frames kept per connection at most; a gateway flooding past it is noted, not stored. */
const MAX_FRAMES_KEPT = 50_000;
const MAX_INVALID_KEPT = 5;
const MAX_PINGS_KEPT = 1_000;
const CLOSE_GRACE_MS = 1_000;

export function connect(options: ConnectOptions): Promise<UpgradeOutcome> {
  const headers: Record<string, string> = {};
  if (options.token !== null) headers.Authorization = `Bearer ${options.token}`;
  if (options.offer.kind === 'header') headers['Sec-WebSocket-Protocol'] = options.offer.value;
  const protocols = options.offer.kind === 'list' ? [...options.offer.protocols] : [];
  let ws: WebSocket;
  try {
    ws = new WebSocket(options.endpoint, protocols, {
      headers,
      maxPayload: DEFAULT_MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: options.timeoutMs,
      followRedirects: false,
    });
  } catch (error) {
    // ws refuses an invalid subprotocol name or URL before connecting.
    const failed: UpgradeOutcome = {
      kind: 'failed',
      message: errorMessage(error),
      code: undefined,
      upgraded: false,
      selected: undefined,
    };
    return Promise.resolve(failed);
  }
  return new Promise((resolve) => {
    let selected: string | undefined;
    let upgraded = false;
    let settled = false;
    const settle = (outcome: UpgradeOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    ws.on('upgrade', (res) => {
      upgraded = true;
      const header = res.headers['sec-websocket-protocol'];
      selected = Array.isArray(header) ? header.join(',') : header;
    });
    ws.on('unexpected-response', (req, res) => {
      settle({ kind: 'refused', status: res.statusCode ?? 0, headers: res.headers });
      res.resume();
      req.destroy();
    });
    ws.on('error', (error: Error & { code?: string }) => {
      settle({ kind: 'failed', message: errorMessage(error), code: error.code, upgraded, selected });
    });
    ws.on('open', () => {
      // Listeners go on before the first message can be delivered (same tick as 'open').
      settle({ kind: 'open', conn: new ScriptedConnection(ws, selected, options.log) });
    });
  });
}

export class ScriptedConnection {
  /** Every valid gateway frame, in order. */
  readonly frames: DownFrame[] = [];
  /** When each of `frames` arrived. */
  readonly frameAt: number[] = [];
  /** When each gateway message arrived (valid or not). */
  readonly arrivals: number[] = [];
  /** What was wrong with the invalid ones (the first few). */
  readonly invalid: string[] = [];
  readonly acks: AckSeen[] = [];
  /** Valid frames that came before `welcome`, by op (ping excepted). */
  readonly beforeWelcome: string[] = [];
  /** The kit's own pings: t → when sent. */
  readonly pingsSent = new Map<number, number>();
  welcome: WelcomeFrame | null = null;
  welcomedAt: number | null = null;
  closeCode: number | null = null;
  closeReason = '';
  sentMax = 0;
  #pinger: NodeJS.Timeout | null = null;
  #pingCounter = 0;

  constructor(
    readonly ws: WebSocket,
    /** The subprotocol the gateway selected (undefined: none). */
    readonly selected: string | undefined,
    private readonly log: FrameLog,
  ) {
    ws.on('message', (data: RawData, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('error', (error: Error & { code?: string }) => {
      // ws refuses a message over maxPayload (1 MiB, the daemon's limit) and closes with 1009.
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') log.oversized(errorMessage(error));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString().slice(0, 123);
      this.#stopPinger();
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: UpFrame): number {
    return this.sendText(JSON.stringify(frame));
  }

  /** Sends a text message as is; its size in bytes, 0 when the socket is no longer open. */
  sendText(text: string): number {
    if (!this.open) return 0;
    this.ws.send(text);
    return Buffer.byteLength(text);
  }

  sendEvents(events: readonly UpEvent[]): number {
    const bytes = this.send({ op: 'events', events: [...events] });
    for (const event of events) this.sentMax = Math.max(this.sentMax, event.seq);
    return bytes;
  }

  /** Sends hello and waits for welcome, a close, or the deadline. */
  async hello(hello: HelloFrame, timeoutMs: number): Promise<HelloOutcome> {
    this.send(hello);
    const outcome = await until<HelloOutcome>(() => {
      if (this.welcome !== null) return { kind: 'welcome', welcome: this.welcome };
      if (this.closeCode !== null) return { kind: 'closed', code: this.closeCode, error: this.errorFrame() };
      return undefined;
    }, timeoutMs);
    return outcome ?? { kind: 'timeout' };
  }

  /** Waits for the close (its code), or null at the deadline. */
  async closed(timeoutMs: number): Promise<number | null> {
    return (await until(() => this.closeCode ?? undefined, timeoutMs)) ?? null;
  }

  /** A ping with a fresh `t`; true once its pong came back (everything sent before it is read). */
  async roundTrip(timeoutMs: number): Promise<boolean> {
    const t = this.#ping();
    const pong = await until(
      () =>
        this.frames.find((frame) => frame.op === 'pong' && frame.t === t) ?? (this.open ? undefined : null),
      timeoutMs,
    );
    return pong !== undefined && pong !== null;
  }

  errorFrame(): ErrorFrame | undefined {
    return this.frames.find((frame): frame is ErrorFrame => frame.op === 'error');
  }

  commands(): CommandFrame[] {
    return this.frames.filter((frame): frame is CommandFrame => frame.op === 'command');
  }

  /** Closes with 1000 and waits for the close handshake (at most 1 s), else drops the socket. */
  async close(): Promise<void> {
    this.#stopPinger();
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, 'gateway-check done');
    else this.ws.terminate();
    if ((await this.closed(CLOSE_GRACE_MS)) === null) this.ws.terminate();
    await this.closed(CLOSE_GRACE_MS);
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    const read = this.log.read(data, isBinary);
    if (this.arrivals.length >= MAX_FRAMES_KEPT) {
      if (this.arrivals.length === MAX_FRAMES_KEPT)
        this.log.violation(`more than ${MAX_FRAMES_KEPT} frames on one connection`);
      this.arrivals.push(Date.now());
      return;
    }
    this.arrivals.push(Date.now());
    if (typeof read === 'string') {
      if (this.invalid.length < MAX_INVALID_KEPT) this.invalid.push(read);
      return;
    }
    this.frames.push(read);
    this.frameAt.push(Date.now());
    switch (read.op) {
      case 'ping':
        this.send({ op: 'pong', t: read.t });
        return;
      case 'ack':
        this.acks.push({ up: read.up, upLimit: read.up_limit, sentMax: this.sentMax });
        break;
      case 'welcome':
        if (this.welcome === null) {
          this.welcome = read;
          this.welcomedAt = Date.now();
          this.#startPinger(read.hb_ms);
          return;
        }
        break;
    }
    if (this.welcome === null && read.op !== 'error') this.beforeWelcome.push(read.op);
  }

  #ping(): number {
    this.#pingCounter += 1;
    // Distinct from the clock values of the periodic pings: a fraction never equals Date.now().
    const t = Date.now() + this.#pingCounter / 1000;
    this.pingsSent.set(t, Date.now());
    if (this.pingsSent.size > MAX_PINGS_KEPT) {
      const oldest = this.pingsSent.keys().next();
      if (oldest.done !== true) this.pingsSent.delete(oldest.value);
    }
    this.send({ op: 'ping', t });
    return t;
  }

  #startPinger(hbMs: number): void {
    this.#stopPinger();
    this.#pinger = setInterval(() => {
      if (this.open) this.#ping();
    }, hbMs);
  }

  #stopPinger(): void {
    if (this.#pinger !== null) clearInterval(this.#pinger);
    this.#pinger = null;
  }
}
