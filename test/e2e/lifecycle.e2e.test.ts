/**
 * The built CLI against real daemons in temporary projects: start, status, stop and the ways
 * they can go wrong (kill -9, races, deep paths, broken config, a daemon that never answers).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StartJson } from '../../commands/start.js';
import type { StatusJson } from '../../commands/status.js';
import type { StopJson } from '../../commands/stop.js';
import { daemonPaths } from '../../src/project/paths.js';
import {
  assertBuilt,
  cliPath,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  runCli,
  waitUntil,
} from '../support/cli.js';

const projects: string[] = [];
function project(options?: Parameters<typeof makeProject>[0]): string {
  const root = makeProject(options);
  projects.push(root);
  return root;
}

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const root of projects.splice(0)) destroyProject(root);
});

async function startDaemon(root: string, extra: string[] = []): Promise<StartJson> {
  const result = await runCli(['start', '--json', '--project-path', root, ...extra]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseJson<StartJson>(result.stdout);
}

async function statusJson(root: string): Promise<{ code: number | null; json: StatusJson }> {
  const result = await runCli(['status', '--json', '--project-path', root]);
  return { code: result.code, json: parseJson<StatusJson>(result.stdout) };
}

describe('charter-daemon start / status / stop', () => {
  it('start → status --json → stop, and the process is gone when stop returns', async () => {
    const root = project();
    const started = await startDaemon(root);
    expect(started.already_running).toBe(false);
    expect(started.socket_path).toBe(join(root, '.charter/daemon/daemon.sock'));
    expect(daemonPids(root)).toEqual([started.pid]);

    const { code, json } = await statusJson(root);
    expect(code).toBe(0);
    expect(json).toMatchObject({
      running: true,
      pid: started.pid,
      state: 'serving',
      project_root: root,
      socket_path: started.socket_path,
      store_path: join(root, '.charter/daemon/state.db'),
      gateway: { state: 'offline', url: null },
      runs: { queued: 0, running: 0, waiting: 0 },
    });
    if (json.running) {
      expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
      // Uptime is measured from started_at (to within the few seconds this test takes).
      const sinceStart = (Date.now() - Date.parse(json.started_at)) / 1000;
      expect(Math.abs(json.uptime_seconds - sinceStart)).toBeLessThan(5);
      expect(json.daemon_id).toMatch(/^[0-9a-f-]{36}$/);
    }

    const human = await runCli(['status', '--project-path', root]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`charter-daemon is running (pid ${started.pid}`);
    expect(human.stdout).toContain('gateway:   offline');

    const stopped = await runCli(['stop', '--json', '--project-path', root]);
    expect(stopped.code).toBe(0);
    expect(parseJson<StopJson>(stopped.stdout)).toMatchObject({
      was_running: true,
      stopped: true,
      forced: false,
    });
    expect(daemonPids(root)).toEqual([]);
    expect(existsSync(started.socket_path)).toBe(false);
    expect(existsSync(join(root, '.charter/daemon/daemon.json'))).toBe(false);

    // The lifecycle is journaled and the log says how it ended.
    const log = readFileSync(join(root, '.charter/daemon/daemon.log'), 'utf8');
    expect(log).toContain('"msg":"journal: daemon.started"');
    expect(log).toContain('"msg":"journal: daemon.stopping"');
    expect(log).toContain('"msg":"journal: daemon.stopped"');
  });

  it('status when not running exits 3, in text and in JSON; stop when not running exits 0', async () => {
    const root = project();
    const text = await runCli(['status', '--project-path', root]);
    expect(text.code).toBe(3);
    expect(text.stdout).toContain('not running');
    const { code, json } = await statusJson(root);
    expect(code).toBe(3);
    expect(json).toMatchObject({ running: false, project_root: root });
    const stop = await runCli(['stop', '--project-path', root]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain('not running');
  });

  it('a second start while running says so, exits 0 and leaves one daemon', async () => {
    const root = project();
    const first = await startDaemon(root);
    const second = await runCli(['start', '--project-path', root]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`already running (pid ${first.pid})`);
    expect(daemonPids(root)).toEqual([first.pid]);
  });

  it('two concurrent starts (and a racing status) end with exactly one daemon', async () => {
    const root = project();
    const [a, b, status] = await Promise.all([
      runCli(['start', '--json', '--project-path', root]),
      runCli(['start', '--json', '--project-path', root]),
      runCli(['status', '--json', '--project-path', root]),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect([0, 3]).toContain(status.code);
    const pa = parseJson<StartJson>(a.stdout);
    const pb = parseJson<StartJson>(b.stdout);
    expect(pa.pid).toBe(pb.pid);
    expect([pa.already_running, pb.already_running].sort()).toEqual([false, true]);
    await waitUntil(() => daemonPids(root).length === 1, 5000, 'the losing daemon to exit');
    expect(daemonPids(root)).toEqual([pa.pid]);
  });

  it('after kill -9, start recovers the stale socket, runtime file and lock', async () => {
    const root = project();
    const first = await startDaemon(root);
    process.kill(first.pid, 'SIGKILL');
    await waitUntil(() => daemonPids(root).length === 0, 5000, 'the killed daemon to vanish');
    expect(existsSync(first.socket_path)).toBe(true); // left behind by the kill

    const notRunning = await runCli(['status', '--project-path', root]);
    expect(notRunning.code).toBe(3);

    const second = await startDaemon(root);
    expect(second.pid).not.toBe(first.pid);
    expect(second.already_running).toBe(false);
    const { json } = await statusJson(root);
    expect(json).toMatchObject({ running: true, pid: second.pid });
    const log = readFileSync(join(root, '.charter/daemon/daemon.log'), 'utf8');
    expect(log).toContain('cleaned up after a daemon that did not exit cleanly');
    expect(log).toMatch(/"previous_shutdown":"unclean"/);
  });

  it('works for a project path of 150+ characters (socket falls back to a short path)', async () => {
    const root = project({ minPathLength: 160 });
    expect(root.length).toBeGreaterThanOrEqual(150);
    const started = await startDaemon(root);
    expect(started.socket_path.startsWith(root)).toBe(false);
    expect(Buffer.byteLength(started.socket_path)).toBeLessThanOrEqual(100);
    expect(started.socket_path).toBe(daemonPaths(root).socketPath);
    const { code, json } = await statusJson(root);
    expect(code).toBe(0);
    expect(json).toMatchObject({ running: true, pid: started.pid, socket_path: started.socket_path });
    expect((await runCli(['stop', '--project-path', root])).code).toBe(0);
    expect(existsSync(started.socket_path)).toBe(false);
  });

  it('keeps its state private: socket 0600, state directory 0700, store and log 0600', async () => {
    const root = project();
    const started = await startDaemon(root);
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(statSync(started.socket_path).isSocket()).toBe(true);
    expect(mode(started.socket_path)).toBe(0o600);
    expect(mode(join(root, '.charter/daemon'))).toBe(0o700);
    for (const file of ['state.db', 'daemon.log', 'daemon.lock', 'daemon.json']) {
      expect(mode(join(root, '.charter/daemon', file)), file).toBe(0o600);
    }
  });

  it('outside a project: a clear error and exit 2', async () => {
    const root = project();
    const result = await runCli(['status', '--project-path', join(root, '.charter-missing')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('does not exist');
    expect(result.stderr).toContain('NOT_A_PROJECT');
    const noYml = await runCli(['start', '--project-path', '/']);
    expect(noYml.code).toBe(2);
    expect(noYml.stderr).toContain('has no charter.yml');
  });

  it('a broken charter.yml fails the start with the field named, and no daemon is left', async () => {
    const root = project({ charterYml: 'name: x\ndaemon:\n  log_level: loud\n' });
    const result = await runCli(['start', '--project-path', root]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('START_FAILED');
    expect(result.stderr).toContain('daemon.log_level');
    expect(daemonPids(root)).toEqual([]);
  });

  it('a bad --gateway value is refused before anything starts', async () => {
    const root = project();
    const result = await runCli(['start', '--project-path', root, '--gateway', 'ftp://nowhere']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--gateway');
    expect(daemonPids(root)).toEqual([]);
  });

  it('malformed and oversized input on the socket does not disturb the daemon', async () => {
    const root = project();
    const started = await startDaemon(root);
    const { connect } = await import('node:net');
    const garbage = connect(started.socket_path);
    garbage.on('error', () => undefined);
    await new Promise((r) => garbage.once('connect', r));
    garbage.write('this is not json\n{"id":1}\n{"id":2,"method":"status"}\n');
    const oversized = connect(started.socket_path);
    oversized.on('error', () => undefined);
    await new Promise((r) => oversized.once('connect', r));
    oversized.write(Buffer.alloc(2 * 1024 * 1024, 0x61));
    const silent = connect(started.socket_path);
    silent.on('error', () => undefined);

    const closed = new Promise<string>((resolve) => {
      let text = '';
      oversized.on('data', (d: Buffer) => {
        text += d.toString();
      });
      oversized.on('close', () => resolve(text));
    });
    expect(await closed).toContain('FRAME_TOO_LARGE');

    const { code, json } = await statusJson(root);
    expect(code).toBe(0);
    expect(json).toMatchObject({ running: true, pid: started.pid });
    garbage.destroy();
    silent.destroy();
  });

  it('a daemon that accepts but never answers: the CLI times out with a clear message', async () => {
    const root = project();
    const paths = daemonPaths(root);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
    // Reads (so it notices clients leaving) but never answers.
    const server: Server = createServer((socket) => socket.resume());
    await new Promise<void>((r) => server.listen(paths.socketPath, r));
    try {
      const result = await runCli(['status', '--project-path', root]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('DAEMON_NOT_ANSWERING');
      expect(result.stderr).toContain('did not answer');
      const start = await runCli(['start', '--project-path', root]);
      expect(start.code).toBe(1);
      expect(start.stderr).toContain('DAEMON_NOT_ANSWERING');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('a daemon of another version: a warning on stderr, clean JSON on stdout', async () => {
    const root = project();
    const paths = daemonPaths(root);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
    const server: Server = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const request = JSON.parse(line) as { id: number; method: string };
          const result =
            request.method === 'hello'
              ? { protocol: 1, daemon_version: '0.0.1-old', pid: 999_999 }
              : {
                  pid: 999_999,
                  version: '0.0.1-old',
                  state: 'serving',
                  started_at: new Date().toISOString(),
                  daemon_id: 'x',
                  project_root: root,
                  socket_path: paths.socketPath,
                  store_path: paths.storePath,
                  log_path: paths.logPath,
                  gateway: { state: 'offline', url: null, since: null, detail: null },
                  runs: {
                    queued: 0,
                    running: 0,
                    waiting: 0,
                    cancelling: 0,
                    succeeded: 0,
                    failed: 0,
                    cancelled: 0,
                  },
                  inspector: null,
                };
          socket.write(`${JSON.stringify({ id: request.id, ok: true, result })}\n`);
        }
      });
    });
    await new Promise<void>((r) => server.listen(paths.socketPath, r));
    try {
      const result = await runCli(['status', '--json', '--project-path', root]);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('0.0.1-old');
      expect(parseJson<StatusJson>(result.stdout)).toMatchObject({ running: true, version: '0.0.1-old' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('--foreground stays attached, logs JSON to a non-TTY stdout and stops gracefully on SIGTERM', async () => {
    const root = project();
    const child = spawn(process.execPath, [cliPath, 'start', '--foreground', '--project-path', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await waitUntil(
      () => stdout.includes('"msg":"daemon ready"'),
      10_000,
      'the foreground daemon to be ready',
    );
    const { json } = await statusJson(root);
    expect(json).toMatchObject({ running: true, pid: child.pid });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = stdout.trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(stdout).toContain('"msg":"journal: daemon.stopped"');
    expect(existsSync(join(root, '.charter/daemon/daemon.sock'))).toBe(false);
  });

  it('stop --force kills a daemon that does not stop in time', async () => {
    const root = project();
    const started = await startDaemon(root);
    // Freeze the daemon: it can neither drain nor answer.
    process.kill(started.pid, 'SIGSTOP');
    try {
      const result = await runCli(['stop', '--force', '--timeout', '1', '--json', '--project-path', root], {
        timeoutMs: 30_000,
      });
      expect(result.code).toBe(0);
      expect(parseJson<StopJson>(result.stdout)).toMatchObject({
        stopped: true,
        forced: true,
        pid: started.pid,
      });
      expect(daemonPids(root)).toEqual([]);
    } finally {
      try {
        process.kill(started.pid, 'SIGCONT');
      } catch {
        // killed, as expected
      }
    }
    // And a fresh start works after the kill.
    const again = await startDaemon(root);
    expect(again.pid).not.toBe(started.pid);
  });

  it('writes the log where status says, at the configured level', async () => {
    const root = project();
    writeFileSync(join(root, 'charter.yml'), 'name: logs\ndaemon:\n  log_level: debug\n');
    const started = await startDaemon(root);
    expect(started.log_path).toBe(join(root, '.charter/daemon/daemon.log'));
    await runCli(['status', '--project-path', root]);
    expect(readFileSync(started.log_path, 'utf8')).toContain('"level":20');
  });
});
