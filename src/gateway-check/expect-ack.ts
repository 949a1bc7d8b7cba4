/**
 * The shape of every "stored and acked" clause (docs/protocol.md, "`ack`": cumulative, every
 * seq ≤ up is durably stored, sent only after storing).
 */
import { type ClauseId, type ClauseResult, fail, pass } from './clauses.js';
import type { ScriptedConnection } from './connection.js';
import { until } from './wait.js';

/** Holds when an ack covers `seq` and the connection stays open. */
export async function judgeAcked(
  id: ClauseId,
  conn: ScriptedConnection,
  seq: number,
  timeoutMs: number,
  what: string,
): Promise<ClauseResult> {
  const ack = await until(
    () => conn.acks.find((seen) => seen.up >= seq) ?? (conn.open ? undefined : null),
    timeoutMs,
  );
  if (ack === undefined)
    return fail(id, `${what} sent up to seq ${seq}: no ack covering it within ${timeoutMs} ms`);
  if (ack === null)
    return fail(id, `${what} sent up to seq ${seq}: the gateway closed with ${conn.closeCode}`);
  return pass(id, `${what} up to seq ${seq}: ack {up: ${ack.up}, up_limit: ${ack.upLimit}}`);
}
