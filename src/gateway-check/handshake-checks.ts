/**
 * docs/protocol.md, "Handshake": `hello` is answered by a `welcome` whose fields are in range
 * (before it the gateway sends nothing but `ping`; a gateway that knows nothing of a fresh
 * daemon id has `up_committed` 0); `protocol` ≠ 1 → error + 4012; `down_applied` beyond the
 * last dseq ever assigned → error + 4006; the epoch rule: the same or a higher epoch wins and
 * the other connection gets error + 4005, a lower one is refused with error + 4005.
 */
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import type { WelcomeFrame } from './connection.js';
import { expectClose } from './expect-close.js';
import { type CheckSession, inTurn } from './session.js';

/** Far beyond any dseq a gateway assigned to a daemon the kit made up (2^53 − 1). */
const DOWN_APPLIED_AHEAD = Number.MAX_SAFE_INTEGER;

export function checkHandshake(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [welcome, unsupportedProtocol, downAppliedAhead, newerEpochWins, olderEpochRefused]);
}

async function welcome(session: CheckSession): Promise<ClauseResult> {
  const id = 'handshake.welcome';
  const opened = await session.welcomed();
  if (!opened.ok) return fail(id, opened.why);
  const problems = welcomeProblems(opened.welcome, session.daemon.fresh);
  if (opened.conn.beforeWelcome.length > 0)
    problems.push(`sent ${opened.conn.beforeWelcome.join(', ')} before welcome`);
  const w = opened.welcome;
  const saw = `welcome {conn_id ${JSON.stringify(w.conn_id.slice(0, 40))}, hb_ms ${w.hb_ms}, max_frame ${w.max_frame}, up_committed ${w.up_committed}, up_limit ${w.up_limit}}`;
  return problems.length === 0 ? pass(id, saw) : fail(id, `${saw}: ${problems.join('; ')}`);
}

/** What the schema cannot say about a welcome (its ranges it checked already). */
function welcomeProblems(w: WelcomeFrame, freshDaemon: boolean): string[] {
  const problems: string[] = [];
  if (w.conn_id === '') problems.push('conn_id is empty');
  if (Number.isNaN(Date.parse(w.server_time)))
    problems.push(`server_time ${JSON.stringify(w.server_time.slice(0, 40))} is not ISO 8601`);
  if (w.up_limit < w.up_committed) problems.push(`up_limit ${w.up_limit} < up_committed ${w.up_committed}`);
  if (freshDaemon && w.up_committed !== 0)
    problems.push(`up_committed ${w.up_committed} for a daemon id it never saw (expected 0)`);
  return problems;
}

async function unsupportedProtocol(session: CheckSession): Promise<ClauseResult> {
  const id = 'handshake.unsupported-protocol';
  const opened = await session.opened();
  if (!opened.ok) return notObserved(id, opened.why);
  opened.conn.send(session.daemon.hello({ protocol: 2 }));
  return expectClose(id, opened.conn, 4012, session.timeoutMs);
}

async function downAppliedAhead(session: CheckSession): Promise<ClauseResult> {
  const id = 'handshake.down-applied-ahead';
  const opened = await session.opened();
  if (!opened.ok) return notObserved(id, opened.why);
  opened.conn.send(session.daemon.hello({ down_applied: DOWN_APPLIED_AHEAD }));
  return expectClose(id, opened.conn, 4006, session.timeoutMs);
}

async function newerEpochWins(session: CheckSession): Promise<ClauseResult> {
  const id = 'handshake.epoch-newer-wins';
  const older = await session.welcomed();
  if (!older.ok) return notObserved(id, `first connection: ${older.why}`);
  // A restarted daemon process: its epoch is higher, and from now on the kit's.
  session.daemon.epoch += 1;
  const newer = await session.welcomed();
  if (!newer.ok) return fail(id, `hello with the higher epoch ${session.daemon.epoch}: ${newer.why}`);
  const result = await expectClose(id, older.conn, 4005, session.timeoutMs);
  return result.status === 'pass'
    ? pass(id, `older connection: ${result.saw}; the newer one welcomed`)
    : fail(id, `older connection: ${result.saw}`);
}

async function olderEpochRefused(session: CheckSession): Promise<ClauseResult> {
  const id = 'handshake.epoch-older-refused';
  const opened = await session.opened();
  if (!opened.ok) return notObserved(id, opened.why);
  // Lower than every epoch this run said hello with (an older process of the same daemon).
  opened.conn.send(session.daemon.hello({ epoch: session.daemon.firstEpoch - 1 }));
  return expectClose(id, opened.conn, 4005, session.timeoutMs);
}
