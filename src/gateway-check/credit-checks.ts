/**
 * docs/protocol.md, "Events upstream", Credit: the daemon never sends `seq > up_limit`, and a
 * gateway should answer an event past it with error + 4008; with no credit left the daemon waits
 * for an `ack`, so acks must raise `up_limit` once credit is used ("Each ack extends the
 * credit"), and the gateway must then take the events up to the new limit.
 *
 * Overrunning a credit window needs every event of it in one frame: with a sliding window
 * (`up_limit = stored + credit`), each ack of an earlier frame would move the limit on. So the
 * overrun goes as one frame of `credit + 1` events, even when that is more than the 500 a frame
 * the daemon sends (the schema sets no such bound), as long as it fits `max_frame`.
 */
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import { eventsFrameBytes, frameBudget, packFrames } from './event-frames.js';
import { judgeAcked } from './expect-ack.js';
import { type CheckSession, inTurn } from './session.js';
import { until } from './wait.js';

/** Credit windows larger than this are not filled (the clause is then not observed). */
export const MAX_CREDIT_PROBED = 10_000;

export function checkCredit(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [replenished, overrunRefused]);
}

async function replenished(session: CheckSession): Promise<ClauseResult> {
  const id = 'credit.replenished';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const start = welcome.up_committed;
  const limit = welcome.up_limit;
  const credit = limit - start;
  if (credit === 0)
    return fail(
      id,
      `welcome grants no credit (up_limit ${limit} = up_committed ${start}): a daemon can never send`,
    );
  if (credit > MAX_CREDIT_PROBED)
    return notObserved(id, `credit ${credit} > ${MAX_CREDIT_PROBED} events: too large to use up`);
  for (const frame of packFrames(session.daemon.events(start + 1, limit, id), frameBudget(welcome)))
    conn.sendEvents(frame);
  const raised = await until(
    () => conn.acks.find((ack) => ack.up >= limit && ack.upLimit > limit) ?? (conn.open ? undefined : null),
    session.timeoutMs,
  );
  const used = `all ${credit} events of credit sent (seq ${start + 1}…${limit})`;
  if (raised === null) return fail(id, `${used}: the gateway closed with ${conn.closeCode}`);
  if (raised === undefined) {
    const best = conn.acks.at(-1);
    const lastAck = best === undefined ? 'no ack' : `last ack {up: ${best.up}, up_limit: ${best.upLimit}}`;
    return fail(
      id,
      `${used}: no ack raised up_limit past ${limit} within ${session.timeoutMs} ms (${lastAck})`,
    );
  }
  conn.sendEvents([session.daemon.event(limit + 1, id)]);
  const beyond = await judgeAcked(id, conn, limit + 1, session.timeoutMs, 'then seq past the first up_limit');
  if (beyond.status !== 'pass')
    return fail(id, `${used}, ack raised up_limit to ${raised.upLimit}; ${beyond.saw}`);
  return pass(
    id,
    `${used}: ack raised up_limit to ${raised.upLimit}; seq ${limit + 1} then stored and acked`,
  );
}

async function overrunRefused(session: CheckSession): Promise<ClauseResult> {
  const id = 'credit.overrun-refused';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const start = welcome.up_committed;
  const limit = welcome.up_limit;
  if (limit - start + 1 > MAX_CREDIT_PROBED)
    return notObserved(id, `credit ${limit - start} > ${MAX_CREDIT_PROBED} events: too large to overrun`);
  const events = session.daemon.events(start + 1, limit + 1, id);
  const bytes = eventsFrameBytes(events);
  if (bytes > frameBudget(welcome)) {
    return notObserved(
      id,
      `the ${events.length} events of credit + 1 need a frame of ${bytes} bytes, over max_frame ${welcome.max_frame}`,
    );
  }
  conn.sendEvents(events);
  const what = `one frame of seq ${start + 1}…${limit + 1} (up_limit ${limit})`;
  const outcome = await until(
    () =>
      conn.closeCode !== null ? 'closed' : conn.acks.some((ack) => ack.up > limit) ? 'acked' : undefined,
    session.timeoutMs,
  );
  if (outcome === 'acked')
    return fail(id, `${what}: stored and acked past up_limit instead of error + close 4008`);
  if (outcome === undefined)
    return fail(id, `${what}: still open ${session.timeoutMs} ms later (expected error + close 4008)`);
  const error = conn.errorFrame();
  if (conn.closeCode === 4008 && error !== undefined && Number(error.code) === 4008)
    return pass(id, `${what}: error + close 4008`);
  return fail(
    id,
    `${what}: close ${conn.closeCode}${error === undefined ? ' without an error frame' : ` after error ${JSON.stringify(error.code)}`} (expected error + close 4008)`,
  );
}
