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
import { crashPoint } from '../faults/crash-points.js';
import { EVENTS_FRAME_OVERHEAD, fitEvent } from '../protocol/frame-budget.js';
import {
  CloseCode,
  type CommandFrame,
  DEFAULT_MAX_FRAME_BYTES,
  type DownFrame,
  DownFrameSchema,
  GATEWAY_PROTOCOL_VERSION,
  GATEWAY_SUBPROTOCOL,
  HANDSHAKE_TIMEOUT_MS,
  type UpFrame,
} from '../protocol/gateway.js';
import type { Store } from '../store/store.js';
import { readCommand, sealForInbox } from './command-frame.js';
import { daemonEndpoint } from './endpoint.js';

/** Writes pause while more than this is waiting in the socket's buffer. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Events per `events` frame at most (a frame also stays under max_frame). */
export const MAX_EVENTS_PER_FRAME = 500;

export interface TransportDeps {
  readonly store: Store;
  readonly logger: Logger;
  readonly hello: { daemonId: string; epoch: number; daemonVersion: string; projectName: string };
  /** The bearer token, read again for every connection (the file may have changed). */
  readonly token: () => string | null;
  /** A new command, stored and acknowledged: apply it (its result goes upstream as an event). */
  readonly applyCommand: (command: CommandFrame) => void;
  /** A store write failed (reported to the daemon's store health). */
  readonly onStoreError?: (error: unknown) => void;
  /** Encrypts a command's input and answer values before it is stored (see sealForInbox). */
  readonly sealCommand?: (command: CommandFrame) => CommandFrame;
  /** Counts for the metrics (src/monitoring/recorder.ts); absent in tests that do not look. */
  readonly counters?: TransportCounters;
}

/** How one connection attempt ended: authed, refused (HTTP), rejected (401/403), failed, closed. */
export type ConnectOutcome = 'authed' | 'refused' | 'rejected' | 'failed' | 'closed';

export interface TransportCounters {
  shipped(events: number): void;
  acked(events: number): void;
  connected(outcome: ConnectOutcome): void;
}

export { daemonEndpoint };

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
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
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
    /** The ack cursor as this connection last moved it (for counting acknowledged events). */
    let ackedSeq = 0;
    let outcomeCounted = false;
    /** Each attempt counts once, by how it first ended. */
    const countOutcome = (outcome: ConnectOutcome) => {
      if (outcomeCounted) return;
      outcomeCounted = true;
      deps.counters?.connected(outcome);
    };

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
      const budget = maxFrame - EVENTS_FRAME_OVERHEAD;
      while (sentSeq < upLimit && ws.bufferedAmount < MAX_BUFFERED_BYTES) {
        const room = Math.min(MAX_EVENTS_PER_FRAME, upLimit - sentSeq);
        const events = store.gateway.outbox(sentSeq, room);
        if (events.length === 0) break;
        // As many events as fit within max_frame; an event that cannot fit alone goes in its
        // truncated form (the full copy stays in the journal), so no frame is ever too large.
        const parts: string[] = [];
        let used = 0;
        for (const event of events) {
          const fitted = fitEvent(event, budget);
          const size = Buffer.byteLength(fitted.json) + (parts.length > 0 ? 1 : 0);
          if (parts.length > 0 && used + size > budget) break;
          parts.push(fitted.json);
          used += size;
          sentSeq = event.seq;
          if (fitted.truncated) {
            log.warn(
              { seq: event.seq, type: event.type, maxFrame },
              'an event larger than max_frame was sent truncated',
            );
          }
        }
        deps.counters?.shipped(parts.length);
        ws.send(`{"op":"events","events":[${parts.join(',')}]}`, () => {
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

    /**
     * A command is stored before it is acknowledged; one with unusable contents is stored as
     * rejected and answered (see command-frame.ts). Only a frame without a usable envelope is
     * a protocol error.
     */
    const onCommand = (raw: Record<string, unknown>) => {
      if (!authed) return protocolError('command before welcome');
      const read = sealForInbox(readCommand(raw), deps.sealCommand);
      if (read.kind === 'malformed') return protocolError(`invalid frame (op "command"): ${read.message}`);
      let received: ReturnType<typeof store.gateway.receiveCommand>;
      try {
        received =
          read.kind === 'valid'
            ? store.gateway.receiveCommand(read.frame)
            : store.gateway.receiveRejectedCommand({
                dseq: read.dseq,
                cmdId: read.cmdId,
                kind: read.commandKind,
                runId: read.runId,
                argsCopy: read.argsCopy,
                error: read.error,
              });
      } catch (error) {
        // Not stored, so not acknowledged: the gateway resends it after reconnecting, by when
        // the store may take writes again. Skipping it instead would lose it for good.
        deps.onStoreError?.(error);
        log.error({ err: error }, 'a gateway command could not be stored: reconnecting so it is resent');
        ws.close(1011, 'command could not be stored');
        return;
      }
      crashPoint('command.stored');
      // Stored (or known): only now may the gateway forget it.
      send({ op: 'cack', down: store.gateway.downApplied() });
      crashPoint('command.acked');
      if (received.kind === 'duplicate') {
        log.info({ cmdId: raw.cmd_id }, 'gateway command id seen before: not applied again');
      } else if (received.kind === 'rejected' && read.kind === 'rejected') {
        log.warn(
          { cmdId: read.cmdId, error: read.error.message },
          'gateway command rejected: unusable contents',
        );
      } else if (received.kind === 'new' && read.kind === 'valid') {
        try {
          deps.applyCommand(read.frame);
        } catch (error) {
          // Stored as pending: applied again at the next start. Never a reason to drop the link.
          log.error({ err: error, cmdId: read.frame.cmd_id }, 'applying a gateway command failed');
        }
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
          // Step output is split at its source to fit this frame from now on.
          store.gateway.rememberMaxFrame(maxFrame);
          upLimit = frame.up_limit;
          ackedSeq = store.gateway.ackUp(frame.up_committed);
          countOutcome('authed');
          sentSeq = frame.up_committed;
          report({ type: 'link.welcome', connId: frame.conn_id, hbMs: frame.hb_ms });
          schedulePump();
          return;
        }
        case 'ack': {
          const acked = store.gateway.ackUp(Math.min(frame.up, sentSeq));
          deps.counters?.acked(acked - ackedSeq);
          ackedSeq = Math.max(ackedSeq, acked);
          upLimit = Math.max(upLimit, frame.up_limit);
          schedulePump();
          return;
        }
        case 'command':
          // Handled before schema validation (see the message handler).
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
      countOutcome(response.statusCode === 401 || response.statusCode === 403 ? 'rejected' : 'refused');
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
      if (raw !== null && typeof raw === 'object' && (raw as { op?: unknown }).op === 'command') {
        try {
          onCommand(raw as Record<string, unknown>);
        } catch (error) {
          log.error({ err: error }, 'handling a gateway command failed');
          protocolError('internal error handling a command', CloseCode.unknown);
        }
        return;
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
      countOutcome('closed');
      if (!stopped) report({ type: 'link.closed', code, reason: reason.toString() });
      stopped = true;
    });
    ws.on('error', (error) => {
      log.debug({ err: error }, 'gateway socket error');
      if (!stopped && ws.readyState !== WebSocket.OPEN) {
        countOutcome('failed');
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
