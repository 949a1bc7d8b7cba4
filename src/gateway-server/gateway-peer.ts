/**
 * A real, strict charter.v1 gateway for tests: it listens on 127.0.0.1, authenticates the
 * upgrade, validates every daemon frame with the zod schemas of `src/protocol/gateway.ts`,
 * stores events (gap-free, deduplicated, within credit), acks them, queues and resends commands,
 * heartbeats, and can be told to misbehave (refuse, stop acking, go silent, cut a batch, close
 * with a code, drop every connection at once, restart on the same port, with a downtime). What
 * it stores survives `restart()`: it stands for the gateway's durable store. Nothing here sleeps
 * for a fixed time (but a restart's chosen downtime); waits poll until a deadline.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { rawLength, rawText } from '../gateway/ws-data.js';
import {
  CloseCode,
  type CommandFrame,
  CommandFrameSchema,
  type CommandKind,
  DEFAULT_MAX_FRAME_BYTES,
  type DownFrame,
  DownFrameSchema,
  GATEWAY_PROTOCOL_VERSION,
  GATEWAY_SUBPROTOCOL,
  type UpEvent,
  type UpFrame,
  UpFrameSchema,
} from '../protocol/gateway.js';

export type { CommandFrame, CommandKind, UpEvent };

const HOST = '127.0.0.1';
const DAEMON_PATH = '/v1/daemon';
const MAX_FRAME_RECORDS = 10_000;
/** How long a close handshake may take before the socket is terminated. */
const CLOSE_GRACE_MS = 1_000;
const DEFAULT_WAIT_MS = 5_000;
const MAX_CLOSE_REASON_BYTES = 123;

export interface GatewayPeerOptions {
  /** 0 (the default) = an ephemeral port. Always bound to 127.0.0.1. */
  port?: number;
  /** '' or '/base': the daemon endpoint is `${basePath}/v1/daemon`. */
  basePath?: string;
  /** The bearer token an upgrade must carry (default 'test-token'). */
  token?: string;
  /** Heartbeat interval announced in `welcome` and used for the gateway's pings (default 1000). */
  hbMs?: number;
  /** Largest daemon frame accepted: `welcome.max_frame` and ws `maxPayload` (default 1 MiB). */
  maxFrame?: number;
  /** Credit window: every grant is `up_limit = storedMax + initialCredit` (default 1000). */
  initialCredit?: number;
  /** Called for every frame recorded (in and out); dev-gateway prints them. */
  onFrame?: (record: FrameRecord) => void;
  /** Called for connection-level happenings (upgrade refused, connection opened/closed). */
  onNote?: (note: string) => void;
  /** Deliberate protocol violations, for tests and demos only (see `GatewayMisbehaviour`). */
  misbehave?: GatewayMisbehaviour;
  // ---- for the dev gateway (`charter-daemon dev-gateway`) ----
  /** Called once for every event newly stored, in seq order (never for a duplicate). */
  onEvent?: (event: UpEvent) => void;
  /** Called when a connection is welcomed, fails (the gateway sent `error` and closes), or closes. */
  onConnection?: (change: ConnectionChange) => void;
  /**
   * For a gateway that keeps nothing across its own restarts: a hello of the stored (or first)
   * daemon whose `down_applied` is past the last dseq moves the command queue on to it (those
   * commands are stored at the daemon; they cannot be resent from here anyway), instead of
   * refusing the cursor with 4006 (docs/protocol.md, "`down_applied` in `hello`").
   */
  adoptDownApplied?: boolean;
}

/** The daemon's `hello`, as the gateway received it. */
export type DaemonHello = Extract<UpFrame, { op: 'hello' }>;

/** What became of a connection, for `onConnection`. */
export type ConnectionChange =
  | { readonly kind: 'welcomed'; readonly connId: string; readonly hello: DaemonHello }
  | {
      readonly kind: 'failed';
      readonly connId: string;
      readonly code: number;
      readonly message: string;
      /** The connection's hello, when it sent one. */
      readonly hello: DaemonHello | null;
    }
  | { readonly kind: 'closed'; readonly record: ConnectionRecord };

export interface FrameRecord {
  readonly dir: 'in' | 'out';
  /** The parsed JSON; the raw text when it was not JSON; `{ binary: n }` / `{ oversized: n }`. */
  readonly frame: unknown;
  /** Its size on the wire, in bytes (what `max_frame` limits). */
  readonly bytes: number;
  readonly at: number;
  readonly connId: string;
}

export interface ConnectionRecord {
  readonly connId: string;
  daemonId: string | null;
  epoch: number | null;
  /** The code the gateway closed with, else the one the close event reported (1006: dropped). */
  closedWith: number | null;
  readonly openedAt: number;
  closedAt: number | null;
}

export interface UpgradeRecord {
  readonly at: number;
  /** 101 when accepted, else the HTTP status answered. */
  readonly status: number;
  readonly why: string;
}

/** Where a flapping gateway drops each connection (see `dropConnections`). */
export type DropPoint = 'upgrade' | 'welcome';

