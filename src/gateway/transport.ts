/**
 * The WebSocket under the gateway link machine: one connection per invocation. It connects with
 * the bearer token and subprotocol `charter.v1`, says hello, validates every inbound frame,
 * streams the outbox within the gateway's credit and the socket's buffer, stores commands before
 * acknowledging them, answers pings — and reports to the machine, which decides everything else.
 */
import { setImmediate as later } from 'node:timers';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { fromCallback } from 'xstate';
import type { TransportCommand, TransportReport } from '../../machines/gateway-link.machine.js';
import {
  CloseCode,
  type CommandFrame,
  DEFAULT_MAX_FRAME_BYTES,
  type DownFrame,
  DownFrameSchema,
  GATEWAY_PROTOCOL_VERSION,
  GATEWAY_SUBPROTOCOL,
  type UpFrame,
} from '../protocol/gateway.js';
import type { Store } from '../store/store.js';

/** Writes pause while more than this is waiting in the socket's buffer. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Events per `events` frame at most (a frame also stays under max_frame). */
const MAX_EVENTS_PER_FRAME = 500;

export interface TransportDeps {
  readonly store: Store;
  readonly logger: Logger;
  readonly hello: { daemonId: string; epoch: number; daemonVersion: string; projectName: string };
  /** The bearer token, read again for every connection (the file may have changed). */
  readonly token: () => string | null;
  /** A new command, stored and acknowledged: apply it (its result goes upstream as an event). */
  readonly applyCommand: (command: CommandFrame) => void;
}

