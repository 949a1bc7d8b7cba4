/**
 * Metrics and health against real daemons started by the built CLI: `start --metrics`, a real
 * HTTP scrape, real runs, `charter-daemon metrics` over the socket, and the listening sockets the
 * daemon process really holds (read from /proc), with and without the flag.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StartJson } from '../../commands/start.js';
import type { StatusJson } from '../../commands/status.js';
import { assertBuilt, cliPath, destroyProject, makeProject, parseJson, runCli } from '../support/cli.js';

const projects: string[] = [];

beforeAll(() => assertBuilt());
afterEach(() => {
  for (const root of projects.splice(0)) destroyProject(root);
});

/** A project with a one-step workflow `quick` and a long one `slow`. */
function project(charterYml = 'name: metrics-e2e\n'): string {
  const root = realpathSync(makeProject({ charterYml }));
  projects.push(root);
  for (const [id, run] of [
    ['quick', 'echo quick'],
    ['slow', 'sleep 600'],
  ] as const) {
    mkdirSync(join(root, 'workflows', id), { recursive: true });
    writeFileSync(join(root, 'workflows', id, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
    writeFileSync(join(root, 'workflows', id, 'plan.yml'), `steps:\n  - id: only\n    run: ${run}\n`);
  }
  return root;
}

async function start(root: string, extra: readonly string[] = []): Promise<StartJson> {
  const result = await runCli(['start', '--json', '--project-path', root, ...extra]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return parseJson<StartJson>(result.stdout);
}

async function status(root: string): Promise<StatusJson & { running: true }> {
  const result = await runCli(['status', '--json', '--project-path', root]);
  expect(result.code).toBe(0);
  return parseJson<StatusJson & { running: true }>(result.stdout);
}

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const response = await fetch(url);
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
}

/** The value of one sample (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** TCP sockets in LISTEN state held by `pid`, as "address:port" (IPv4 dotted, IPv6 hex). */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, , state] = [fields[1] ?? '', fields[2], fields[3]];
      if (state !== '0A' || !inodes.has(fields[9] ?? '')) continue;
      const [hexAddress = '', hexPort = ''] = local.split(':');
      const address =
        hexAddress.length === 8
          ? (hexAddress.match(/../g) ?? [])
              .reverse()
              .map((byte) => Number.parseInt(byte, 16))
              .join('.')
          : hexAddress;
      found.push(`${address}:${Number.parseInt(hexPort, 16)}`);
    }
  }
  return found;
}

const FAMILIES = [
  'charter_runs',
  'charter_run_duration_seconds',
  'charter_step_duration_seconds',
  'charter_queue_depth',
  'charter_run_slots_in_use',
  'charter_events_total',
  'charter_events_shipped_total',
  'charter_events_acked_total',
  'charter_gateway_backlog_events',
  'charter_gateway_backlog_oldest_age_seconds',
  'charter_gateway_link_state',
  'charter_gateway_connects_total',
  'charter_commands_total',
  'charter_store_size_bytes',
  'charter_store_write_failing',
  'charter_store_disk_full',
  'charter_log_lines_dropped_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  'nodejs_gc_duration_seconds',
];

