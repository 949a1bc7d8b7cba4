import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/cli/process.js';
import { findRunProcesses, killRunProcesses, processGroupAlive } from '../../src/workflow/orphans.js';

const hasProc = existsSync('/proc/self/environ');

const leftovers: ChildProcess[] = [];

afterEach(() => {
  for (const child of leftovers.splice(0)) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A step process of a daemon that died: own group and session, CHARTER_RUN_ID in its env. */
function startLeftover(runId: string, command: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', command], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, CHARTER_RUN_ID: runId },
  });
  leftovers.push(child);
  return child;
}

const newRunId = () => `rTEST${randomBytes(6).toString('hex')}`;

describe.skipIf(!hasProc)('orphaned step processes', { timeout: 10_000 }, () => {
  it('finds the processes of a run by CHARTER_RUN_ID, kills them and their group', async () => {
    const runId = newRunId();
    // `; true` keeps the shell alive as group leader with a `sleep` child: two processes.
    const child = startLeftover(runId, 'sleep 30; true');
    const pgid = child.pid as number;

    let found: number[] = [];
    const deadline = Date.now() + 3_000;
    while (found.length < 2 && Date.now() < deadline) {
      found = findRunProcesses(runId);
      if (found.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(found).toContain(pgid);
    expect(found).toHaveLength(2);
    expect(found).not.toContain(process.pid);

    const killed = await killRunProcesses(runId, 1_000);
    expect(killed).toBeGreaterThanOrEqual(1);
    expect(findRunProcesses(runId)).toEqual([]);
    for (const pid of found) expect(isProcessAlive(pid)).toBe(false);
    expect(processGroupAlive(pgid)).toBe(false);
  });

  it('SIGKILLs processes that ignore SIGTERM after the grace period', async () => {
    const runId = newRunId();
    const child = startLeftover(runId, "trap '' TERM; sleep 30; true");
    const pgid = child.pid as number;
    await waitUntil(() => findRunProcesses(runId).length === 2);

    const started = Date.now();
    expect(await killRunProcesses(runId, 300)).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(findRunProcesses(runId)).toEqual([]);
    expect(processGroupAlive(pgid)).toBe(false);
  });

  it('matches the run id exactly and leaves other runs alone', async () => {
    const runId = newRunId();
    const other = startLeftover(`${runId}x`, 'sleep 30');
    const otherPid = other.pid as number;
    await waitUntil(() => findRunProcesses(`${runId}x`).includes(otherPid));

    expect(findRunProcesses(runId)).toEqual([]);
    expect(await killRunProcesses(runId, 200)).toBe(0);
    expect(isProcessAlive(otherPid)).toBe(true);
    expect(findRunProcesses(`${runId}x`)).toContain(otherPid);
  });

  it('leaves another run alone while killing this one', async () => {
    const runId = newRunId();
    const otherRunId = newRunId();
    const mine = startLeftover(runId, 'sleep 30');
    const other = startLeftover(otherRunId, 'sleep 30');
    await waitUntil(
      () =>
        findRunProcesses(runId).includes(mine.pid as number) &&
        findRunProcesses(otherRunId).includes(other.pid as number),
    );

    expect(await killRunProcesses(runId, 1_000)).toBeGreaterThanOrEqual(1);
    expect(findRunProcesses(runId)).toEqual([]);
    expect(isProcessAlive(mine.pid as number)).toBe(false);
    expect(isProcessAlive(other.pid as number)).toBe(true);
    expect(findRunProcesses(otherRunId)).toContain(other.pid as number);
  });

  it('finds nothing for a run that has no processes', async () => {
    expect(findRunProcesses(newRunId())).toEqual([]);
    expect(await killRunProcesses(newRunId(), 100)).toBe(0);
  });
});

async function waitUntil(condition: () => boolean, limitMs = 3_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
