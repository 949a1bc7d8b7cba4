/**
 * docs/protocol.md, "Liveness": `ping {t}` is answered by `pong` with the same `t` at once; the
 * daemon pings every `hb_ms` and declares the gateway dead after 2 × `hb_ms` without a frame,
 * so on a quiet link the gateway must answer those pings and keep the connection; a gateway's
 * own pings are optional, but one that pings does so every `hb_ms`.
 */
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import { type CheckSession, inTurn } from './session.js';
import { sleep, until } from './wait.js';

/** A quiet link longer than this is not waited for (the clause is then not observed). */
export const MAX_QUIET_WINDOW_MS = 60_000;

export function checkLiveness(session: CheckSession): Promise<ClauseResult[]> {
  return inTurn(session, [pong, quietLink]);
}

async function pong(session: CheckSession): Promise<ClauseResult> {
  const id = 'liveness.pong';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn } = opened;
  const t = 424242.5;
  conn.send({ op: 'ping', t });
  const answer = await until(
    () => conn.frames.find((frame) => frame.op === 'pong' && frame.t === t) ?? (conn.open ? undefined : null),
    session.timeoutMs,
  );
  if (answer === null) return fail(id, `ping {t: ${t}} answered by close ${conn.closeCode}`);
  if (answer === undefined) {
    const pongs = conn.frames.filter((frame) => frame.op === 'pong').length;
    return fail(id, `no pong {t: ${t}} within ${session.timeoutMs} ms (${pongs} other pong(s))`);
  }
  return pass(id, `ping {t: ${t}} → pong {t: ${t}}`);
}

async function quietLink(session: CheckSession): Promise<ClauseResult> {
  const id = 'liveness.quiet-link';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const hb = welcome.hb_ms;
  // Scheduling slack: the daemon's own verdict may come after 1.75 × to 2 × hb_ms.
  const slack = Math.max(250, Math.floor(hb / 2));
  const window = 2 * hb + slack;
  if (window > MAX_QUIET_WINDOW_MS)
    return notObserved(
      id,
      `hb_ms ${hb}: a quiet window of ${window} ms is longer than ${MAX_QUIET_WINDOW_MS} ms`,
    );
  const opensAt = conn.welcomedAt ?? Date.now();
  const endsAt = opensAt + window;
  while (Date.now() < endsAt && conn.open) await sleep(Math.min(50, endsAt - Date.now()));
  if (!conn.open)
    return fail(
      id,
      `the gateway closed with ${conn.closeCode} ${Date.now() - opensAt} ms into a quiet link (hb_ms ${hb})`,
    );

  const problems: string[] = [];
  const pongTs = new Set(conn.frames.flatMap((frame) => (frame.op === 'pong' ? [frame.t] : [])));
  const due = [...conn.pingsSent].filter(([, sentAt]) => sentAt <= endsAt - slack);
  const unanswered = due.filter(([t]) => !pongTs.has(t)).length;
  if (due.length === 0) problems.push('the kit sent no ping in the window');
  if (unanswered > 0) problems.push(`${unanswered} of ${due.length} pings unanswered`);
  const silence = longestSilence(opensAt, conn.arrivals, endsAt);
  if (silence >= 2 * hb)
    problems.push(`no frame for ${silence} ms (≥ 2 × hb_ms: a daemon would drop the link)`);
  const gatewayPings = conn.frames.filter((frame) => frame.op === 'ping').length;
  const pingGap = longestSilence(opensAt, pingArrivals(conn.frames, conn.frameAt), endsAt);
  if (gatewayPings > 0 && pingGap > hb + slack)
    problems.push(`the gateway pings, but once went ${pingGap} ms without (hb_ms ${hb})`);
  const pinging =
    gatewayPings === 0
      ? 'it sent no ping of its own (optional)'
      : `it pinged ${gatewayPings} time(s), at most ${pingGap} ms apart`;
  const saw = `${window} ms quiet, hb_ms ${hb}: ${due.length - unanswered}/${due.length} pings answered, longest silence ${silence} ms; ${pinging}`;
  return problems.length === 0 ? pass(id, saw) : fail(id, `${saw}: ${problems.join('; ')}`);
}

/** The longest stretch without one of `times` between `from` and `to`. */
function longestSilence(from: number, times: readonly number[], to: number): number {
  let longest = 0;
  let previous = from;
  for (const at of times) {
    if (at < from || at > to) continue;
    longest = Math.max(longest, at - previous);
    previous = at;
  }
  return Math.max(longest, to - previous);
}

/** When each gateway ping arrived. */
function pingArrivals(frames: readonly { op: string }[], frameAt: readonly number[]): number[] {
  return frames.flatMap((frame, index) => (frame.op === 'ping' ? [frameAt[index] ?? 0] : []));
}
