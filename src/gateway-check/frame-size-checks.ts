/**
 * docs/protocol.md, "Limits and flow control": the gateway announces the largest frame it
 * accepts (`welcome.max_frame`) and should set its `maxPayload` to it. So a frame of exactly
 * that size (the daemon sends up to `min(max_frame, 1 MiB)`) is accepted, and a larger one is
 * refused: `ws` closes with 1009 on its own, or the gateway sends error + 4003 ("Errors and
 * close codes").
 */
import { DEFAULT_MAX_FRAME_BYTES } from '../protocol/gateway.js';
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import { eventsFrameBytes, frameBudget } from './event-frames.js';
import { judgeAcked } from './expect-ack.js';
import { type CheckSession, inTurn } from './session.js';
import { until } from './wait.js';

export function checkFrameSize(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [atLimit, aboveLimit]);
}

async function atLimit(session: CheckSession): Promise<ClauseResult> {
  const id = 'max-frame.at-limit';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const seq = welcome.up_committed + 1;
  if (seq > welcome.up_limit) return notObserved(id, `no credit for an event (up_limit ${welcome.up_limit})`);
  const target = frameBudget(welcome);
  const bare = eventsFrameBytes([session.daemon.event(seq, id, 1)]) - 1;
  const event = session.daemon.event(seq, id, target - bare);
  const bytes = eventsFrameBytes([event]);
  if (bytes !== target) return notObserved(id, `could not build a frame of ${target} bytes (got ${bytes})`);
  conn.sendEvents([event]);
  const capped =
    welcome.max_frame > DEFAULT_MAX_FRAME_BYTES
      ? ` (max_frame ${welcome.max_frame}: the daemon sends at most 1 MiB)`
      : '';
  const result = await judgeAcked(
    id,
    conn,
    seq,
    session.timeoutMs,
    `an events frame of ${bytes} bytes${capped}`,
  );
  return result;
}

async function aboveLimit(session: CheckSession): Promise<ClauseResult> {
  const id = 'max-frame.above-limit';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const size = welcome.max_frame + 1;
  // A ping padded with an unknown field: valid charter.v1 but for its size, and harmless if taken.
  const t = Date.now() + 0.5;
  const head = `{"op":"ping","t":${t},"pad":"`;
  const text = `${head}${'x'.repeat(size - head.length - 2)}"}`;
  conn.sendText(text);
  const outcome = await until(
    () =>
      conn.closeCode !== null
        ? 'closed'
        : conn.frames.some((f) => f.op === 'pong' && f.t === t)
          ? 'answered'
          : undefined,
    session.timeoutMs,
  );
  const what = `a frame of ${Buffer.byteLength(text)} bytes (max_frame ${welcome.max_frame})`;
  if (outcome === 'answered') return fail(id, `${what} was read and answered (pong): it must be refused`);
  if (outcome === undefined) return fail(id, `${what}: still open ${session.timeoutMs} ms later`);
  const code = conn.closeCode;
  if (code === 1009) return pass(id, `${what}: close 1009`);
  const error = conn.errorFrame();
  if (code === 4003 && error !== undefined && Number(error.code) === 4003)
    return pass(id, `${what}: error + close 4003`);
  return fail(
    id,
    `${what}: close ${code}${error === undefined ? '' : ` after error ${JSON.stringify(error.code)}`} (expected 1009, or error + 4003)`,
  );
}
