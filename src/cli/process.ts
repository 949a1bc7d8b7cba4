/** Process helpers for the CLI: liveness that does not mistake a zombie for a live daemon. */
import { existsSync, readFileSync } from 'node:fs';

const HAS_PROCFS = existsSync('/proc/self/stat');

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // "pid (comm) S …": a zombie has exited and only waits for its parent to reap it.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // Gone in between, or no procfs at all (macOS), where kill(0) is all we have.
    return !HAS_PROCFS;
  }
}

/** Resolves true once the process is gone, false at the deadline. */
export async function waitForExit(pid: number, timeoutMs: number, pollMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return true;
}
