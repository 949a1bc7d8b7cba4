/**
 * The store over a year, end to end with the built CLI, real daemons, a real gateway peer and
 * real files: retention (`store prune`) keeps the policy's finished runs and every waiting run,
 * and never what a gateway has not acknowledged; an online backup restores; a damaged store is
 * refused with STORE_CORRUPT and recovered; a lost store of a known identity is refused.
 */
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import type { StatusJson } from '../../commands/status.js';
import { ControlConnection } from '../../src/client/connection.js';
import { GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import { daemonPaths } from '../../src/project/paths.js';
import type { PruneReportResult, RunCounts } from '../../src/protocol/control.js';
import type { RunsListResult } from '../../src/protocol/runs.js';
import type { RecoverReport } from '../../src/store/salvage.js';
import {
  assertBuilt,
  daemonPids,
  destroyProject,
  makeProject,
  parseJson,
  runCli,
  waitUntil,
} from '../support/cli.js';

const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => assertBuilt());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const TOKEN = 'tok-store-e2e';

/** A project with `chatty` (20 lines of output) and `gated` (a run step, then a gate). */
function project(charterYml = 'name: store-e2e\n'): string {
  const root = makeProject({ charterYml });
  cleanups.push(() => destroyProject(root));
  const workflow = (id: string, plan: string) => {
    const dir = join(root, 'workflows', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(dir, 'plan.yml'), plan);
  };
  workflow(
    'chatty',
    'steps:\n  - id: talk\n    run: for i in $(seq 20); do echo "line $i of a chatty step"; done\n',
  );
  workflow(
    'gated',
    'steps:\n  - id: first\n    run: echo before\n  - id: review\n    gate: { prompt: Ship it? }\n',
  );
  return root;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(args, { env, timeoutMs: 60_000 });
}

async function status(root: string): Promise<Extract<StatusJson, { running: true }>> {
  const result = await cli(['status', '--json', '--project-path', root]);
  const json = parseJson<StatusJson>(result.stdout);
  if (!json.running) throw new Error(`not running: ${result.stdout} ${result.stderr}`);
  return json;
}

/** Submits runs over one control connection (the CLI would spend seconds per hundred). */
async function submit(root: string, workflow: string, count: number): Promise<string[]> {
  const connection = await ControlConnection.open({
    socketPath: daemonPaths(root).socketPath,
    clientVersion: 'test',
  });
  try {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, () =>
          connection.request(
            'run.submit',
            { workflow_id: workflow, inputs: {} },
            z.object({ run_id: z.string() }),
            {
              timeoutMs: 30_000,
            },
          ),
        ),
      );
      ids.push(...batch.map((r) => r.run_id));
    }
    return ids;
  } finally {
    connection.close();
  }
}