export interface CommandInput {
  cmd_id: string;
  kind: CommandKind;
  run_id?: string;
  args: Record<string, unknown>;
}

interface Conn {
  readonly ws: WebSocket;
  readonly record: ConnectionRecord;
  welcomed: boolean;
  /** The last `up_limit` actually sent on this connection. */
  grantedLimit: number;
  /** The last `ack.up` actually sent on this connection. */
  ackedUp: number;
  /** Highest dseq the daemon is known to have on this connection (down_applied, then sends). */
  sentDseq: number;
  /** Last cack.down (or down_applied) on this connection: must not go backwards. */
  lastCack: number;
  lastInbound: number;
  lastPingSent: number;
  /** We started closing (or terminated): further inbound frames are ignored. */
  closing: boolean;
  sentCloseCode: number | null;
  /** Messages that arrived while the gateway was a zombie, handled when it wakes up. */
  readonly backlog: { data: RawData; isBinary: boolean }[];
  readonly timers: Set<NodeJS.Timeout>;
  tick: NodeJS.Timeout | null;
}

/** A command in the gateway's durable queue: its text as sent, and its frame unless raw. */
interface QueuedCommand {
  readonly dseq: number;
  readonly text: string;
  readonly frame: CommandFrame | null;
}

type EventCheck =
  | { ok: true; fresh: UpEvent[]; duplicates: number; conflicts: string[] }
  | { ok: false; code: number; why: string };

export class GatewayPeer {
  /** `http://127.0.0.1:PORT[/base]`: what a daemon is given as --gateway. */
  readonly url: string;
  /** Every stored event, in seq order, each seq once (events[i].seq === i + 1). */
  readonly events: UpEvent[] = [];
  /** Every `cack.down` received, in order. */
  readonly commandAcks: number[] = [];
  /** Every frame in and out (the last 10,000). */
  readonly frames: FrameRecord[] = [];
  readonly connections: ConnectionRecord[] = [];
  /** Every daemon frame the gateway rejected, with why (`connId: why`). */
  readonly protocolErrors: string[] = [];
  /** Every upgrade attempt and what it was answered. */
  readonly upgrades: UpgradeRecord[] = [];

  readonly #port: number;
  readonly #basePath: string;
  readonly #hbMs: number;
  readonly #maxFrame: number;
  readonly #credit: number;
  readonly #onFrame: ((record: FrameRecord) => void) | undefined;
  readonly #onNote: ((note: string) => void) | undefined;
  readonly #wss: WebSocketServer;
  readonly #devHooks: DevHooks;

  #tokenHash: Buffer;
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  readonly #conns = new Set<Conn>();
  #current: Conn | null = null;
  #connCounter = 0;
  #stopped = false;
  #stopping: Promise<void> | null = null;

  // durable state (survives restart)
  readonly #commands: QueuedCommand[] = [];
  readonly #epochs = new Map<string, number>();
  #daemonId: string | null = null;
  readonly #runSeqs = new Map<string, number>();
  readonly #runSeqViolations: string[] = [];
  readonly #conflicts: string[] = [];
  #duplicates = 0;

  // faults
  #refusal: { status: 401 | 403 | 429 | 503; retryAfter: number | undefined } | null = null;
  #acking = true;
  #ackDelayMs = 0;
  #zombie = false;
  #closeMidBatch = false;
  #dropAt: DropPoint | null = null;
  readonly #misbehave: GatewayMisbehaviour;
  /** Highest dseq ever sent on any connection (only `misbehave.noCommandResend` reads it). */
  #everSentDseq = 0;

  private constructor(options: GatewayPeerOptions, port: number, wss: WebSocketServer) {
    this.#port = port;
    this.#basePath = normaliseBasePath(options.basePath ?? '');
    this.#tokenHash = sha256(options.token ?? 'test-token');
    this.#hbMs = options.hbMs ?? 1000;
    this.#maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME_BYTES;
    this.#credit = options.initialCredit ?? 1000;
    this.#onFrame = options.onFrame;
    this.#onNote = options.onNote;
    this.#misbehave = options.misbehave ?? {};
    this.#wss = wss;
    this.#devHooks = devHooksOf(options);
    this.url = `http://${HOST}:${port}${this.#basePath}`;
  }

