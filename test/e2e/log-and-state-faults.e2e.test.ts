/**
 * Real faults under a live daemon, through the built CLI: a log file that cannot be written
 * (`chattr +i`), and the state directory removed while the daemon runs (`rm -rf .charter/daemon`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunJson } from '../../commands/run.js';
import type { StartJson } from '../../commands/start.js';
import type { StatusJson } from '../../commands/status.js';
import { daemonPaths } from '../../src/project/paths.js';
import {
  assertBuilt,
  cliPath,
  daemonPids,
  destroyProjects,
  makeProject,
  parseJson,
  runCli,
  waitUntil,
} from '../support/cli.js';
import { pidsWithEnv } from '../support/processes.js';

const projects: string[] = [];
const children: ChildProcess[] = [];
const immutable: string[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const path of immutable.splice(0)) chattr('-i', path);
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  destroyProjects(projects);
});

/** A project with two workflows: `quick` prints a line, `nap` sleeps a few seconds. */
function project(): string {
  const root = realpathSync(makeProject());
  projects.push(root);
  const workflow = (id: string, run: string) => {
    const dir = join(root, 'workflows', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(dir, 'plan.yml'), `steps:\n  - id: only\n    run: ${run}\n    timeout: 1m\n`);
  };
  workflow('quick', 'echo quick');
  workflow('nap', 'sleep 3');
  return root;
}

function chattr(flag: '+i' | '-i', path: string): boolean {
  return spawnSync('chattr', [flag, path], { stdio: 'ignore' }).status === 0;
}

async function start(root: string): Promise<StartJson> {
  const result = await runCli(['start', '--json', '--project-path', root]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseJson<StartJson>(result.stdout);
}

async function status(root: string): Promise<StatusJson> {
  const result = await runCli(['status', '--json', '--project-path', root]);
  return parseJson<StatusJson>(result.stdout);
}

async function runQuick(root: string): Promise<RunJson> {
  const result = await runCli(['run', 'quick', '--wait', '--json', '--project-path', root]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseJson<RunJson>(result.stdout);
}

describe('an unwritable log file', () => {
  it('chattr +i on daemon.log: runs still succeed, status counts the dropped lines; chattr -i: logging resumes and says what was lost', async (context) => {
    const root = project();
    const started = await start(root);
    const logPath = started.log_path;
    if (!chattr('+i', logPath)) {
      context.skip('chattr +i is refused here (needs root or CAP_LINUX_IMMUTABLE, and ext4/xfs/btrfs)');
    }
    immutable.push(logPath);
    const sizeWhenFrozen = readFileSync(logPath).length;

    for (let i = 0; i < 3; i++) expect(await runQuick(root)).toMatchObject({ state: 'succeeded' });

    const frozen = await status(root);
    expect(frozen).toMatchObject({ running: true, pid: started.pid, state: 'serving' });
    if (!frozen.running) throw new Error('not running');
    expect(frozen.log).toMatchObject({ path: logPath, failing: true });
    expect(frozen.log?.dropped_lines).toBeGreaterThan(0);
    expect(frozen.log?.last_error).toMatch(/^EPERM/);
    const text = await runCli(['status', '--project-path', root]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/not writable, \d+ line\(s\) dropped; last error: EPERM/);
    expect(readFileSync(logPath).length).toBe(sizeWhenFrozen);

    expect(chattr('-i', logPath)).toBe(true);
    // The daemon retries about once a second, on its next line: keep it busy until it has.
    const deadline = Date.now() + 20_000;
    while (!readFileSync(logPath, 'utf8').includes('takes lines again')) {
      if (Date.now() > deadline) throw new Error('logging did not resume after chattr -i');
      await runQuick(root);
    }
    const notice = readFileSync(logPath, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => String(line.msg).includes('takes lines again'));
    expect(notice).toMatchObject({
      level: 40,
      pid: started.pid,
      last_error: expect.stringMatching(/^EPERM/),
    });
    expect(Number(notice?.dropped_lines)).toBeGreaterThanOrEqual(frozen.log?.dropped_lines ?? 0);

    const recovered = await status(root);
    if (!recovered.running) throw new Error('not running');
    expect(recovered).toMatchObject({ pid: started.pid, log: { failing: false } });
    expect(recovered.log?.dropped_lines).toBe(notice?.dropped_lines);
    expect(recovered.runs.succeeded).toBeGreaterThanOrEqual(4);
    const text2 = await runCli(['status', '--project-path', root]);
    expect(text2.stdout).toMatch(/\d+ line\(s\) dropped while not writable; last error: EPERM/);
  });
});

describe('the state directory removed under a live daemon', () => {
  it('the daemon notices, drains and exits saying why; a new start gives exactly one daemon', async () => {
    const root = project();
    // In the foreground, so that what it says on its way out is readable (its log file is gone).
    const child = spawn(process.execPath, [cliPath, 'start', '--foreground', '--project-path', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await waitUntil(() => stdout.includes('"msg":"daemon ready"'), 10_000, 'the daemon to be ready');

    rmSync(daemonPaths(root).stateDir, { recursive: true });
    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000)),
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain('state directory removed');
    const stoppedLine = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg?: string; data?: { reason?: string } })
      .find((line) => line.msg === 'journal: daemon.stopped');
    expect(stoppedLine?.data?.reason).toBe('state directory removed');

    const second = await start(root);
    expect(second.already_running).toBe(false);
    expect(daemonPids(root)).toEqual([second.pid]);
    expect(await status(root)).toMatchObject({ running: true, pid: second.pid });
  });

  it('a start right after the removal, before the old daemon has drained: the old one leaves the new socket alone', async () => {
    const root = project();
    const first = await start(root);
    const nap = await runCli(['run', 'nap', '--json', '--project-path', root]);
    expect(nap.code).toBe(0);
    await waitUntil(() => pidsWithEnv('CHARTER_PROJECT_ROOT', root).length > 0, 10_000, 'the nap step');

    rmSync(daemonPaths(root).stateDir, { recursive: true });
    const second = await start(root);
    expect(second.pid).not.toBe(first.pid);
    // The old daemon drains its running step (a few seconds), then exits.
    await waitUntil(() => !daemonPids(root).includes(first.pid), 20_000, 'the old daemon to exit');

    expect(daemonPids(root)).toEqual([second.pid]);
    expect(existsSync(second.socket_path)).toBe(true);
    expect(await status(root)).toMatchObject({ running: true, pid: second.pid });
    const again = await runCli(['start', '--project-path', root]);
    expect(again.stdout).toContain(`already running (pid ${second.pid})`);
    expect(daemonPids(root)).toEqual([second.pid]);
  });
});