describe('metrics and health', () => {
  it('start --metrics 127.0.0.1:0 serves /metrics and /healthz on loopback only, counting real runs', async () => {
    const root = project();
    const started = await start(root, ['--metrics', '127.0.0.1:0']);
    expect(started.metrics_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const url = started.metrics_url as string;
    expect((await status(root)).metrics).toEqual({ url });
    expect(listeningSockets(started.pid)).toEqual([`127.0.0.1:${new URL(url).port}`]);

    const before = await scrape(url);
    expect(before.status).toBe(200);
    expect(before.type).toContain('text/plain; version=0.0.4');
    const eventsBefore = sample(before.text, 'charter_events_total') ?? Number.NaN;
    expect(eventsBefore).toBeGreaterThan(0);

    for (let i = 0; i < 5; i++) {
      const submitted = await runCli(['run', 'quick', '--wait', '--project-path', root]);
      expect(submitted.code).toBe(0);
    }
    const after = await scrape(url);
    expect(sample(after.text, 'charter_runs{state="succeeded"}')).toBe(5);
    expect(sample(after.text, 'charter_runs{state="waiting"}')).toBe(0);
    expect(
      sample(after.text, 'charter_run_duration_seconds_count{workflow="quick",outcome="succeeded"}'),
    ).toBe(5);
    expect(
      sample(
        after.text,
        'charter_run_duration_seconds_bucket{workflow="quick",outcome="succeeded",le="+Inf"}',
      ),
    ).toBe(5);
    expect(
      sample(after.text, 'charter_step_duration_seconds_count{workflow="quick",outcome="succeeded"}'),
    ).toBe(5);
    expect(sample(after.text, 'charter_events_total')).toBeGreaterThan(eventsBefore);
    expect(sample(after.text, 'charter_gateway_link_state{state="offline"}')).toBe(1);
    expect(sample(after.text, 'charter_gateway_link_state{state="authed"}')).toBe(0);
    expect(sample(after.text, 'charter_gateway_backlog_events')).toBeGreaterThan(0);
    expect(sample(after.text, 'charter_store_size_bytes')).toBeGreaterThan(0);
    expect(sample(after.text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // Bounded labels: no run id anywhere in the exposition.
    expect(after.text).not.toMatch(/r[0-9A-HJKMNP-TV-Z]{26}/);

    const health = await scrape(url.replace(/\/metrics$/, '/healthz'));
    expect(health).toMatchObject({ status: 200, text: 'ok\n' });
    expect((await scrape(url.replace(/\/metrics$/, '/nope'))).status).toBe(404);

    const overSocket = await runCli(['metrics', '--project-path', root]);
    expect(overSocket.code).toBe(0);
    for (const family of FAMILIES) expect(overSocket.stdout).toContain(`# TYPE ${family} `);
    expect(sample(overSocket.stdout, 'charter_runs{state="succeeded"}')).toBe(5);
  });

  it('opens no port without --metrics, yet `charter-daemon metrics` answers over the socket', async () => {
    const root = project();
    const started = await start(root);
    expect(started.metrics_url).toBeNull();
    expect(listeningSockets(started.pid)).toEqual([]);
    expect((await status(root)).metrics).toBeNull();
    const submitted = await runCli(['run', 'quick', '--wait', '--project-path', root]);
    expect(submitted.code).toBe(0);
    const overSocket = await runCli(['metrics', '--project-path', root]);
    expect(overSocket.code).toBe(0);
    // Counted from the start even though nobody had asked for metrics before.
    expect(
      sample(overSocket.stdout, 'charter_run_duration_seconds_count{workflow="quick",outcome="succeeded"}'),
    ).toBe(1);
    expect(listeningSockets(started.pid)).toEqual([]);
  });

  it('daemon.metrics.listen in charter.yml turns the endpoint on', async () => {
    const root = project('name: m\ndaemon:\n  metrics:\n    listen: "127.0.0.1:0"\n');
    const started = await start(root);
    expect(started.metrics_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await scrape(started.metrics_url as string)).status).toBe(200);
  });

  it('refuses a non-loopback address unless --metrics-allow-remote is given', async () => {
    const root = project();
    const refused = await runCli(['start', '--project-path', root, '--metrics', '0.0.0.0:0']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('INVALID_FLAG');
    expect(refused.stderr).toContain('--metrics-allow-remote');
    expect((await runCli(['status', '--project-path', root])).code).toBe(3);

    const fromConfig = project('name: m\ndaemon:\n  metrics:\n    listen: "0.0.0.0:0"\n');
    const failed = await runCli(['start', '--project-path', fromConfig]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('not a loopback address');

    const allowed = await start(root, ['--metrics', '0.0.0.0:0', '--metrics-allow-remote']);
    const port = new URL(allowed.metrics_url as string).port;
    expect(listeningSockets(allowed.pid)).toEqual([`0.0.0.0:${port}`]);
  });

  it('a metrics port already in use fails the start with METRICS_LISTEN_FAILED', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as { port: number }).port;
      const root = project();
      const failed = await runCli(['start', '--project-path', root, '--metrics', `127.0.0.1:${port}`]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('START_FAILED');
      expect(failed.stderr).toContain(`cannot listen on 127.0.0.1:${port} for metrics: EADDRINUSE`);
      expect((await runCli(['status', '--project-path', root])).code).toBe(3);
    } finally {
      blocker.close();
    }
  });

  it('/healthz answers 503 while the daemon drains', async () => {
    const root = project('name: m\ndaemon:\n  drain_timeout_seconds: 20\n');
    const started = await start(root, ['--metrics', '127.0.0.1:0']);
    const healthz = (started.metrics_url as string).replace(/\/metrics$/, '/healthz');
    const submitted = await runCli(['run', 'slow', '--project-path', root]);
    expect(submitted.code).toBe(0);
    // The slow step holds the drain open; stop waits for it, so run it in the background.
    const stop = spawn(process.execPath, [cliPath, 'stop', '--project-path', root], { stdio: 'ignore' });
    let draining: { status: number; text: string } | undefined;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const answer = await scrape(healthz).catch(() => undefined);
      if (answer !== undefined && answer.status === 503) {
        draining = answer;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    stop.kill('SIGKILL');
    expect(draining?.text).toBe('draining: the daemon is stopping\n');
  });
});
