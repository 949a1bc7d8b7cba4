/**
 * docs/protocol.md, "Framing" and "Errors and close codes": an unknown `op` and text that is not
 * JSON are protocol errors (error + 4002); `hello` must be the first frame ("Handshake": anything
 * else first is answered with 4002), and a second `hello` on one connection is refused with
 * 4002. And what the daemon requires of every gateway frame: one JSON object per text message,
 * a valid down frame, at most 1 MiB (checked over every frame of the whole run).
 */
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/gateway.js';
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import { expectClose } from './expect-close.js';
import { type CheckSession, inTurn } from './session.js';

export function checkFraming(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [unknownOp, notJson, eventBeforeHello, secondHello]);
}

async function unknownOp(session: CheckSession): Promise<ClauseResult> {
  const id = 'framing.unknown-op';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  opened.conn.sendText(JSON.stringify({ op: 'gateway-check.unknown', t: 1 }));
  return expectClose(id, opened.conn, 4002, session.timeoutMs);
}

async function notJson(session: CheckSession): Promise<ClauseResult> {
  const id = 'framing.not-json';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  opened.conn.sendText('{"op":"ping","t":1'); // cut short: not JSON
  return expectClose(id, opened.conn, 4002, session.timeoutMs);
}

async function eventBeforeHello(session: CheckSession): Promise<ClauseResult> {
  const id = 'framing.event-before-hello';
  const opened = await session.opened();
  if (!opened.ok) return notObserved(id, opened.why);
  const seq = session.daemon.committed + 1;
  opened.conn.sendEvents([session.daemon.event(seq, id)]);
  return expectClose(id, opened.conn, 4002, session.timeoutMs);
}

async function secondHello(session: CheckSession): Promise<ClauseResult> {
  const id = 'framing.second-hello';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  opened.conn.send(session.daemon.hello());
  return expectClose(id, opened.conn, 4002, session.timeoutMs);
}

/** Every gateway frame of the run, as the daemon would read it (called last). */
export function checkGatewayFrames(session: CheckSession): ClauseResult[] {
  const id = 'framing.gateway-frames';
  const { log } = session;
  if (log.frames === 0) return [notObserved(id, 'the gateway sent no frame at all')];
  const counted = `${log.frames} frame(s), the largest ${log.largestBytes} bytes (limit ${DEFAULT_MAX_FRAME_BYTES})`;
  if (log.violationCount === 0) return [pass(id, counted)];
  return [
    fail(
      id,
      `${counted}; ${log.violationCount} broke the rules, first: ${log.violations.slice(0, 3).join(' | ')}`,
    ),
  ];
}
