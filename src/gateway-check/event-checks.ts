/**
 * docs/protocol.md, "Events upstream" and "`ack`": acks are cumulative (every seq ≤ up is
 * stored), so on one connection `ack.up` never goes backwards, never passes what was sent, and
 * reaches the last seq sent; a seq other than last stored + 1 (a gap) is answered by error +
 * 4006; and "Resend after reconnect": the gateway accepts a seq it already has and ignores it,
 * so events resent on a new connection are counted once, by acks and by the next
 * `up_committed`.
 */
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import type { AckSeen, ScriptedConnection } from './connection.js';
import { frameBudget, packFrames } from './event-frames.js';
import { judgeAcked } from './expect-ack.js';
import { expectClose } from './expect-close.js';
import { type CheckSession, inTurn } from './session.js';
import { until } from './wait.js';

/** Frames of 3, 2 and 1 events: more than one ack to compare. */
const CUMULATIVE_FRAMES = [3, 2, 1];
const RESEND_BATCH = 3;
const RESEND_NEW = 2;

export function checkEvents(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [cumulativeAcks, gapRefused, resendDeduplicated]);
}

async function cumulativeAcks(session: CheckSession): Promise<ClauseResult> {
  const id = 'events.ack-cumulative';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const total = CUMULATIVE_FRAMES.reduce((sum, n) => sum + n, 0);
  const start = welcome.up_committed;
  if (welcome.up_limit < start + total)
    return notObserved(id, `credit ${welcome.up_limit - start} < ${total} events`);
  let next = start + 1;
  for (const count of CUMULATIVE_FRAMES) {
    conn.sendEvents(session.daemon.events(next, next + count - 1, id));
    next += count;
  }
  const last = next - 1;
  const reached = await until(
    () => conn.acks.find((ack) => ack.up >= last) ?? (conn.open ? undefined : null),
    session.timeoutMs,
  );
  // Whatever the gateway sends right after its last ack is read too.
  if (reached !== undefined && reached !== null) await conn.roundTrip(session.timeoutMs);
  const problems = ackProblems(conn.acks, start);
  const ups = conn.acks.map((ack) => ack.up).join(', ');
  const saw = `${total} events (seq ${start + 1}…${last}) in ${CUMULATIVE_FRAMES.length} frames; acks up: ${ups || 'none'}`;
  if (problems.length > 0) return fail(id, `${saw}: ${problems.join('; ')}`);
  if (reached === null) return fail(id, `${saw}: the gateway closed with ${conn.closeCode}`);
  if (reached === undefined)
    return fail(id, `${saw}: no ack reached seq ${last} within ${session.timeoutMs} ms`);
  return pass(id, saw);
}

/** Cumulative acks on one connection: never down, never past what was sent, never below up_committed. */
export function ackProblems(acks: readonly AckSeen[], upCommitted: number): string[] {
  const problems: string[] = [];
  let previous = upCommitted;
  for (const ack of acks) {
    if (ack.up < previous) problems.push(`ack.up went backwards: ${ack.up} after ${previous}`);
    if (ack.up > ack.sentMax && ack.up > upCommitted)
      problems.push(`ack.up ${ack.up} beyond the last seq sent (${ack.sentMax})`);
    previous = Math.max(previous, ack.up);
    if (problems.length >= 3) break;
  }
  return problems;
}

async function gapRefused(session: CheckSession): Promise<ClauseResult> {
  const id = 'events.gap-refused';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const seq = welcome.up_committed + 2;
  if (seq > welcome.up_limit)
    return notObserved(id, `credit ${welcome.up_limit - welcome.up_committed} < 2 events`);
  conn.sendEvents([session.daemon.event(seq, id)]);
  return expectClose(id, conn, 4006, session.timeoutMs);
}

async function resendDeduplicated(session: CheckSession): Promise<ClauseResult> {
  const id = 'events.resend-deduplicated';
  const first = await session.welcomed();
  if (!first.ok) return notObserved(id, first.why);
  const start = first.welcome.up_committed;
  const batchEnd = start + RESEND_BATCH;
  const last = batchEnd + RESEND_NEW;
  if (first.welcome.up_limit < last)
    return notObserved(id, `credit ${first.welcome.up_limit - start} < ${last - start} events`);
  const batch = session.daemon.events(start + 1, batchEnd, id);
  first.conn.sendEvents(batch);
  const stored = await judgeAcked(id, first.conn, batchEnd, session.timeoutMs, `${RESEND_BATCH} events`);
  if (stored.status !== 'pass') return fail(id, `first connection: ${stored.saw}`);
  await first.conn.close();

  // As if that ack had been lost: the batch goes again on a new connection, then two new events.
  const second = await session.welcomed();
  if (!second.ok) return notObserved(id, `second connection: ${second.why}`);
  if (second.welcome.up_committed !== batchEnd) {
    return fail(
      id,
      `welcome.up_committed ${second.welcome.up_committed} after ${batchEnd} was acked (expected ${batchEnd})`,
    );
  }
  const frames = packFrames(
    [...batch, ...session.daemon.events(batchEnd + 1, last, id)],
    frameBudget(second.welcome),
  );
  for (const frame of frames) second.conn.sendEvents(frame);
  const resent = await acksAfterResend(second.conn, last, session.timeoutMs);
  if (resent !== null)
    return fail(id, `resent seq ${start + 1}…${batchEnd} with ${batchEnd + 1}…${last}: ${resent}`);
  await second.conn.close();

  const third = await session.welcomed();
  if (!third.ok) return notObserved(id, `third connection: ${third.why}`);
  const committed = third.welcome.up_committed;
  if (committed !== last)
    return fail(
      id,
      `after the resend, welcome.up_committed is ${committed} (expected ${last}: each event once)`,
    );
  return pass(
    id,
    `seq ${start + 1}…${batchEnd} resent on a new connection with ${batchEnd + 1}…${last}: acked up to ${last}, next up_committed ${committed}`,
  );
}

/** Null when the acks after the resend reach `last` exactly; else what was wrong. */
async function acksAfterResend(
  conn: ScriptedConnection,
  last: number,
  timeoutMs: number,
): Promise<string | null> {
  const reached = await until(
    () => conn.acks.find((ack) => ack.up >= last) ?? (conn.open ? undefined : null),
    timeoutMs,
  );
  if (reached === null) return `the gateway closed with ${conn.closeCode}`;
  if (reached === undefined) return `no ack reached seq ${last} within ${timeoutMs} ms`;
  await conn.roundTrip(timeoutMs);
  const highest = conn.acks.reduce((max, ack) => Math.max(max, ack.up), 0);
  if (highest > last)
    return `acked up to ${highest}, beyond the last seq sent (${last}): resent events counted again`;
  if (!conn.open) return `the gateway closed with ${conn.closeCode}`;
  return null;
}
