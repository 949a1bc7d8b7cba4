/**
 * Finding processes by their environment (Linux /proc): the daemon gives every step process
 * `CHARTER_RUN_ID`, so a test can prove that nothing of a run is left behind.
 */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Pids of live processes whose environment has `name=value` exactly. Zombies are skipped (they
 * have run their course and keep no environment); processes we may not read are skipped too
 * (other users' processes cannot be ours).
 */
export function pidsWithEnv(name: string, value: string): number[] {
  const wanted = `${name}=${value}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (environ.split('\0').includes(wanted)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked, or it is not ours to read
    }
  }
  return pids;
}

/** Pids of live processes that belong to the run (`CHARTER_RUN_ID=<runId>`). */
export function runProcesses(runId: string): number[] {
  return pidsWithEnv('CHARTER_RUN_ID', runId);
}