/** `http://h:p/base` → `ws://h:p/base/v1/daemon` (https → wss). */
export function daemonEndpoint(gatewayUrl: string): string {
  const url = new URL(gatewayUrl);
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/daemon`;
  return url.toString();
}

/**
 * A close reason within the 123 bytes WebSocket allows (ws throws past it), cut on a character
 * boundary: the text may come from the gateway's own frame and hold any characters.
 */
export function closeReason(text: string): string {
  let reason = text;
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, Math.max(0, reason.length - 8));
  return reason;
}

export function transportLogic(deps: TransportDeps) {
  return fromCallback<TransportCommand, { url: string }>(({ input, sendBack, receive }) => {
    const { store } = deps;
    const log = deps.logger;
    const report = (event: TransportReport) => sendBack(event);
    const token = deps.token();
    const ws = new WebSocket(daemonEndpoint(input.url), GATEWAY_SUBPROTOCOL, {
      headers: token === null ? {} : { Authorization: `Bearer ${token}` },
      maxPayload: DEFAULT_MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });

    let stopped = false;
    let authed = false;
    let caughtUp = false;
    let maxFrame = DEFAULT_MAX_FRAME_BYTES;
    let upLimit = 0;
    /** Highest seq sent on this connection (starts at the gateway's committed cursor). */
    let sentSeq = 0;
    let hbMs = 15_000;
    let lastAliveReport = 0;
    let lastInbound = Date.now();
    let pumpScheduled = false;

    const send = (frame: UpFrame, onWritten?: () => void) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify(frame), (error) => {
        if (error !== undefined && error !== null) log.debug({ err: error }, 'gateway send failed');
        onWritten?.();
      });
    };

    const protocolError = (message: string, code: number = CloseCode.invalidFrame) => {
      log.warn({ code, reason: message }, 'gateway protocol error: closing the link');
      send({ op: 'error', code, message });
      ws.close(code, closeReason(message));
    };

    /** Sends what the credit and the socket buffer allow; then says whether the backlog is drained. */
    const pump = () => {
      pumpScheduled = false;
      if (!authed || stopped || ws.readyState !== WebSocket.OPEN) return;
      while (sentSeq < upLimit && ws.bufferedAmount < MAX_BUFFERED_BYTES) {
        const room = Math.min(MAX_EVENTS_PER_FRAME, upLimit - sentSeq);
        const events = store.gateway.outbox(sentSeq, room);
        if (events.length === 0) break;
        // Keep the frame under max_frame: large output was already chunked at the source.
        let text = JSON.stringify({ op: 'events', events });
        while (Buffer.byteLength(text) > maxFrame && events.length > 1) {
          events.splice(Math.ceil(events.length / 2));
          text = JSON.stringify({ op: 'events', events });
        }
        sentSeq = events.at(-1)?.seq ?? sentSeq;
        ws.send(text, () => {
          if (ws.bufferedAmount < MAX_BUFFERED_BYTES) schedulePump();
        });
      }
      if (!caughtUp && sentSeq >= store.gateway.lastSeq()) {
        caughtUp = true;
        report({ type: 'link.caughtUp' });
      }
    };
    const schedulePump = () => {
      if (pumpScheduled) return;
      pumpScheduled = true;
      // After the current transaction: appends notify from inside it.
      later(pump);
    };
    const unsubscribe = store.onAppend(() => schedulePump());

    const onCommand = (frame: CommandFrame) => {
      const received = store.gateway.receiveCommand(frame);
      // Stored (or known): only now may the gateway forget it.
      send({ op: 'cack', down: store.gateway.downApplied() });
      if (received.kind === 'new') deps.applyCommand(frame);
      else if (received.kind === 'duplicate') {
        log.info({ cmdId: frame.cmd_id }, 'gateway command id seen before: not applied again');
        store.gateway.settleCommand(frame.cmd_id, { status: 'duplicate' });
      }
    };

    const onFrame = (frame: DownFrame) => {
      switch (frame.op) {
        case 'welcome': {
          if (authed) return protocolError('a second welcome');
          const lastSeq = store.gateway.lastSeq();
          if (frame.up_committed > lastSeq) {
            // The gateway claims events this store never had: a different store, or a restored
            // backup. Resending cannot fix it; say so loudly and let the machine stop hammering.
            log.error(
              { upCommitted: frame.up_committed, lastSeq },
              "the gateway's cursor is ahead of this daemon's store: events cannot be reconciled",
            );
            return protocolError(
              `up_committed ${frame.up_committed} > last stored seq ${lastSeq}`,
              CloseCode.cursorInvalid,
            );
          }
          authed = true;
          hbMs = frame.hb_ms;
          maxFrame = Math.min(frame.max_frame, DEFAULT_MAX_FRAME_BYTES);
          upLimit = frame.up_limit;
          store.gateway.ackUp(frame.up_committed);
          sentSeq = frame.up_committed;
          report({ type: 'link.welcome', connId: frame.conn_id, hbMs: frame.hb_ms });
          schedulePump();
          return;
        }
        case 'ack':
          store.gateway.ackUp(Math.min(frame.up, sentSeq));
          upLimit = Math.max(upLimit, frame.up_limit);
          schedulePump();
          return;
        case 'command':
          if (!authed) return protocolError('command before welcome');
          onCommand(frame);
          return;
        case 'ping':
          send({ op: 'pong', t: frame.t });
          return;
        case 'pong':
          return;
        case 'error':
          log.warn({ code: frame.code, message: frame.message }, 'the gateway reported an error');
          return;
      }
    };

    ws.on('upgrade', () => report({ type: 'link.open' }));
    ws.on('open', () => {
      send({
        op: 'hello',
        protocol: GATEWAY_PROTOCOL_VERSION,
        daemon_id: deps.hello.daemonId,
        epoch: deps.hello.epoch,
        daemon_version: deps.hello.daemonVersion,
        project: { name: deps.hello.projectName },
        down_applied: store.gateway.downApplied(),
      });
    });
    ws.on('unexpected-response', (_request, response) => {
      const retryAfter = Number(response.headers['retry-after']);
      report({
        type: 'link.refused',
        status: response.statusCode ?? 0,
        retryAfterMs: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : null,
      });
      response.resume();
      stopped = true;
      ws.terminate();
    });
    ws.on('message', (data, isBinary) => {
      lastInbound = Date.now();
      // Liveness for the machine, throttled: acks may arrive thousands of times a second.
      if (lastInbound - lastAliveReport >= hbMs / 4) {
        lastAliveReport = lastInbound;
        report({ type: 'link.alive' });
      }
      if (isBinary) return protocolError('binary frames are not part of charter.v1');
      let raw: unknown;
      try {
        raw = JSON.parse(data.toString());
      } catch {
        return protocolError('a frame that is not JSON');
      }
      const parsed = DownFrameSchema.safeParse(raw);
      if (!parsed.success) {
        const op = (raw as { op?: unknown } | null)?.op;
        return protocolError(
          `invalid frame (op ${JSON.stringify(op)}): ${parsed.error.issues[0]?.message ?? ''}`,
        );
      }
      try {
        onFrame(parsed.data);
      } catch (error) {
        log.error({ err: error }, 'handling a gateway frame failed');
        protocolError('internal error handling a frame', CloseCode.unknown);
      }
    });
    ws.on('close', (code, reason) => {
      if (!stopped) report({ type: 'link.closed', code, reason: reason.toString() });
      stopped = true;
    });
    ws.on('error', (error) => {
      log.debug({ err: error }, 'gateway socket error');
      if (!stopped && ws.readyState !== WebSocket.OPEN) {
        stopped = true;
        report({ type: 'link.failed', message: error.message });
      }
    });

    receive((command) => {
      if (command.type === 'transport.ping') send({ op: 'ping', t: Date.now() });
    });

    return () => {
      stopped = true;
      unsubscribe();
      if (ws.readyState === WebSocket.OPEN && Date.now() - lastInbound < hbMs) {
        // A healthy link being closed on purpose (the daemon stops): say goodbye, briefly.
        ws.close(1001, 'daemon stopping');
        setTimeout(() => ws.terminate(), 1000).unref();
      } else {
        // A dead or half-open peer: close() could wait 30 s for a handshake that never comes.
        ws.terminate();
      }
    };
  });
}
