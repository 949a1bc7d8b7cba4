/**
 * `start --inspect`: the relay, a loopback-only replacement for `@statelyai/inspect/server`. The stock relay
 * listens on every interface with no way to change it and no access control, and the inspection
 * stream carries full actor context. Ours binds 127.0.0.1, requires a random token on both the
 * page and the WebSocket, and redacts secret-looking keys before anything is sent.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketInspector } from '@statelyai/inspect';
import { WebSocket, WebSocketServer } from 'ws';
import type { InspectionEvent } from 'xstate';
import { rawText } from '../gateway/ws-data.js';
import { DEFAULT_UI_URL, pageHtml, parseUiUrl, REPLAY_MAX_MESSAGES } from './page.js';
import { MAX_PAYLOAD_BYTES, redactSecrets, sanitizeInspectionEvent } from './redact.js';

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
const RELAY_PATH = '/relay';

/** Actors whose registration a late page gets (the oldest are forgotten past it). */
const MAX_REMEMBERED_ACTORS = 20_000;
// 200 messages of up to maxPayload each would be 200 MiB held for the daemon's lifetime.
const REPLAY_MAX_BYTES = 16 * 1024 * 1024;
// A browser tab that stops reading must not make the daemon buffer without bound.
const CLIENT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 5_000;
const DAEMON_CLOSE_TIMEOUT_MS = 1_000;

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
    ws.on('message', (data) => broadcast(ws, rawText(data)));
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
