/**
 * Test-only fault injection: `CHARTER_DAEMON_CRASH_AT=<point>[:<n>]` makes the daemon SIGKILL
 * itself the n-th time (default: the first) it passes the named point. The fault-injection
 * tests use it to stop the daemon at each step of command handling, precisely, instead of
 * hoping a random `kill -9` lands in a window of a few microseconds. Unset, it costs one
 * comparison per point.
 */
export type CrashPoint =
  /** A gateway command is stored in the inbox; its `cack` not sent yet. */
  | 'command.stored'
  /** The `cack` is written to the socket; the command not applied yet. */
  | 'command.acked'
  /** A command's effect and its result are committed; the caller not answered yet. */
  | 'command.applied'
  /** A refused gateway command's result is committed. */
  | 'command.settled'
  /** A new run is stored; the caller not answered yet. */
  | 'run.stored';

const spec = parse(process.env.CHARTER_DAEMON_CRASH_AT);
let passes = 0;

function parse(value: string | undefined): { point: string; nth: number } | null {
  if (value === undefined || value === '') return null;
  const [point = '', nth] = value.split(':');
  const n = nth === undefined ? 1 : Number(nth);
  return { point, nth: Number.isInteger(n) && n > 0 ? n : 1 };
}

export function crashPoint(point: CrashPoint): void {
  if (spec === null || spec.point !== point) return;
  passes += 1;
  if (passes === spec.nth) process.kill(process.pid, 'SIGKILL');
}
