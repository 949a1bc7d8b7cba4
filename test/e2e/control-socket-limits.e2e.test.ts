/**
 * The control socket of a real daemon (the built CLI) against a hostile local process: clients
 * that ask for a large log and never read it, and connections opened until the daemon runs out
 * of file descriptors (a daemon started under `ulimit -n 64`). The daemon must stay up, drop or
 * refuse the excess with a clear code, say so in `status`, and give the memory and the
 * descriptors back once the clients are gone.
 */
import { cpSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ControlSocketStatus } from '../../src/protocol/control.js';
import {
  assertBuilt,
  destroyProjects,
  makeProject,
  parseJson,
  repoRoot,
  runCli,
  runProgram,
  startSampleProject,
} from '../support/cli.js';
import { RawPeer, waitUntil } from '../support/control-peer.js';
import { pollUntil } from '../support/wait.js';

const projects: string[] = [];

afterAll(() => destroyProjects(projects));

interface Status {
  pid: number;
  state: string;
  control?: ControlSocketStatus;
}

async function status(root: string): Promise<Status> {
  const result = await runCli(['status', '--json', '--project-path', root]);
  if (result.code !== 0) throw new Error(`status exited ${result.code}: ${result.stderr}${result.stdout}`);
  return parseJson<Status>(result.stdout);
}