async function waitForRuns(root: string, check: (runs: RunCounts) => boolean) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const current = await status(root);
    if (check(current.runs)) return current;
    if (Date.now() > deadline) throw new Error(`runs never settled: ${JSON.stringify(current.runs)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function listAll(root: string, state?: string): Promise<RunsListResult['runs']> {
  const args = ['runs', 'list', '--json', '--limit', '500', '--project-path', root];
  const result = await cli(state === undefined ? args : [...args, '--state', state]);
  expect(result.code, result.stderr).toBe(0);
  return parseJson<RunsListResult>(result.stdout).runs;
}

function storeBytes(root: string): number {
  const { storePath } = daemonPaths(root);
  const size = (path: string) => {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  };
  return size(storePath) + size(`${storePath}-wal`);
}

async function prune(root: string): Promise<PruneReportResult> {
  const result = await cli(['store', 'prune', '--json', '--project-path', root]);
  expect(result.code, result.stderr).toBe(0);
  return parseJson<PruneReportResult>(result.stdout);
}

describe('retention', () => {
  it('store prune keeps at most max_finished_runs of 400 chatty runs and every waiting run; the file shrinks; a waiting run can still be approved', async () => {
    const root = project(
      'name: store-e2e\ndaemon:\n  max_runs: 8\n  retention:\n    max_finished_runs: 100\n',
    );
    expect((await cli(['start', '--project-path', root])).code).toBe(0);
    const gated = await submit(root, 'gated', 3);
    await submit(root, 'chatty', 400);
    await waitForRuns(root, (runs) => runs.succeeded === 400 && runs.waiting === 3);
    const before = storeBytes(root);

    const report = await prune(root);

    expect(report).toMatchObject({ dry_run: false, runs: 300, kept_for_gateway: false });
    expect(report.events).toBeGreaterThanOrEqual(300 * 5);
    expect(storeBytes(root)).toBeLessThan(before);
    expect((await listAll(root, 'succeeded')).length).toBe(100);
    expect((await listAll(root, 'waiting')).map((run) => run.run_id).sort()).toEqual([...gated].sort());
    const current = await status(root);
    // Status counts every run the store has seen, and shows the store's size, policy and last prune.
    expect(current.runs.succeeded).toBe(400);
    expect(current.store).toMatchObject({
      policy: { max_finished_runs: 100, max_age_days: 30, max_store_mb: 1024 },
      last_prune: { runs: 300 },
      over_budget: false,
    });
    expect(current.store?.oldest_kept_run?.state).toBe('succeeded');

    const approve = await cli(['resume', gated[0] as string, '--approve', '--json', '--project-path', root]);
    expect(approve.code, approve.stderr).toBe(0);
    await waitForRuns(root, (runs) => runs.succeeded === 401 && runs.waiting === 2);
  }, 180_000);

  it('with a refusing gateway nothing it has not stored is pruned; once it accepts, it gets every event from seq 1 without a gap', async () => {
    const peer = await GatewayPeer.start({ token: TOKEN, hbMs: 500 });
    cleanups.push(() => peer.stop());
    peer.refuseUpgrades(503);
    const root = project(
      'name: store-e2e\ndaemon:\n  max_runs: 8\n  retention:\n    max_finished_runs: 100\n',
    );
    const started = await cli(['start', '--project-path', root, '--gateway', peer.url], {
      CHARTER_GATEWAY_TOKEN: TOKEN,
    });
    expect(started.code, started.stderr).toBe(0);
    await submit(root, 'gated', 3);
    await submit(root, 'chatty', 400);
    await waitForRuns(root, (runs) => runs.succeeded === 400 && runs.waiting === 3);

    const refused = await prune(root);
    expect(refused).toMatchObject({ runs: 0, kept_for_gateway: true });
    expect((await listAll(root, 'succeeded')).length).toBe(400);

    peer.clearRefusal();
    await waitUntil(() => peer.events.length > 0, 30_000, 'the gateway to receive events');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const current = await status(root);
      if (current.gateway.state === 'authed' && current.gateway.backlog === 0) break;
      if (Date.now() > deadline) throw new Error(`backlog never drained: ${JSON.stringify(current.gateway)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const seqs = peer.events.map((event) => event.seq);
    expect(seqs).toEqual(seqs.map((_, index) => index + 1));
    expect(peer.runSeqViolations()).toEqual([]);

    // Acknowledged now: retention applies.
    expect((await prune(root)).runs).toBe(300);
    expect((await listAll(root, 'succeeded')).length).toBe(100);
  }, 180_000);
});

