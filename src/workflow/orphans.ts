/**
 * Recovery after a daemon crash (kill -9). Step processes run in their own process groups and
 * sessions, so they outlive the daemon that started them; the next daemon finds them by the
 * `CHARTER_RUN_ID` in their environment and kills them before it marks the run as failed.
 *
 * Linux only: /proc/<pid>/environ is readable for our own user's processes. Without /proc the
 * functions find nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';

const POLL_MS = 20;
/** After SIGKILL, how long to wait for the processes to vanish. */
const KILL_WAIT_MS = 2_000;

/** Pids of live (non-zombie) processes whose environment holds `CHARTER_RUN_ID=<runId>`, ascending. */
export function findRunProcesses(runId: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if (belongsToRun(pid, runId)) found.push(pid);
  }
  return found.sort((a, b) => a - b);
}

/**
 * SIGTERMs every process of the run (and its process group when it leads one), waits up to
 * `graceMs` for them to vanish, SIGKILLs the survivors. Resolves to how many processes were found.
 */
export async function killRunProcesses(runId: string, graceMs: number): Promise<number> {
  const pids = findRunProcesses(runId);
  if (pids.length === 0) return 0;
  // Group leaders' groups: members that cleared their environment are still the run's.
  const groups = pids.filter((pid) => readStat(pid)?.pgrp === pid);

  signalAll(pids, groups, 'SIGTERM');
  const remaining = () => [
    ...pids.filter((pid) => belongsToRun(pid, runId)),
    ...groups.filter((pgid) => processGroupAlive(pgid)),
  ];
  if (await waitUntilEmpty(remaining, graceMs)) return pids.length;

  // Re-checked so a pid reused by an unrelated process since the first scan is left alone.
  const survivors = pids.filter((pid) => belongsToRun(pid, runId));
  const liveGroups = groups.filter((pgid) => processGroupAlive(pgid));
  signalAll(survivors, liveGroups, 'SIGKILL');
  await waitUntilEmpty(remaining, KILL_WAIT_MS);
  return pids.length;
}

function signalAll(pids: readonly number[], groups: readonly number[], signal: NodeJS.Signals): void {
  for (const pgid of groups) sendSignal(-pgid, signal);
  for (const pid of pids) sendSignal(pid, signal);
}

function sendSignal(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch {
    // ESRCH: already gone. EPERM: not ours to kill.
  }
}

/** Resolves true as soon as `remaining()` is empty, false when `limitMs` passed first. */
async function waitUntilEmpty(remaining: () => number[], limitMs: number): Promise<boolean> {
  const deadline = Date.now() + Math.max(0, limitMs);
  for (;;) {
    if (remaining().length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function belongsToRun(pid: number, runId: string): boolean {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return false; // gone, or another user's process
  }
  if (!environ.split('\0').includes(`CHARTER_RUN_ID=${runId}`)) return false;
  const state = readStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/**
 * True while the process group has a member that is not a zombie. `kill(-pgid, 0)` alone also
 * counts zombies, which may never be reaped when the reaper of orphans (pid 1 in a container)
 * does not reap, so on Linux the members are confirmed through /proc.
 */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no procfs: kill(0) is all we have
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat !== null && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/** State and process group from `/proc/<pid>/stat`, or null when the process is gone. */
function readStat(pid: number): { state: string; pgrp: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const pgrp = Number(fields[2]);
  if (state === undefined || !Number.isInteger(pgrp)) return null;
  return { state, pgrp };
}