function rssMiB(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** utime + stime of a process, in clock ticks (1/100 s on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const hello = { id: 0, method: 'hello', params: { protocol: 1, client_version: 'e2e' } };
const socketOf = (root: string): string => join(root, '.charter', 'daemon', 'daemon.sock');

describe('the control socket under a hostile local process', () => {
  it('drops clients that never read a large log, reports it, and gives the memory back', async () => {
    assertBuilt();
    const capMiB = 4;
    const root = await startSampleProject(projects, {
      charterYml: `name: e2e\ndaemon:\n  control_max_buffered_mb: ${capMiB}\n`,
    });
    mkdirSync(join(root, 'workflows', 'flood'), { recursive: true });
    writeFileSync(join(root, 'workflows', 'flood', 'manifest.yml'), 'id: flood\nname: Flood\n');
    writeFileSync(
      join(root, 'workflows', 'flood', 'plan.yml'),
      "steps:\n  - id: flood\n    run: yes 'a line of the flood run, long enough to matter' | head -c 8000000\n",
    );
    const run = await runCli(['run', 'flood', '--wait', '--json', '--project-path', root], {
      timeoutMs: 60_000,
    });
    expect(run.code, run.stderr).toBe(0);
    const { run_id: runId } = parseJson<{ run_id: string }>(run.stdout);

    const { pid } = await status(root);
    const idleRss = rssMiB(pid);
    const silent: RawPeer[] = [];
    for (let n = 0; n < 24; n++) {
      const peer = await RawPeer.connect(socketOf(root));
      // Never reads a byte: the answers pile up in the daemon for it.
      peer.socket.pause();
      silent.push(peer);
      const lines = [
        hello,
        ...[1, 2, 3, 4].map((id) => ({ id, method: 'run.logs', params: { run_id: runId } })),
      ];
      await peer.write(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
    }

    const during = await pollUntil(
      () => status(root),
      (s) => (s.control?.dropped_slow_clients ?? 0) >= 12,
      { timeoutMs: 30_000, what: 'the daemon to drop the clients that do not read', everyMs: 100 },
    );
    expect(during.state).toBe('serving');
    expect(during.control?.max_buffered_bytes).toBe(capMiB * 1024 * 1024);
    expect(during.control?.buffered_bytes).toBeLessThanOrEqual(capMiB * 1024 * 1024);
    const peakRss = rssMiB(pid);

    const text = await runCli(['status', '--project-path', root]);
    expect(text.stdout).toMatch(/\d+ client\(s\) dropped for not reading their answers \(CLIENT_TOO_SLOW/);

    for (const peer of silent) peer.destroy();
    const after = await pollUntil(
      () => status(root),
      (s) => (s.control?.connections ?? 99) <= 1 && s.control?.buffered_bytes === 0,
      { timeoutMs: 20_000, what: 'the connections to be gone', everyMs: 100 },
    );
    expect(after.control?.dropped_slow_clients).toBeGreaterThanOrEqual(12);
    // Back near idle: well within the cap of what it may buffer, plus room for the heap's own
    // slack (V8 gives garbage back on its own schedule: polled, not timed).
    const settled = await pollUntil(
      () => rssMiB(pid),
      (rss) => rss <= idleRss + 8 * capMiB,
      {
        timeoutMs: 60_000,
        what: `RSS to come back near ${idleRss.toFixed(1)} MiB (peak ${peakRss.toFixed(1)})`,
        everyMs: 250,
      },
    );
    process.stdout.write(
      `RSS idle ${idleRss.toFixed(1)} MiB, during ${peakRss.toFixed(1)} MiB, after ${settled.toFixed(1)} MiB\n`,
    );
    // A reading client still gets the whole log.
    const logs = await runCli(['logs', runId, '--json', '--project-path', root], { timeoutMs: 60_000 });
    expect(logs.code, logs.stderr).toBe(0);
  }, 180_000);

  it('refuses connections past its descriptors without spinning, and accepts again once they close', async () => {
    assertBuilt();
    const root = realpathSync(
      makeProject({ charterYml: 'name: e2e\ndaemon:\n  control_idle_timeout_seconds: 600\n' }),
    );
    projects.push(root);
    cpSync(join(repoRoot, 'examples/hello/workflows'), join(root, 'workflows'), { recursive: true });
    // The limit is lowered once the daemon runs: loading its modules at start-up opens more than
    // 64 files at once (Node's module loader reads them in parallel), so under `ulimit -n 64` it
    // would not get that far.
    const started = await runCli(['start', '--project-path', root]);
    expect(started.code, started.stderr).toBe(0);
    const { pid } = await status(root);
    const limited = await runProgram('prlimit', ['--pid', String(pid), '--nofile=64:64']);
    expect(limited.code, limited.stderr).toBe(0);
    expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(/^Max open files\s+64\s/m);

    const kept: RawPeer[] = [];
    /** Refusals: their messages, or '' for a connection closed before its refusal could be read. */
    const refusals: string[] = [];
    /**
     * Connects and says hello: kept when answered. A refused connection is closed at once (to
     * give its descriptor back), so the hello may meet a closed socket (EPIPE) before the
     * refusal is read: closed or refused, it must not hang.
     */
    const attempt = async (): Promise<void> => {
      const peer = await RawPeer.connect(socketOf(root));
      await peer.send(hello);
      await waitUntil(() => peer.lines.length > 0 || peer.closed, 'an answer, a refusal or a close');
      const [first] = peer.json;
      if (first?.ok === true) {
        kept.push(peer);
        return;
      }
      if (first !== undefined) {
        expect(first).toMatchObject({ id: null, ok: false, error: { code: 'TOO_MANY_CLIENTS' } });
      }
      refusals.push(first?.error?.message ?? '');
      await peer.waitForClose();
    };
    for (let n = 0; n < 120 && refusals.length < 5; n++) await attempt();
    expect(kept.length).toBeGreaterThan(0);
    expect(refusals).toHaveLength(5);
    const told = refusals.filter((message) => message !== '');
    expect(told.length).toBeGreaterThan(0);
    for (const message of told)
      expect(message).toMatch(/short of file descriptors .*EMFILE: \d+ of 64 file descriptors open/);

    // While it is out of descriptors and keeps being asked, it stays up without spinning.
    const windowStart = Date.now();
    const ticksBefore = cpuTicks(pid);
    for (let n = 0; n < 20; n++) await attempt();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const windowTicks = ((Date.now() - windowStart) / 1000) * 100;
    const used = cpuTicks(pid) - ticksBefore;
    expect(used).toBeLessThan(windowTicks * 0.5);
    expect(refusals).toHaveLength(25);
    process.kill(pid, 0);

    for (const peer of kept) peer.destroy();
    const recovered = await pollUntil(
      async () => {
        const result = await runCli(['status', '--json', '--project-path', root]);
        return result.code === 0 ? parseJson<Status>(result.stdout) : null;
      },
      (s) => s?.control?.accepting === true,
      { timeoutMs: 30_000, what: 'status to answer and the socket to accept again', everyMs: 200 },
    );
    expect(recovered?.pid).toBe(pid);
    expect(recovered?.control?.accept_errors).toBeGreaterThanOrEqual(25);
    expect(recovered?.control?.last_accept_error).toContain('EMFILE');
    const text = await runCli(['status', '--project-path', root]);
    expect(text.stdout).toMatch(
      /\d+ connection\(s\) refused for lack of file descriptors; last error: EMFILE/,
    );
    // The episode was logged once, not once per refusal.
    const log = readFileSync(join(root, '.charter', 'daemon', 'daemon.log'), 'utf8');
    expect(log.split('\n').filter((line) => line.includes('out of file descriptors'))).toHaveLength(1);
  }, 120_000);
});
