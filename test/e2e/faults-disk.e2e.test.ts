/**
 * A full disk under a live daemon, for real: the project lives on a 4 MiB tmpfs that the test
 * fills up. The daemon must stay up, refuse what it cannot record with DISK_FULL, say so in
 * `status`, fail the run whose output it could not store (with a stated reason, once it can
 * store that), lose nothing already stored, and recover by itself once space is freed.
 * Needs root (mount); skipped with a message where mounting is refused.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunJson } from '../../commands/run.js';
import type { StatusJson } from '../../commands/status.js';
import type { RunDetail } from '../../src/protocol/runs.js';
import { assertBuilt, daemonPids, destroyProject, parseJson, runCli, waitUntil } from '../support/cli.js';
import { pollUntil, sleep } from '../support/wait.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'cdfull-'));
const root = join(mountPoint, 'project');
const filler = join(mountPoint, 'filler');
const mounted =
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint], { stdio: 'ignore' }).status === 0;

beforeAll(() => {
  assertBuilt();
  if (!mounted) return;
  mkdirSync(root);
  writeFileSync(join(root, 'charter.yml'), 'name: full-disk\n');
  const workflow = (id: string, plan: string) => {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), plan);
  };
  workflow('quick', 'steps:\n  - id: only\n    run: echo quick\n');
  workflow(
    'gated',
    'steps:\n  - id: hold\n    gate: { prompt: Go on? }\n  - id: after\n    run: echo after the gate\n',
  );
  // Prints a line every 20 ms for about 20 s: its output meets the full disk.
  workflow(
    'chatty',
    'steps:\n  - id: talk\n    run: |\n      i=0\n      while [ $i -lt 1000 ]; do echo "line $i of chatter"; i=$((i+1)); sleep 0.02; done\n    timeout: 2m\n',
  );
});

afterAll(() => {
  if (!mounted) return;
  destroyProject(root);
  spawnSync('umount', ['-l', mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli([...args, '--project-path', root], { timeoutMs: 30_000 });
const status = async () =>
  parseJson<Extract<StatusJson, { running: true }>>((await cli('status', '--json')).stdout);
const show = async (runId: string) =>
  parseJson<RunDetail>((await cli('runs', 'show', runId, '--json')).stdout);

/** Fills the filesystem to the last byte. */
function fillDisk(): void {
  spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'], { stdio: 'ignore' });
}

describe('a full disk under a live daemon', () => {
  it('refuses what it cannot record, keeps serving, says so, and recovers by itself', async (context) => {
    if (!mounted) context.skip(`cannot mount a tmpfs at ${mountPoint} (needs root): no real full disk here`);
    expect((await cli('start')).code).toBe(0);
    const [pid] = daemonPids(root);
    const gated = parseJson<RunJson>((await cli('run', 'gated', '--json')).stdout).run_id;
    const chatty = parseJson<RunJson>((await cli('run', 'chatty', '--json')).stdout).run_id;
    await sleep(300); // some chatter is stored before the disk fills

    fillDisk();
    // A new run cannot be recorded: refused with DISK_FULL, the path and what to do.
    const refused = await cli('run', 'quick', '--json');
    expect(refused.code).not.toBe(0);
    const error = parseJson<{ error: { code: string; message: string; hint: string } }>(refused.stdout).error;
    expect(error.code).toBe('DISK_FULL');
    expect(error.message).toContain(join(root, '.charter', 'daemon', 'state.db'));
    expect(error.hint).toMatch(/Free space/);
    // A gate decision it could not record is refused too: the run keeps waiting, unharmed.
    const resume = await cli('resume', gated, '--approve', '--json');
    expect(parseJson<{ error: { code: string } }>(resume.stdout).error.code).toBe('DISK_FULL');
    expect((await show(gated)).state).toBe('waiting');
    // Still serving, and saying why writes fail.
    expect(daemonPids(root)).toEqual([pid]);
    const faulty = await status();
    expect(faulty.store_fault).toMatchObject({ code: 'DISK_FULL' });
    expect((await cli('status')).stdout).toMatch(/NOT WRITABLE since .* \(DISK_FULL\)/);

    // Space comes back: the daemon notices on its own, with nothing lost.
    rmSync(filler);
    await waitUntil(() => daemonPids(root).length === 1, 1000, 'the daemon to be alive');
    const chattyRun = await pollUntil(
      () => show(chatty),
      (run) => run.finished_at !== null,
      { timeoutMs: 20_000, what: 'the chatty run to finish', everyMs: 200 },
    );
    // Its output met the full disk: failed, with the reason stated (recorded once space returned).
    expect(chattyRun.state).toBe('failed');
    expect(chattyRun.reason).toMatch(/^disk_full: /);
    const quick = parseJson<RunJson>((await cli('run', 'quick', '--wait', '--json')).stdout);
    expect(quick.state).toBe('succeeded');
    expect((await status()).store_fault ?? null).toBeNull();
    const approved = await cli('resume', gated, '--approve', '--json');
    expect(approved.code).toBe(0);
    await pollUntil(
      () => show(gated),
      (run) => run.state === 'succeeded',
      {
        timeoutMs: 10_000,
        what: 'the gated run to finish after approval',
        everyMs: 100,
      },
    );
    // Nothing stored before the fault was lost: the chatter from before the disk filled is there.
    const logs = await cli('logs', chatty, '--json');
    expect(logs.stdout).toContain('line 0 of chatter');
    expect(daemonPids(root)).toEqual([pid]);
    expect((await cli('stop')).code).toBe(0);
  }, 90_000);
});