describe('backup and restore', () => {
  it('a backup taken while the daemon runs restores into a daemon that lists the same runs', async () => {
    const root = project();
    expect((await cli(['start', '--project-path', root])).code).toBe(0);
    await submit(root, 'gated', 2);
    await submit(root, 'chatty', 30);
    await waitForRuns(root, (runs) => runs.succeeded === 30 && runs.waiting === 2);
    const listed = await listAll(root);
    const file = join(root, 'backup.db');

    const backup = await cli(['store', 'backup', file, '--json', '--project-path', root]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(parseJson<{ online: boolean; path: string }>(backup.stdout)).toMatchObject({
      online: true,
      path: file,
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Later runs are not in the copy.
    await submit(root, 'chatty', 5);
    await waitForRuns(root, (runs) => runs.succeeded === 35);

    // The documented restore: stop, copy into place (without the old WAL), start.
    expect((await cli(['stop', '--project-path', root])).code).toBe(0);
    const { storePath } = daemonPaths(root);
    rmSync(`${storePath}-wal`, { force: true });
    rmSync(`${storePath}-shm`, { force: true });
    copyFileSync(file, storePath);
    const restarted = await cli(['start', '--project-path', root]);
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(await listAll(root)).toEqual(listed);
  }, 120_000);
});

describe('store health', () => {
  it('16 KiB of garbage in the middle of state.db: start fails with STORE_CORRUPT and no daemon runs; store recover, then start works', async () => {
    const root = project();
    expect((await cli(['start', '--project-path', root])).code).toBe(0);
    await submit(root, 'chatty', 300);
    await waitForRuns(root, (runs) => runs.succeeded === 300);
    expect((await cli(['stop', '--project-path', root])).code).toBe(0);
    const { storePath } = daemonPaths(root);
    const offset = Math.floor(statSync(storePath).size / 2 / 4096) * 4096;
    const fd = openSync(storePath, 'r+');
    writeSync(fd, Buffer.alloc(16 * 1024, 0x5a), 0, 16 * 1024, offset);
    closeSync(fd);

    const refused = await cli(['start', '--json', '--project-path', root]);
    expect(refused.code).toBe(1);
    const error = parseJson<{ error: { code: string; message: string; hint: string } }>(refused.stdout).error;
    expect(error.code).toBe('STORE_CORRUPT');
    expect(error.message).toContain(storePath);
    expect(error.hint).toContain('charter-daemon store recover');
    expect(refused.stderr).not.toMatch(/ECONNRESET|EPIPE|SqliteError/);
    expect(daemonPids(root)).toEqual([]);
    const text = await cli(['start', '--project-path', root]);
    expect(text.stderr).toContain('STORE_CORRUPT');
    expect(text.stderr).not.toMatch(/ECONNRESET|EPIPE|at .*\.js:\d+/);
    expect((await cli(['store', 'check', '--project-path', root])).code).toBe(1);

    const recovered = await cli(['store', 'recover', '--json', '--project-path', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    const report = parseJson<RecoverReport>(recovered.stdout);
    expect(report.daemon_id_source).toBe('store');

    const started = await cli(['start', '--project-path', root]);
    expect(started.code, started.stderr).toBe(0);
    const current = await status(root);
    expect(current.daemon_id).toBe(report.daemon_id);
    expect((await listAll(root)).length).toBe(report.tables.runs.salvaged);
    expect((await cli(['store', 'check', '--full', '--project-path', root])).code).toBe(0);
    // While a daemon runs, recover refuses.
    const busy = await cli(['store', 'recover', '--json', '--project-path', root]);
    expect(parseJson<{ error: { code: string } }>(busy.stdout).error.code).toBe('STORE_IN_USE');
  }, 120_000);

  it('a deleted or emptied store of a known identity is refused; --fresh-store starts afresh with the same identity', async () => {
    const root = project();
    expect((await cli(['start', '--project-path', root])).code).toBe(0);
    await submit(root, 'chatty', 3);
    await waitForRuns(root, (runs) => runs.succeeded === 3);
    const daemonId = (await status(root)).daemon_id;
    expect((await cli(['stop', '--project-path', root])).code).toBe(0);
    const { storePath } = daemonPaths(root);

    rmSync(storePath);
    const deleted = await cli(['start', '--json', '--project-path', root]);
    expect(parseJson<{ error: { code: string } }>(deleted.stdout).error.code).toBe('STORE_MISSING');
    expect(daemonPids(root)).toEqual([]);

    writeFileSync(storePath, '');
    const emptied = await cli(['start', '--json', '--project-path', root]);
    expect(parseJson<{ error: { code: string; hint: string } }>(emptied.stdout).error).toMatchObject({
      code: 'STORE_MISSING',
      hint: expect.stringContaining('--fresh-store'),
    });

    const fresh = await cli(['start', '--fresh-store', '--project-path', root]);
    expect(fresh.code, fresh.stderr).toBe(0);
    const current = await status(root);
    expect(current.daemon_id).toBe(daemonId);
    expect(current.runs.succeeded).toBe(0);
  }, 60_000);
});

describe('upgrades', () => {
  it('restart drains, stops and starts again with the same flags; a run waiting at a gate survives', async () => {
    const root = project();
    expect(
      (await cli(['start', '--max-runs', '2', '--log-level', 'debug', '--project-path', root])).code,
    ).toBe(0);
    const [gated] = await submit(root, 'gated', 1);
    await waitForRuns(root, (runs) => runs.waiting === 1);
    const before = await status(root);

    const restarted = await cli(['restart', '--json', '--project-path', root]);
    expect(restarted.code, restarted.stderr).toBe(0);
    const result = parseJson<{ was_running: boolean; old_pid: number; pid: number }>(restarted.stdout);
    expect(result).toMatchObject({ was_running: true, old_pid: before.pid });
    expect(result.pid).not.toBe(before.pid);
    expect(daemonPids(root)).toEqual([result.pid]);
    const runtime = parseJson<{ launch: { maxRuns: number; logLevel: string } }>(
      readFileSync(daemonPaths(root).runtimeFile, 'utf8'),
    );
    expect(runtime.launch).toMatchObject({ maxRuns: 2, logLevel: 'debug', foreground: false });
    expect((await status(root)).daemon_id).toBe(before.daemon_id);
    expect((await listAll(root, 'waiting')).map((run) => run.run_id)).toEqual([gated]);
    const approve = await cli(['resume', gated as string, '--approve', '--project-path', root]);
    expect(approve.code, approve.stderr).toBe(0);
    await waitForRuns(root, (runs) => runs.succeeded === 1);
  }, 60_000);
});