  static async start(options: GatewayPeerOptions = {}): Promise<GatewayPeer> {
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new RangeError(`port must be an integer in 0..65535, got ${port}`);
    }
    const hbMs = options.hbMs ?? 1000;
    if (!Number.isInteger(hbMs) || hbMs < 100 || hbMs > 600_000) {
      throw new RangeError(`hbMs must be an integer in 100..600000 (welcome.hb_ms), got ${hbMs}`);
    }
    const maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(maxFrame) || maxFrame < 1024 || maxFrame > 64 * 1024 * 1024) {
      throw new RangeError(
        `maxFrame must be an integer in 1024..64 MiB (welcome.max_frame), got ${maxFrame}`,
      );
    }
    const credit = options.initialCredit ?? 1000;
    if (!Number.isInteger(credit) || credit < 0) {
      throw new RangeError(`initialCredit must be a non-negative integer, got ${credit}`);
    }
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxFrame,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) =>
        protocols.has(GATEWAY_SUBPROTOCOL) ? selectedSubprotocol(options.misbehave) : false,
    });
    wss.on('error', () => {});
    const server = createServer();
    const bound = await listen(server, port);
    const peer = new GatewayPeer(options, bound, wss);
    peer.#attach(server);
    return peer;
  }

  // ---- what it saw ---------------------------------------------------------------------------

  storedMax(): number {
    return this.events.length;
  }

  /** Events received again (seq ≤ stored max), counted per event. */
  duplicatesSeen(): number {
    return this.#duplicates;
  }

  /** Events of a run whose run_seq is not exactly previous + 1 (the first is 1), or run_seq without run_id. */
  runSeqViolations(): string[] {
    return [...this.#runSeqViolations];
  }

  /** Duplicates whose content differs from the stored event of the same seq. */
  conflictingDuplicates(): string[] {
    return [...this.#conflicts];
  }

  /** Every command queued so far with `sendCommand`, in dseq order (raw ones left out). */
  commands(): CommandFrame[] {
    return this.#commands.flatMap((command) => (command.frame === null ? [] : [command.frame]));
  }

  /** The current (welcomed, open) connection's record, if any. */
  currentConnection(): ConnectionRecord | null {
    const conn = this.#current;
    return conn !== null && isOpen(conn) ? conn.record : null;
  }

  async waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what} (gateway: stored ${this.storedMax()}, ` +
            `${this.connections.length} connection(s), current ${this.#current?.record.connId ?? 'none'}, ` +
            `protocol errors ${JSON.stringify(this.protocolErrors.slice(-3))})`,
        );
      }
      await sleep(5);
    }
  }

  /** Resolves once a welcomed connection is open. */
  waitForConnection(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return this.waitFor(() => this.currentConnection() !== null, timeoutMs, 'a welcomed daemon connection');
  }

  // ---- commands ------------------------------------------------------------------------------

  /** Assigns the next dseq, queues the command and sends it now if a daemon is connected. */
  sendCommand(cmd: CommandInput): number {
    const frame = CommandFrameSchema.parse({ op: 'command', dseq: this.#commands.length + 1, ...cmd });
    this.#commands.push({ dseq: frame.dseq, text: JSON.stringify(frame), frame });
    const conn = this.#current;
    if (conn !== null) this.#flushCommands(conn);
    return frame.dseq;
  }

  /**
   * Queues a command frame written as is, under the next dseq, like any command (sent now if a
   * daemon is connected, resent after every hello until acknowledged): for contents the schema
   * would refuse, such as an unknown kind or args nested 10,000 deep. `text` gets the dseq.
   */
  sendRawCommand(text: (dseq: number) => string): number {
    const dseq = this.#commands.length + 1;
    this.#commands.push({ dseq, text: text(dseq), frame: null });
    const conn = this.#current;
    if (conn !== null) this.#flushCommands(conn);
    return dseq;
  }

  // ---- faults --------------------------------------------------------------------------------

  /** From now on only `token` is accepted (open connections are left alone). */
  setToken(token: string): void {
    this.#tokenHash = sha256(token);
  }

  refuseUpgrades(status: 401 | 403 | 429 | 503, retryAfterSeconds?: number): void {
    this.#refusal = { status, retryAfter: retryAfterSeconds };
  }

  clearRefusal(): void {
    this.#refusal = null;
  }

  /** Events are still stored, but no ack (and so no new credit) is sent. */
  stopAcking(): void {
    this.#acking = false;
  }

  /** Acks again, at once, what has been stored meanwhile. */
  resumeAcking(): void {
    this.#acking = true;
    const conn = this.#current;
    if (conn?.welcomed && !conn.closing) this.#sendAck(conn);
  }

  /** Each ack is sent `ms` later than it would be (0: at once again). */
  delayAcks(ms: number): void {
    this.#ackDelayMs = Math.max(0, ms);
  }

  /**
   * On: the gateway freezes — it reads nothing (the sockets are paused, so not even ws-level
   * pings are answered), sends nothing, pings nobody, times nobody out; TCP connections stay
   * up and new ones are accepted but not served. Off: it reads what queued up meanwhile.
   */
  zombie(on: boolean): void {
    if (this.#zombie === on) return;
    this.#zombie = on;
    for (const conn of this.#conns) {
      if (on) {
        conn.ws.pause();
      } else {
        conn.lastInbound = Date.now();
        conn.ws.resume();
        this.#drainBacklog(conn);
        if (conn.welcomed && !conn.closing) {
          if (conn === this.#current) this.#flushCommands(conn);
          if (this.#acking && conn.ackedUp < this.storedMax()) this.#sendAck(conn);
        }
      }
    }
  }

  /** The next events frame: store only its first half (floor(n/2)), send no ack, terminate. */
  closeMidBatch(): void {
    this.#closeMidBatch = true;
  }

  /**
   * A flapping gateway: every new connection is accepted (101) and then terminated at once, so
   * the daemon sees 1006 — right after the upgrade, before any frame ('upgrade'), or as soon as
   * the `welcome` is written ('welcome'). null: serve new connections normally again.
   */
  dropConnections(at: DropPoint | null): void {
    this.#dropAt = at;
  }

  /** Sends `text` as is to the current connection (even as a zombie). */
  sendRaw(text: string): void {
    const conn = this.#target('sendRaw');
    this.#record('out', conn, parseOrRaw(text), Buffer.byteLength(text));
    conn.ws.send(text, noop);
  }

  /** A valid-JSON `ping` frame padded beyond the daemon's largest frame (default: 1 MiB + 1 KiB). */
  sendOversized(bytes = Math.max(DEFAULT_MAX_FRAME_BYTES, this.#maxFrame) + 1024): void {
    const conn = this.#target('sendOversized');
    const head = `{"op":"ping","t":${Date.now()},"pad":"`;
    const text = `${head}${'x'.repeat(Math.max(0, bytes - head.length - 2))}"}`;
    this.#record('out', conn, { oversized: Buffer.byteLength(text) }, Buffer.byteLength(text));
    conn.ws.send(text, noop);
  }

  /** Closes the current connection with `code` (for 4000-4999 an `error` frame goes first). */
  close(code: number, reason?: string): void {
    const conn = this.#target('close');
    const message = reason ?? closeCodeName(code);
    if (code >= 4000 && code <= 4999) this.#send(conn, { op: 'error', code, message }, true);
    this.#closeConn(conn, code, message);
  }

  /**
   * Stops listening, terminates every connection, listens again on the same port: at once, or
   * after `downMs` during which connections are refused (a process being replaced).
   */
  async restart(downMs = 0): Promise<void> {
    if (this.#stopped) throw new Error('GatewayPeer.restart() after stop()');
    await this.#shutdown();
    if (downMs > 0) await sleep(downMs);
    if (this.#stopped) return;
    const server = createServer();
    await listen(server, this.#port);
    this.#attach(server);
    this.#note(`restarted on ${this.url}`);
  }

  /** Idempotent. */
  stop(): Promise<void> {
    if (this.#stopping === null) {
      this.#stopped = true;
      this.#stopping = this.#shutdown().then(
        () => new Promise<void>((resolve) => this.#wss.close(() => resolve())),
      );
    }
    return this.#stopping;
  }

  // ---- server --------------------------------------------------------------------------------

  #attach(server: Server): void {
    this.#server = server;
    server.on('error', () => {});
    server.on('clientError', (_error, socket) => socket.destroy());
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
    });
    server.on('request', (req, res) => {
      const onPath = pathOf(req) === `${this.#basePath}${DAEMON_PATH}`;
      res.writeHead(onPath ? 426 : 404, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end(onPath ? 'WebSocket upgrade required\n' : 'Not found\n');
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onUpgrade(req, socket, head),
    );
  }

  async #shutdown(): Promise<void> {
    for (const conn of [...this.#conns]) {
      this.#terminate(conn);
    }
    this.#current = null;
    const server = this.#server;
    this.#server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const refuse = (status: number, why: string, headers: Record<string, string> = {}): void => {
      this.upgrades.push({ at: Date.now(), status, why });
      this.#note(`upgrade refused: ${status} (${why})`);
      rejectUpgrade(socket, status, headers, `${why}\n`);
    };
    if (this.#stopped || this.#server === null) {
      refuse(503, 'gateway stopping');
      return;
    }
    const refusal = this.#refusal;
    if (refusal !== null) {
      const headers: Record<string, string> =
        refusal.retryAfter === undefined ? {} : { 'Retry-After': String(refusal.retryAfter) };
      if (refusal.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="charter-gateway"';
      refuse(refusal.status, 'refused (fault injected)', headers);
      return;
    }
    if (pathOf(req) !== `${this.#basePath}${DAEMON_PATH}`) {
      refuse(404, `no daemon endpoint at ${req.url ?? ''}`);
      return;
    }
    const bearer = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer === undefined || !timingSafeEqual(sha256(bearer), this.#tokenHash)) {
      refuse(401, bearer === undefined ? 'missing bearer token' : 'wrong bearer token', {
        'WWW-Authenticate': 'Bearer realm="charter-gateway"',
      });
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    if (!offered.includes(GATEWAY_SUBPROTOCOL)) {
      refuse(400, `subprotocol ${GATEWAY_SUBPROTOCOL} not offered (got ${JSON.stringify(offered)})`);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.upgrades.push({ at: Date.now(), status: 101, why: 'accepted' });
      this.#onConnection(ws);
    });
  }

  #onConnection(ws: WebSocket): void {
    const now = Date.now();
    this.#connCounter += 1;
    const record: ConnectionRecord = {
      connId: `gw-${this.#connCounter}-${randomBytes(3).toString('hex')}`,
      daemonId: null,
      epoch: null,
      closedWith: null,
      openedAt: now,
      closedAt: null,
    };
    this.connections.push(record);
    const conn: Conn = {
      ws,
      record,
      welcomed: false,
      grantedLimit: 0,
      ackedUp: 0,
      sentDseq: 0,
      lastCack: 0,
      lastInbound: now,
      lastPingSent: now,
      closing: false,
      sentCloseCode: null,
      backlog: [],
      timers: new Set(),
      tick: null,
    };
    this.#conns.add(conn);
    this.#note(`${record.connId} open`);
    ws.on('error', (error: Error & { code?: string }) => {
      // ws-level violations (too large, bad UTF-8, unmasked…) are frame failures; ws closes itself.
      if (typeof error.code === 'string' && error.code.startsWith('WS_ERR_')) {
        this.protocolErrors.push(`${record.connId}: ${error.message} (${error.code})`);
      }
    });
    ws.on('message', (data, isBinary) => {
      if (this.#zombie) {
        conn.backlog.push({ data, isBinary });
        return;
      }
      this.#onMessage(conn, data, isBinary);
    });
    ws.on('close', (code) => {
      record.closedWith = conn.sentCloseCode ?? code;
      record.closedAt = Date.now();
      conn.closing = true;
      for (const timer of conn.timers) clearTimeout(timer);
      conn.timers.clear();
      if (conn.tick !== null) clearInterval(conn.tick);
      conn.tick = null;
      this.#conns.delete(conn);
      if (this.#current === conn) this.#current = null;
      this.#note(`${record.connId} closed with ${record.closedWith}`);
      this.#devClosed(record);
    });
    conn.tick = setInterval(() => this.#onTick(conn), Math.max(25, Math.floor(this.#hbMs / 4)));
    if (this.#zombie) ws.pause();
    if (this.#dropAt === 'upgrade') this.#terminate(conn);
  }

  #onTick(conn: Conn): void {
    if (this.#zombie || conn.closing) return;
    const now = Date.now();
    if (now - conn.lastInbound > 2 * this.#hbMs) {
      this.#fail(conn, CloseCode.heartbeatTimeout, `no frame for ${now - conn.lastInbound} ms`);
      return;
    }
    if (conn.welcomed && now - conn.lastPingSent >= this.#hbMs) {
      conn.lastPingSent = now;
      this.#send(conn, { op: 'ping', t: now });
    }
  }

  #drainBacklog(conn: Conn): void {
    while (!this.#zombie && conn.backlog.length > 0) {
      const next = conn.backlog.shift();
      if (next !== undefined) this.#onMessage(conn, next.data, next.isBinary);
    }
  }

  // ---- inbound -------------------------------------------------------------------------------

  #onMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    conn.lastInbound = Date.now();
    if (conn.closing) return;
    if (isBinary) {
      this.#record('in', conn, { binary: rawLength(data) }, rawLength(data));
      this.#protocolError(conn, CloseCode.invalidFrame, 'binary message (charter.v1 is text JSON only)');
      return;
    }
    const text = rawText(data);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      this.#record('in', conn, text, rawLength(data));
      this.#protocolError(conn, CloseCode.invalidFrame, `not JSON: ${(error as Error).message}`);
      return;
    }
    this.#record('in', conn, json, rawLength(data));
    const parsed = UpFrameSchema.safeParse(json);
    if (!parsed.success) {
      const op = isRecord(json) && typeof json.op === 'string' ? json.op : '?';
      this.#protocolError(
        conn,
        CloseCode.invalidFrame,
        `invalid frame (op ${op}): ${z.prettifyError(parsed.error)}`,
      );
      return;
    }
    const frame = parsed.data;
    if (!conn.welcomed && frame.op !== 'hello') {
      this.#protocolError(conn, CloseCode.invalidFrame, `'${frame.op}' before hello (hello must come first)`);
      return;
    }
    this.#dispatch(conn, frame);
  }

  #dispatch(conn: Conn, frame: UpFrame): void {
    switch (frame.op) {
      case 'hello':
        this.#onHello(conn, frame);
        return;
      case 'events':
        this.#onEvents(conn, frame.events);
        return;
      case 'cack':
        this.#onCack(conn, frame.down);
        return;
      case 'ping':
        this.#send(conn, { op: 'pong', t: frame.t });
        return;
      case 'pong':
      case 'error':
        return;
    }
  }

  #onHello(conn: Conn, hello: Extract<UpFrame, { op: 'hello' }>): void {
    if (conn.welcomed) {
      this.#protocolError(conn, CloseCode.invalidFrame, 'second hello on one connection');
      return;
    }
    this.#devHello(conn, hello);
    conn.record.daemonId = hello.daemon_id;
    conn.record.epoch = hello.epoch;
    if (hello.protocol !== GATEWAY_PROTOCOL_VERSION) {
      this.#protocolError(
        conn,
        CloseCode.unsupportedProtocol,
        `hello.protocol ${hello.protocol} unsupported (this gateway speaks ${GATEWAY_PROTOCOL_VERSION})`,
      );
      return;
    }
    if (this.#daemonId !== null && hello.daemon_id !== this.#daemonId) {
      this.#protocolError(
        conn,
        CloseCode.unknown,
        `daemon_id ${hello.daemon_id} differs from ${this.#daemonId}: this test gateway stores one daemon's stream`,
      );
      return;
    }
    if (hello.down_applied > this.#commands.length) {
      this.#protocolError(
        conn,
        CloseCode.cursorInvalid,
        `hello.down_applied ${hello.down_applied} > last dseq ${this.#commands.length}`,
      );
      return;
    }
    const seen = this.#epochs.get(hello.daemon_id);
    if (seen !== undefined && hello.epoch < seen) {
      this.#fail(conn, CloseCode.superseded, `epoch ${hello.epoch} is older than epoch ${seen} already seen`);
      return;
    }
    this.#daemonId = hello.daemon_id;
    this.#epochs.set(hello.daemon_id, hello.epoch);
    // One current connection per daemon: the newest hello (same or newer epoch) wins.
    for (const other of this.#conns) {
      if (other !== conn && other.welcomed && !other.closing && other.record.daemonId === hello.daemon_id) {
        this.#fail(other, CloseCode.superseded, `superseded by ${conn.record.connId} (epoch ${hello.epoch})`);
      }
    }
    conn.welcomed = true;
    this.#current = conn;
    const upCommitted = this.storedMax();
    const upLimit = upCommitted + this.#credit;
    const drop = this.#dropAt === 'welcome' ? () => this.#terminate(conn) : undefined;
    const sent = this.#send(
      conn,
      {
        op: 'welcome',
        conn_id: conn.record.connId,
        hb_ms: this.#hbMs,
        max_frame: this.#maxFrame,
        up_committed: upCommitted,
        up_limit: upLimit,
        server_time: new Date().toISOString(),
      },
      false,
      drop,
    );
    if (drop !== undefined) {
      if (!sent) drop();
      return;
    }
    conn.grantedLimit = upLimit;
    conn.ackedUp = upCommitted;
    conn.lastPingSent = Date.now();
    conn.sentDseq = this.#misbehave.noCommandResend
      ? Math.max(hello.down_applied, this.#everSentDseq)
      : hello.down_applied;
    conn.lastCack = hello.down_applied;
    this.#flushCommands(conn);
    this.#devHooks.onConnection?.({ kind: 'welcomed', connId: conn.record.connId, hello });
  }

  #onEvents(conn: Conn, events: UpEvent[]): void {
    if (this.#closeMidBatch) {
      this.#closeMidBatch = false;
      const half = events.slice(0, Math.floor(events.length / 2));
      const check = this.#checkEvents(conn, half);
      if (!check.ok) {
        this.#protocolError(conn, check.code, check.why);
        return;
      }
      this.#store(check);
      this.#note(`${conn.record.connId}: closeMidBatch stored ${half.length} of ${events.length}`);
      this.#terminate(conn);
      return;
    }
    const check = this.#checkEvents(conn, events);
    if (!check.ok) {
      this.#protocolError(conn, check.code, check.why);
      return;
    }
    this.#store(check);
    if (!this.#acking) return;
    if (this.#ackDelayMs > 0) {
      const timer = setTimeout(() => {
        conn.timers.delete(timer);
        if (this.#acking && !conn.closing) this.#sendAck(conn);
      }, this.#ackDelayMs);
      conn.timers.add(timer);
    } else {
      this.#sendAck(conn);
    }
  }

  /** A frame is stored wholly or not at all: every event is checked before any is stored. */
  #checkEvents(conn: Conn, events: UpEvent[]): EventCheck {
    const fresh: UpEvent[] = [];
    const conflicts: string[] = [];
    let duplicates = 0;
    let max = this.storedMax();
    for (const event of events) {
      if (event.seq <= max && this.#misbehave.noDedupe) {
        fresh.push(event); // misbehaving: a resent event is stored again, as if it were new
        continue;
      }
      if (event.seq <= max) {
        duplicates += 1;
        const stored =
          event.seq <= this.storedMax()
            ? this.events[event.seq - 1]
            : fresh[event.seq - this.storedMax() - 1];
        if (stored !== undefined && canonical(stored) !== canonical(event)) {
          conflicts.push(
            `seq ${event.seq} resent with different content: ${canonical(event)} ≠ stored ${canonical(stored)}`,
          );
        }
        continue;
      }
      if (event.seq > conn.grantedLimit && !this.#misbehave.ignoreCredit) {
        return {
          ok: false,
          code: CloseCode.flowControl,
          why: `seq ${event.seq} > up_limit ${conn.grantedLimit} (credit exceeded)`,
        };
      }
      if (event.seq !== max + 1) {
        return {
          ok: false,
          code: CloseCode.cursorInvalid,
          why: `gap: seq ${event.seq} after ${max} (expected ${max + 1})`,
        };
      }
      fresh.push(event);
      max = event.seq;
    }
    return { ok: true, fresh, duplicates, conflicts };
  }

  #store(check: Extract<EventCheck, { ok: true }>): void {
    this.#duplicates += check.duplicates;
    this.#conflicts.push(...check.conflicts);
    for (const event of check.fresh) {
      this.events.push(event);
      this.#devHooks.onEvent?.(event);
      if (event.run_id === null) {
        if (event.run_seq !== null) {
          this.#runSeqViolations.push(`seq ${event.seq}: run_seq ${event.run_seq} without a run_id`);
        }
        continue;
      }
      const previous = this.#runSeqs.get(event.run_id) ?? 0;
      if (event.run_seq !== previous + 1) {
        this.#runSeqViolations.push(
          `run ${event.run_id}: seq ${event.seq} (${event.type}) has run_seq ${event.run_seq}, expected ${previous + 1}`,
        );
      }
      this.#runSeqs.set(event.run_id, event.run_seq ?? previous);
    }
  }

  #onCack(conn: Conn, down: number): void {
    this.commandAcks.push(down);
    if (down > conn.sentDseq) {
      this.#protocolError(
        conn,
        CloseCode.cursorInvalid,
        `cack.down ${down} > last dseq sent on this connection (${conn.sentDseq})`,
      );
      return;
    }
    if (down < conn.lastCack) {
      this.#protocolError(
        conn,
        CloseCode.invalidFrame,
        `cack.down ${down} went backwards (was ${conn.lastCack})`,
      );
      return;
    }
    conn.lastCack = down;
  }

  // ---- outbound ------------------------------------------------------------------------------

  #sendAck(conn: Conn): void {
    const up = this.storedMax();
    const upLimit = up + this.#credit;
    if (this.#send(conn, { op: 'ack', up, up_limit: upLimit })) {
      conn.ackedUp = up;
      conn.grantedLimit = Math.max(conn.grantedLimit, upLimit);
      // misbehaving: a second, smaller ack right after the real one
      if (this.#misbehave.ackBackwards && up > 0)
        this.#send(conn, { op: 'ack', up: up - 1, up_limit: upLimit });
    }
  }

  #flushCommands(conn: Conn): void {
    if (!conn.welcomed || conn.closing) return;
    while (conn.sentDseq < this.#commands.length) {
      const command = this.#commands[conn.sentDseq];
      if (command === undefined) return;
      const sent =
        command.frame === null ? this.#sendText(conn, command.text) : this.#send(conn, command.frame);
      if (!sent) return;
      conn.sentDseq = command.dseq;
      this.#everSentDseq = Math.max(this.#everSentDseq, command.dseq);
    }
  }

  /**
   * Sends a frame unless the gateway is a zombie (or `force`); false when nothing was sent.
   * `written` runs once the frame is handed to the socket.
   */
  #send(conn: Conn, frame: DownFrame, force = false, written: () => void = noop): boolean {
    if ((this.#zombie && !force) || conn.ws.readyState !== WebSocket.OPEN) return false;
    DownFrameSchema.parse(frame); // the gateway itself must speak charter.v1
    const text = JSON.stringify(frame);
    this.#record('out', conn, frame, Buffer.byteLength(text));
    conn.ws.send(text, written);
    return true;
  }

  /** Sends a queued raw command as is, unless the gateway is a zombie; false when nothing was sent. */
  #sendText(conn: Conn, text: string): boolean {
    if (this.#zombie || conn.ws.readyState !== WebSocket.OPEN) return false;
    this.#record('out', conn, parseOrRaw(text), Buffer.byteLength(text));
    conn.ws.send(text, noop);
    return true;
  }

  #protocolError(conn: Conn, code: number, why: string): void {
    this.protocolErrors.push(`${conn.record.connId}: ${why}`);
    this.#fail(conn, code, why);
  }

  /** `error {code, message}`, then a close with `code`. */
  #fail(conn: Conn, code: number, message: string): void {
    if (conn.closing) return;
    this.#devFailed(conn, code, message);
    this.#send(conn, { op: 'error', code, message });
    this.#closeConn(conn, code, message);
  }

  #closeConn(conn: Conn, code: number, reason: string): void {
    if (conn.closing) return;
    conn.closing = true;
    conn.sentCloseCode = code;
    try {
      conn.ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    } catch {
      conn.ws.terminate();
      return;
    }
    const timer = setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS);
    conn.timers.add(timer);
  }

  #terminate(conn: Conn): void {
    conn.closing = true;
    for (const timer of conn.timers) clearTimeout(timer);
    conn.timers.clear();
    if (conn.tick !== null) clearInterval(conn.tick);
    conn.tick = null;
    conn.ws.terminate();
  }

  #target(what: string): Conn {
    let target: Conn | null = this.#current !== null && isOpen(this.#current) ? this.#current : null;
    if (target === null) {
      for (const conn of this.#conns) if (isOpen(conn)) target = conn; // the newest open one
    }
    if (target === null) throw new Error(`GatewayPeer.${what}(): no open connection`);
    return target;
  }

  #record(dir: 'in' | 'out', conn: Conn, frame: unknown, bytes: number): void {
    const record: FrameRecord = { dir, frame, bytes, at: Date.now(), connId: conn.record.connId };
    this.frames.push(record);
    if (this.frames.length > MAX_FRAME_RECORDS) this.frames.splice(0, this.frames.length - MAX_FRAME_RECORDS);
    this.#onFrame?.(record);
  }

  #note(note: string): void {
    this.#onNote?.(note);
  }

  // ---- for the dev gateway -------------------------------------------------------------------

  /** The daemon whose stream this gateway stores (the first one welcomed), or null. */
  storedDaemonId(): string | null {
    return this.#daemonId;
  }

  /** The hello of the connection, kept while it is open, and the cursor adopted if asked to. */
  #devHello(conn: Conn, hello: DaemonHello): void {
    this.#devHooks.hellos.set(conn.record.connId, hello);
    const ours = this.#daemonId === null || this.#daemonId === hello.daemon_id;
    if (!this.#devHooks.adoptDownApplied || !ours || hello.protocol !== GATEWAY_PROTOCOL_VERSION) return;
    // A holey array: the skipped dseqs hold nothing and are never sent (the daemon has them).
    if (hello.down_applied > this.#commands.length && hello.down_applied <= MAX_ADOPTED_DSEQ) {
      this.#note(
        `${conn.record.connId}: adopted down_applied ${hello.down_applied} (was ${this.#commands.length})`,
      );
      this.#commands.length = hello.down_applied;
    }
  }

  #devFailed(conn: Conn, code: number, message: string): void {
    const hello = this.#devHooks.hellos.get(conn.record.connId) ?? null;
    this.#devHooks.onConnection?.({ kind: 'failed', connId: conn.record.connId, code, message, hello });
  }

  #devClosed(record: ConnectionRecord): void {
    this.#devHooks.hellos.delete(record.connId);
    this.#devHooks.onConnection?.({ kind: 'closed', record });
  }
}

