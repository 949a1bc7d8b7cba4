/**
 * The shape of every "answered by error + close CODE" clause (docs/protocol.md, "Errors and
 * close codes": an `error {code, message}` goes out just before a close, and `code` is the close
 * code that follows; the checklist: "Precede every close you initiate with error").
 */
import { type ClauseId, type ClauseResult, fail, pass } from './clauses.js';
import type { ScriptedConnection } from './connection.js';
import { describeClose } from './session.js';

/** Waits (bounded) for the gateway to close `conn`, and judges the close against `expected`. */
export async function expectClose(
  id: ClauseId,
  conn: ScriptedConnection,
  expected: number,
  timeoutMs: number,
): Promise<ClauseResult> {
  const code = await conn.closed(timeoutMs);
  if (code === null) return fail(id, `still open ${timeoutMs} ms later (expected error + close ${expected})`);
  const error = conn.errorFrame();
  const saw = describeClose(code, error);
  if (code !== expected) return fail(id, `${saw} (expected ${expected})`);
  if (error === undefined) return fail(id, `${saw}: the close must follow an error frame`);
  if (Number(error.code) !== expected) return fail(id, `${saw}: the error frame's code must be ${expected}`);
  return pass(id, saw);
}
