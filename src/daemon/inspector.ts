/**
 * `start --inspect`: a loopback-only replacement for `@statelyai/inspect/server`. The stock relay
 * listens on every interface with no way to change it and no access control, and the inspection
 * stream carries full actor context. Ours binds 127.0.0.1, requires a random token on both the
 * page and the WebSocket, and redacts secret-looking keys before anything is sent.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import type { InspectionEvent } from 'xstate';
import { isSealed, REDACTED_SECRET } from '../secrets/sealed.js';

export interface InspectorRelayOptions {
  /** 0 or undefined: an ephemeral port. */
  readonly port?: number;
  /** The inspector UI the page embeds; http(s) only. */
  readonly uiUrl?: string;
}

export interface InspectorRelay {
  /** What a person opens in a browser: `http://127.0.0.1:PORT/?token=…`. */
  readonly pageUrl: string;
  /** Where inspectors and receivers connect: `ws://127.0.0.1:PORT/relay?token=…`. */
  readonly socketUrl: string;
  readonly port: number;
  /** Pass as `createActor(logic, { inspect })`. A no-op once the relay is stopped. */
  readonly inspect: (event: InspectionEvent) => void;
  /** Idempotent; resolves once the inspector, every socket and the server are closed. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_UI_URL = 'https://stately.ai/inspect';
const RELAY_PATH = '/relay';
const REDACTED = '[redacted]';
const SECRET_KEY = /token|secret|password|authorization|cookie|api[_-]?key/i;

const MAX_PAYLOAD_BYTES = 1024 * 1024;
const REPLAY_MAX_MESSAGES = 200;
/** Actors whose registration a late page gets (the oldest are forgotten past it). */
const MAX_REMEMBERED_ACTORS = 20_000;
// 200 messages of up to maxPayload each would be 200 MiB held for the daemon's lifetime.
const REPLAY_MAX_BYTES = 16 * 1024 * 1024;
// A browser tab that stops reading must not make the daemon buffer without bound.
const CLIENT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
// An event the relay would reject (maxPayload) closes the adapter's socket for good: it only
// reconnects after errors, not after a close. Keep well under the limit.
const MAX_EVENT_BYTES = MAX_PAYLOAD_BYTES / 2;
// Same as the stock adapter's serializationDepthLimit default.
const MAX_DEPTH = 10;
const HANDSHAKE_TIMEOUT_MS = 5_000;
const DAEMON_CLOSE_TIMEOUT_MS = 1_000;

/**
 * A deep copy of `value` in which the value of every key matching
 * /token|secret|password|authorization|cookie|api[_-]?key/i is "[redacted]", and every sealed
 * secret (a run's secret input or answer, src/secrets/sealed.ts) is "***" whatever its key.
 * Plain objects and arrays are copied (cycles and shared references are reproduced in the
 * copy); anything else (class instances, Map, Date, …) is returned as is. A key whose value is
 * null or undefined keeps it: that a secret is unset is not itself secret.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, new Map()) as T;
}

function redactValue(value: unknown, copies: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const existing = copies.get(value);
  if (existing !== undefined) return existing;
  if (isSealed(value)) return REDACTED_SECRET;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    copies.set(value, copy);
    for (const item of value) copy.push(redactValue(item, copies));
    return copy;
  }
  if (!isPlainObject(value)) return value;
  const copy: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(value));
  copies.set(value, copy);
  for (const key of Reflect.ownKeys(value)) {
    if (!Object.prototype.propertyIsEnumerable.call(value, key)) continue;
    const item = (value as Record<PropertyKey, unknown>)[key];
    copy[key] =
      typeof key === 'string' && SECRET_KEY.test(key) && item !== null && item !== undefined
        ? REDACTED
        : redactValue(item, copies);
  }
  return copy;
}

function isPlainObject(value: object): value is Record<PropertyKey, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * JSON-shaped data as the adapter would send it (toJSON honoured, functions as `{ type: name }`
 * like the stock replacer), so redaction sees exactly what leaves, not live objects whose
 * fields it cannot copy.
 */
function toJsonData(value: unknown, key: string, ancestors: object[]): unknown {
  let current = value;
  if (current !== null && typeof current === 'object' && 'toJSON' in current) {
    const toJSON: unknown = current.toJSON;
    if (typeof toJSON === 'function') {
      try {
        current = toJSON.call(current, key);
      } catch {
        return '[unserializable]';
      }
    }
  }
  switch (typeof current) {
    case 'string':
    case 'boolean':
      return current;
    case 'number':
      return Number.isFinite(current) ? current : null;
    case 'bigint':
      return current.toString();
    case 'function':
      return { type: current.name };
    case 'undefined':
    case 'symbol':
      return undefined;
  }
  if (current === null || typeof current !== 'object') return null;
  if (ancestors.includes(current)) return '[Circular]';
  if (ancestors.length >= MAX_DEPTH) return Array.isArray(current) ? '[Array]' : '[Object]';
  ancestors.push(current);
  try {
    if (Array.isArray(current)) {
      return current.map((item, index) => toJsonData(item, String(index), ancestors) ?? null);
    }
    const out: Record<string, unknown> = {};
    for (const childKey of Object.keys(current)) {
      let child: unknown;
      try {
        child = (current as Record<string, unknown>)[childKey];
      } catch {
        continue;
      }
      const converted = toJsonData(child, childKey, ancestors);
      if (converted !== undefined) out[childKey] = converted;
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

// In a machine definition the keys of these maps are state, event and delay names, not data:
// redacting `on: { SET_TOKEN: … }` would only break the diagram.
const NAME_MAPS = new Set(['states', 'on', 'after']);

function redactDefinitionNode(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(redactDefinitionNode);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (NAME_MAPS.has(key) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const names: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(value)) names[name] = redactDefinitionNode(child);
      out[key] = names;
    } else if (SECRET_KEY.test(key) && value !== null && value !== undefined) {
      out[key] = REDACTED;
    } else {
      // Context, params, input, meta…: ordinary data, no exemptions below this point.
      out[key] = redactSecrets(value);
    }
  }
  return out;
}

function redactDefinition(definition: string): string | undefined {
  try {
    return JSON.stringify(redactDefinitionNode(JSON.parse(definition)));
  } catch {
    // Unparseable means unverifiable: drop it rather than send it unchecked.
    return undefined;
  }
}

/** State values hold only state names, which the UI needs verbatim. */
function isStateValue(value: unknown): boolean {
  if (typeof value === 'string') return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every(isStateValue);
}

function byteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

const OMITTED = '[omitted: too large for the inspector]';

/**
 * Runs on every event before it reaches the adapter (and again on events the adapter held back
 * while connecting, so it must be idempotent). `sanitizeContext` / `sanitizeEvent` only cover
 * context and events; the machine definition and the rest of the snapshot can carry secrets too
 * (a static `context: { token }` is in the definition).
 */
function sanitizeInspectionEvent(event: StatelyInspectionEvent): StatelyInspectionEvent {
  const data = toJsonData(event, '', []);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return event;
  const { definition, snapshot, ...rest } = data as Record<string, unknown>;
  const out = redactSecrets(rest);
  if (typeof definition === 'string') {
    const redacted = redactDefinition(definition);
    if (redacted !== undefined) out.definition = redacted;
  }
  if (snapshot !== null && typeof snapshot === 'object' && !Array.isArray(snapshot)) {
    const { value, ...snapshotRest } = snapshot as Record<string, unknown>;
    const redacted = redactSecrets(snapshotRest);
    if (value !== undefined) redacted.value = isStateValue(value) ? value : redactSecrets(value);
    out.snapshot = redacted;
  } else if (snapshot !== undefined) {
    out.snapshot = redactSecrets(snapshot);
  }
  shrinkToFit(out);
  return out as unknown as StatelyInspectionEvent;
}

/** Gives up the least useful parts first: bulky data, then the diagram, then the snapshot. */
function shrinkToFit(out: Record<string, unknown>): void {
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  const snapshot = out.snapshot as Record<string, unknown> | undefined;
  if (snapshot !== undefined) {
    for (const key of ['context', 'output', 'error', 'children', 'historyValue']) {
      if (key in snapshot) snapshot[key] = OMITTED;
    }
  }
  if (out.event !== null && typeof out.event === 'object') {
    const type = (out.event as { type?: unknown }).type;
    out.event = { type: typeof type === 'string' ? type : 'unknown', omitted: OMITTED };
  }
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  delete out.definition;
  if (byteLength(out) <= MAX_EVENT_BYTES) return;
  if (snapshot !== undefined) out.snapshot = { status: snapshot.status, value: OMITTED };
}

function tokenMatches(expected: Buffer, candidate: string | null): boolean {
  if (candidate === null) return false;
  const given = Buffer.from(candidate);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function requestUrl(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', `http://${HOST}`);
  } catch {
    return undefined;
  }
}

function escapeHtmlAttribute(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function parseUiUrl(uiUrl: string): string {
  const parsed = new URL(uiUrl);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TypeError(`inspector UI URL must be http(s): ${uiUrl}`);
  }
  return parsed.href;
}

/**
 * Like the stock bridge, but the relay socket is same-origin with the token, messages go only to
 * the origin the UI frame announced itself from, and no referrer (which would carry the token)
 * is sent to the UI's host.
 */
function pageHtml(socketUrl: string, uiUrl: string): string {
  // The socket URL is ours (127.0.0.1, a number, base64url); "<" is escaped regardless so the
  // literal can never close the script element.
  const socketLiteral = JSON.stringify(socketUrl).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <meta name="referrer" content="no-referrer">
  <title>Charter daemon inspector</title>
  <style>
    * { margin: 0; padding: 0; }
    html, body { height: 100%; }
    iframe { width: 100%; height: 100%; border: none; }
  </style>
</head>
<body>
  <iframe id="inspector" referrerpolicy="no-referrer" src="${escapeHtmlAttribute(uiUrl)}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let uiOrigin = null;

    window.addEventListener('message', (e) => {
      if (e.source !== iframe.contentWindow) return;
      if (e.data && e.data.type === '@statelyai.connected') {
        uiOrigin = e.origin;
        for (const data of buffer) iframe.contentWindow.postMessage(data, uiOrigin);
        buffer.length = 0;
      }
    });

    const ws = new WebSocket(${socketLiteral});
    ws.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      if (uiOrigin !== null) {
        iframe.contentWindow.postMessage(data, uiOrigin);
      } else {
        buffer.push(data);
        if (buffer.length > ${REPLAY_MAX_MESSAGES}) buffer.shift();
      }
    };
  </script>
</body>
</html>`;
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
  socket.destroy();
}

function listen(server: ReturnType<typeof createServer>, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host: HOST, port, exclusive: true }, () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('inspector relay: unexpected server address'));
        return;
      }
      resolve(address.port);
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString();
  return data.toString();
}

export async function startInspectorRelay(options: InspectorRelayOptions = {}): Promise<InspectorRelay> {
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65_535) {
    throw new RangeError(`inspector port must be an integer in 0..65535, got ${requestedPort}`);
  }
  const uiUrl = parseUiUrl(options.uiUrl ?? DEFAULT_UI_URL);
  const token = randomBytes(18).toString('base64url');
  const expectedToken = Buffer.from(token);

  let page = '';
  const replay: string[] = [];
  let replayBytes = 0;
  let stopped = false;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES, clientTracking: true });
  wss.on('error', () => {});

  // Every live actor's registration and latest snapshot, so a page opened late still sees the
  // whole tree (the root and its first children are long out of the last-200 window by then).
  const actors = new Map<string, { registration: string; snapshot: string | null }>();
  const remember = (message: string): void => {
    let parsed: { type?: unknown; sessionId?: unknown; snapshot?: { status?: unknown } };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return;
    }
    if (typeof parsed.sessionId !== 'string') return;
    if (parsed.type === '@xstate.actor') {
      actors.set(parsed.sessionId, { registration: message, snapshot: null });
      if (actors.size > MAX_REMEMBERED_ACTORS) actors.delete(actors.keys().next().value ?? '');
    } else if (parsed.type === '@xstate.snapshot') {
      const entry = actors.get(parsed.sessionId);
      const status = parsed.snapshot?.status;
      if (entry === undefined) return;
      if (status === 'done' || status === 'stopped' || status === 'error') actors.delete(parsed.sessionId);
      else entry.snapshot = message;
    }
  };

  const broadcast = (from: WebSocket, message: string): void => {
    remember(message);
    const size = Buffer.byteLength(message);
    replay.push(message);
    replayBytes += size;
    while (replay.length > REPLAY_MAX_MESSAGES || (replayBytes > REPLAY_MAX_BYTES && replay.length > 1)) {
      replayBytes -= Buffer.byteLength(replay.shift() ?? '');
    }
    for (const client of wss.clients) {
      if (client === from || client.readyState !== WebSocket.OPEN) continue;
      if (client.bufferedAmount > CLIENT_MAX_BUFFERED_BYTES) {
        client.terminate();
        continue;
      }
      client.send(message);
    }
  };

  // Nobody but the adapter knows the token before this function returns, so the first
  // connection is the daemon's own.
  let resolveDaemonSocket: (ws: WebSocket) => void = () => {};
  const daemonSocket = new Promise<WebSocket>((resolve) => {
    resolveDaemonSocket = resolve;
  });

  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    resolveDaemonSocket(ws);
    for (const { registration } of actors.values()) ws.send(registration);
    for (const { snapshot } of actors.values()) if (snapshot !== null) ws.send(snapshot);
    for (const message of replay) ws.send(message);
    ws.on('message', (data) => broadcast(ws, rawToString(data)));
  });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = requestUrl(req);
    if (url === undefined || !tokenMatches(expectedToken, url.searchParams.get('token'))) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end('Forbidden\n');
      return;
    }
    if (url.pathname !== '/') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end('Not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
    });
    res.end(req.method === 'HEAD' ? undefined : page);
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  server.on('connection', (socket) => socket.on('error', () => {}));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const url = requestUrl(req);
    if (url === undefined || !tokenMatches(expectedToken, url.searchParams.get('token'))) {
      rejectUpgrade(socket, 403, 'Forbidden');
      return;
    }
    if (url.pathname !== RELAY_PATH) {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (stopped) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const port = await listen(server, requestedPort);
  const socketUrl = `ws://${HOST}:${port}${RELAY_PATH}?token=${token}`;
  const pageUrl = `http://${HOST}:${port}/?token=${token}`;
  page = pageHtml(socketUrl, uiUrl);

  const inspector = createWebSocketInspector({
    url: socketUrl,
    sanitizeContext: redactSecrets,
    sanitizeEvent: redactSecrets,
    serialize: sanitizeInspectionEvent,
  });

  const closeServers = async (): Promise<void> => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };

  // The adapter's socket must be fully open before anyone can stop it: closing a socket that is
  // still connecting raises an error, and the adapter answers errors by reconnecting every 5 s,
  // forever. A pong can only come back once the client has processed the handshake.
  try {
    await withTimeout(
      daemonSocket.then(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.once('pong', () => resolve());
            ws.ping();
          }),
      ),
      HANDSHAKE_TIMEOUT_MS,
      'inspector relay: the inspector did not connect',
    );
  } catch (error) {
    stopped = true;
    inspector.stop();
    await closeServers();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      inspector.stop();
      // Let the adapter's close handshake finish so its socket sees a clean close, not an error.
      const ws = await daemonSocket;
      if (ws.readyState !== WebSocket.CLOSED) {
        await withTimeout(
          new Promise<void>((resolve) => ws.once('close', () => resolve())),
          DAEMON_CLOSE_TIMEOUT_MS,
          'timeout',
        ).catch(() => {});
      }
      await closeServers();
    })();
    return stopping;
  };

  return {
    pageUrl,
    socketUrl,
    port,
    inspect: (event: InspectionEvent) => {
      if (!stopped) inspector.inspect.next?.(event);
    },
    stop,
  };
}
