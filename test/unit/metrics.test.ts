/**
 * The metrics pieces on a real store: the address rules, the recorder's counting (through the
 * store's real append notification), the exposition text prom-client produces from it, and the
 * watch feed's messages.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createExposition, type MetricsSources } from '../../src/monitoring/exposition.js';
import { DaemonMetrics } from '../../src/monitoring/recorder.js';
import { WatchFeeds } from '../../src/monitoring/watch-feed.js';
import { isLoopbackHost, parseListenAddress } from '../../src/project/metrics-address.js';
import type { WatchUpdate } from '../../src/protocol/observe.js';
import { Store } from '../../src/store/store.js';

let dir: string;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cdm-unit-'));
  store = Store.open(join(dir, 'state.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const runId = (n: number) => `r${String(n).padStart(26, '0')}`;

function createRun(n: number, workflowId = 'build', at = new Date('2026-01-01T00:00:00Z')): string {
  const id = runId(n);
  store.runs.createRun(
    { runId: id, workflowId, inputs: {}, steps: [{ id: 'compile', kind: 'run' }], now: at },
    { type: 'run.queued', data: { workflow_id: workflowId } },
  );
  return id;
}

describe('metrics address', () => {
  it('reads HOST:PORT, [IPV6]:PORT and a bare port', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({
      ok: true,
      address: { host: '127.0.0.1', port: 9464 },
    });
    expect(parseListenAddress('[::1]:0')).toEqual({ ok: true, address: { host: '::1', port: 0 } });
    expect(parseListenAddress('9464')).toEqual({ ok: true, address: { host: '127.0.0.1', port: 9464 } });
    expect(parseListenAddress('::1:80').ok).toBe(false);
    expect(parseListenAddress(':80').ok).toBe(false);
    expect(parseListenAddress('host:http').ok).toBe(false);
  });

  it('knows loopback from the rest', () => {
    for (const host of ['127.0.0.1', '127.9.9.9', '::1', 'localhost', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '::ffff:10.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

describe('DaemonMetrics', () => {
  it('counts journal entries, run and step durations by workflow and outcome, and events per second', () => {
    let now = Date.parse('2026-01-01T00:00:10.500Z');
    const recorder = new DaemonMetrics(store, () => now);
    const id = createRun(1);
    store.runs.record(
      id,
      { state: 'running' },
      [{ type: 'step.started', data: { step_id: 'compile' } }],
      [{ idx: 0, state: 'running', startedAt: '2026-01-01T00:00:01.000Z' }],
    );
    store.runs.appendEvents(id, [
      { type: 'step.output', data: { step_id: 'compile', stream: 'stdout', text: 'x' } },
    ]);
    store.runs.record(
      id,
      { state: 'succeeded', finishedAt: '2026-01-01T00:00:04.000Z' },
      [
        { type: 'step.finished', data: { step_id: 'compile', outcome: 'succeeded' } },
        { type: 'run.succeeded', data: {} },
      ],
      [{ idx: 0, state: 'succeeded', finishedAt: '2026-01-01T00:00:03.000Z' }],
      new Date('2026-01-01T00:00:03.000Z'),
    );
    expect(recorder.eventsJournaled).toBe(5);
    expect(recorder.runDurations.series()).toEqual([
      expect.objectContaining({ labels: { workflow: 'build', outcome: 'succeeded' }, count: 1, sum: 3 }),
    ]);
    expect(recorder.stepDurations.series()).toEqual([
      expect.objectContaining({ labels: { workflow: 'build', outcome: 'succeeded' }, count: 1, sum: 2 }),
    ]);
    // The second that is still filling is not in the window; the next one shows all 5.
    expect(recorder.eventsPerSecond().at(-1)).toBe(0);
    now += 1000;
    const window = recorder.eventsPerSecond();
    expect(window).toHaveLength(60);
    expect(window.at(-1)).toBe(5);
    now += 61_000;
    expect(recorder.eventsPerSecond().every((n) => n === 0)).toBe(true);
    recorder.stop();
  });

  it('counts gateway commands by kind and status from their command.result entries', () => {
    const recorder = new DaemonMetrics(store);
    const frame = {
      op: 'command' as const,
      dseq: 1,
      cmd_id: 'c1',
      kind: 'run.cancel' as const,
      run_id: runId(1),
      args: {},
    };
    store.gateway.receiveCommand(frame);
    store.gateway.settleCommand('c1', { status: 'rejected', error: { code: 'UNKNOWN_RUN', message: 'no' } });
    store.gateway.receiveCommand({ ...frame, dseq: 2 });
    expect([...recorder.commands.values()]).toEqual([
      { kind: 'run.cancel', status: 'rejected', count: 1 },
      { kind: 'run.cancel', status: 'duplicate', count: 1 },
    ]);
  });
});

describe('exposition', () => {
  it('writes every family in the Prometheus text format, with bounded labels', async () => {
    const recorder = new DaemonMetrics(store);
    recorder.shipped(7);
    recorder.acked(5);
    recorder.connected('authed');
    recorder.runDurations.observe({ workflow: 'build', outcome: 'failed' }, 42);
    const sources: MetricsSources = {
      recorder,
      daemon: () => ({
        runs: { queued: 1, running: 2, waiting: 3, cancelling: 0, succeeded: 4, failed: 5, cancelled: 6 },
        queueDepth: 1,
        slotsInUse: 2,
        linkState: 'backoff',
      }),
      backlog: () => ({ count: 9, oldestTs: new Date(Date.now() - 60_000).toISOString() }),
      storeFiles: [join(dir, 'state.db')],
      logLinesDropped: () => 3,
      storeFault: () => ({ code: 'DISK_FULL' }),
    };
    const text = await createExposition(sources).text();
    expect(text).toContain('# TYPE charter_runs gauge\n');
    expect(text).toContain('charter_runs{state="waiting"} 3\n');
    expect(text).toContain('# TYPE charter_run_duration_seconds histogram\n');
    expect(text).toContain(
      'charter_run_duration_seconds_bucket{workflow="build",outcome="failed",le="30"} 0\n',
    );
    expect(text).toContain(
      'charter_run_duration_seconds_bucket{workflow="build",outcome="failed",le="60"} 1\n',
    );
    expect(text).toContain('charter_run_duration_seconds_count{workflow="build",outcome="failed"} 1\n');
    expect(text).toContain('charter_events_shipped_total 7\n');
    expect(text).toContain('charter_events_acked_total 5\n');
    expect(text).toContain('charter_gateway_connects_total{outcome="authed"} 1\n');
    expect(text).toContain('charter_gateway_link_state{state="backoff"} 1\n');
    expect(text).toContain('charter_gateway_link_state{state="authed"} 0\n');
    expect(text).toContain('charter_gateway_backlog_events 9\n');
    expect(text).toMatch(/charter_gateway_backlog_oldest_age_seconds (59|60)(\.\d+)?\n/);
    expect(text).toContain('charter_store_disk_full 1\n');
    expect(text).toContain('charter_store_write_failing 1\n');
    expect(text).toContain('charter_log_lines_dropped_total 3\n');
    expect(text).toContain('charter_queue_depth 1\n');
    expect(text).toContain('charter_run_slots_in_use 2\n');
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge\n');
  });
});

describe('WatchFeeds', () => {
  it('sends live runs in batches first, then only what changed, and stops when the watcher has gone', async () => {
    const recorder = new DaemonMetrics(store);
    for (let n = 1; n <= 501; n++) createRun(n);
    const done = createRun(600);
    store.runs.record(
      done,
      { state: 'failed', finishedAt: new Date().toISOString() },
      [{ type: 'run.failed' }],
      [],
    );
    const feeds = new WatchFeeds({ store, recorder, status: () => undefined, storeFault: () => null });
    const got: WatchUpdate[] = [];
    let open = true;
    const stop = feeds.open({ recent: 5 }, (update) => {
      got.push(update);
      return open;
    });
    expect(got.map((update) => [update.reset, update.runs.length])).toEqual([
      [true, 500],
      [false, 1],
    ]);
    expect(got[0]?.recent?.map((run) => run.run_id)).toEqual([done]);

    got.length = 0;
    store.runs.record(
      runId(7),
      { state: 'succeeded', finishedAt: new Date().toISOString() },
      [{ type: 'run.succeeded' }],
      [],
    );
    store.runs.record(runId(8), { state: 'waiting' }, [{ type: 'run.waiting' }], []);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const changes = got.filter((update) => update.runs.length > 0 || update.removed.length > 0);
    expect(changes).toHaveLength(1);
    expect(changes[0]?.removed).toEqual([runId(7)]);
    expect(changes[0]?.runs.map((run) => [run.run_id, run.state])).toEqual([[runId(8), 'waiting']]);
    expect(changes[0]?.recent?.map((run) => run.run_id)).toEqual([runId(7), done]);

    open = false;
    store.runs.record(runId(9), { state: 'waiting' }, [{ type: 'run.waiting' }], []);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const count = got.length;
    store.runs.record(runId(10), { state: 'waiting' }, [{ type: 'run.waiting' }], []);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(got.length).toBe(count);
    stop();
    feeds.stopAll();
  });
});

describe('examples/monitoring', () => {
  it('the alert rules and the dashboard only name families the daemon exposes', async () => {
    const { readFileSync } = await import('node:fs');
    const recorder = new DaemonMetrics(store);
    const sources: MetricsSources = {
      recorder,
      daemon: () => ({
        runs: { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 },
        queueDepth: 0,
        slotsInUse: 0,
        linkState: 'offline',
      }),
      backlog: () => ({ count: 0, oldestTs: null }),
      storeFiles: [],
      logLinesDropped: () => 0,
      storeFault: () => null,
    };
    const text = await createExposition(sources).text();
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]));
    for (const file of ['charter-alerts.yml', 'grafana-dashboard.json']) {
      const body = readFileSync(new URL(`../../examples/monitoring/${file}`, import.meta.url), 'utf8');
      const named = new Set(
        [...body.matchAll(/\b((?:charter|process|nodejs)_[a-z_]+)/g)].map((m) =>
          (m[1] ?? '').replace(/_(bucket|count|sum)$/, ''),
        ),
      );
      expect(named.size).toBeGreaterThan(3);
      for (const name of named) expect(families.has(name), `${file}: ${name}`).toBe(true);
    }
    recorder.stop();
  });
});