/** The dev gateway's options, and the hellos of open connections. */
interface DevHooks {
  readonly onEvent: ((event: UpEvent) => void) | undefined;
  readonly onConnection: ((change: ConnectionChange) => void) | undefined;
  readonly adoptDownApplied: boolean;
  readonly hellos: Map<string, DaemonHello>;
}

/** The largest down_applied `adoptDownApplied` takes (an array index; a bigger one is refused as before). */
const MAX_ADOPTED_DSEQ = 2 ** 31;

function devHooksOf(options: GatewayPeerOptions): DevHooks {
  return {
    onEvent: options.onEvent,
    onConnection: options.onConnection,
    adoptDownApplied: options.adoptDownApplied === true,
    hellos: new Map(),
  };
}

// ---- helpers -------------------------------------------------------------------------------

function noop(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function isOpen(conn: Conn): boolean {
  return !conn.closing && conn.ws.readyState === WebSocket.OPEN;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function normaliseBasePath(basePath: string): string {
  const trimmed = basePath.replace(/\/+$/, '');
  if (trimmed === '') return '';
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`;
}

function pathOf(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', `http://${HOST}`).pathname;
  } catch {
    return undefined;
  }
}

function rejectUpgrade(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen({ host: HOST, port, exclusive: true }, () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('GatewayPeer: unexpected server address'));
        return;
      }
      resolve(address.port);
    });
  });
}

function parseOrRaw(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** JSON with object keys sorted, to compare events whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    isRecord(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

function truncateUtf8(text: string, maxBytes: number): string {
  let out = text.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}

function closeCodeName(code: number): string {
  const entry = Object.entries(CloseCode).find(([, value]) => value === code);
  return entry?.[0] ?? `closed with ${code}`;
}

// ---- misbehaviour (tests and demos only) ---------------------------------------------------

/**
 * Ways to make the test gateway break one rule of charter.v1 on purpose, so that a check (the
 * conformance kit `gateway-check`, a test) can be shown to catch it. For tests and demos only:
 * no real gateway should have any of these. Each breaks exactly one rule of docs/protocol.md.
 */
export interface GatewayMisbehaviour {
  /**
   * The subprotocol selected when `charter.v1` is offered ("The upgrade request"); '' selects
   * none. A client that does not offer `charter.v1` is still refused with 400.
   */
  subprotocol?: string;
  /** After every ack, a second ack with `up` one lower ("`ack`": acks are cumulative). */
  ackBackwards?: boolean;
  /** Events past `up_limit` are stored and acked instead of closing with 4008 ("Credit"). */
  ignoreCredit?: boolean;
  /** A resent event (seq already stored) is stored again as new ("Resend after reconnect"). */
  noDedupe?: boolean;
  /**
   * A command is sent once, on one connection, and never again, whatever `hello.down_applied`
   * says ("`down_applied` in `hello`": the gateway resends every command with a larger dseq).
   */
  noCommandResend?: boolean;
}

function selectedSubprotocol(misbehave: GatewayMisbehaviour | undefined): string | false {
  const selected = misbehave?.subprotocol ?? GATEWAY_SUBPROTOCOL;
  return selected === '' ? false : selected;
}
