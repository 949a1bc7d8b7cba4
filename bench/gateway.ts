/**
 * The gateway section of `npm run bench`: the real daemon streaming its store over charter.v1 to
 * a strict in-process gateway (src/gateway-server/gateway-peer.ts). Shipping rate against a plain
 * SQLite + ws script measured in the same run, reconnect after a gateway restart, event latency
 * at a steady 1,000 events/s, and the latency of small events while one run floods output.
 * See bench/README.md.
 *
 * The baseline sender lives in bench/baseline-sender.ts and runs as its own process, as the
 * daemon does.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as z from 'zod/mini';
import { ControlConnection } from '../src/client/connection.js';
import { errorMessage } from '../src/errors/error-message.js';
import { type FrameRecord, GatewayPeer } from '../src/gateway-server/gateway-peer.js';
import { type StatusResult, StatusResultSchema } from '../src/protocol/control.js';
import { CloseCode } from '../src/protocol/gateway.js';
import { RunAckSchema } from '../src/protocol/runs.js';
import { packageVersion } from '../src/version.js';
import { INSERT_BATCH, type SenderArgs } from './baseline-sender.js';
import { type Latency, latency, round1, summarize, timeNodeOk } from './measure.js';
import type { BenchHost, Goal } from './runs.js';

const TOKEN = 'bench-gateway-token';
/** Heartbeat interval the gateway announces (welcome.hb_ms). */
const HB_MS = 1000;
/** Credit window of every gateway: up_limit = stored max + CREDIT (the GatewayPeer default). */
const CREDIT = 1000;
/** A gate run denied at once: run.queued, run.started, run.waiting, gate.decided, run.failed. */
const EVENTS_PER_DENIED_RUN = 5;
/** A gate run left waiting: run.queued, run.started, run.waiting. */
const EVENTS_PER_PARKED_RUN = 3;
/** The stored backlog shipped in section 6: 10,000 denied runs = 50,000 events. */
const BACKLOG_RUNS = 10_000;
const SHIP_TRIALS = 5;
/** Section 7: events the daemon still has to send after the restart. */
const RECONNECT_BACKLOG = 10_000;
const RECONNECT_TRIALS = 5;
const LATENCY_EVENTS_PER_S = 1000;
const LATENCY_MS = 5000;
const FAIRNESS_EVERY_MS = 20;
const FAIRNESS_MS = 5000;
/** The flood run: this many steps, each printing this many bytes as fast as it can. */
const FLOOD_STEPS = 40;
/** Under the daemon's 16 MiB per step, so every byte becomes an event (~244 chunks of 64 KiB). */
const FLOOD_BYTES_PER_STEP = 16_000_000;
/** Requests in flight per control connection: the daemon refuses more than 32. */
const WINDOW = 32;
const CONTROL_CONNECTIONS = 2;

const GOAL_EVENTS_PER_S = 100_000;
const GOAL_VS_BASELINE = 0.5;
const GOAL_RECONNECT_MS = 1000;
const GOAL_LATENCY_P99_MS = 5;
const GOAL_FAIRNESS_P99_MS = 100;

/** The same host as the runs section, whose daemons may also take extra `start` arguments. */
export interface GatewayBenchHost extends Omit<BenchHost, 'startDaemon'> {
  startDaemon(project: string, extraArgs?: readonly string[]): Promise<number>;
}

export interface ShipSample {
  readonly who: 'daemon' | 'baseline';
  /** daemon: 'backlog' (built while the gateway refused it) or 'fresh gateway'; baseline: 'script'. */
  readonly how: string;
  readonly events: number;
  /** From the gateway's welcome until the last event arrived. */
  readonly ms: number;
  readonly events_per_s: number;
}

export interface ReconnectSample {
  readonly kind: 'drain' | 'crash';
  /** Events the daemon had not had acknowledged when the gateway went down. */
  readonly unacked: number;
  /** Of those, events it had not sent yet (the rest the gateway had stored, unacknowledged). */
  readonly to_replay: number;
  /** From `close(4013)` / `restart()` until the gateway sent welcome. */
  readonly welcome_ms: number;
  /** From welcome until the gateway stored the daemon's last seq. */
  readonly replay_ms: number;
  readonly total_ms: number;
  /** The waits the daemon planned before reconnecting (`status`: next_retry_at − since). */
  readonly planned_backoff_ms: number[];
}

export interface GatewayResults {
  readonly hb_ms: number;
  readonly credit: number;
  readonly shipping: {
    readonly events: number;
    readonly samples: ShipSample[];
    readonly daemon_events_per_s: number;
    readonly baseline_events_per_s: number;
    readonly ratio_daemon_vs_baseline: number;
    readonly baseline_insert_events_per_s: number;
    /** From the token file being rewritten until the refused daemon was welcomed. */
    readonly release_to_welcome_ms: number;
  };
  readonly reconnect: {
    readonly samples: ReconnectSample[];
    readonly drain_median_ms: number;
    readonly crash_median_ms: number;
  };
  readonly latency: {
    readonly target_events_per_s: number;
    readonly achieved_events_per_s: number;
    readonly runs: number;
    readonly ms: Latency;
  };
  readonly fairness: {
    readonly gate_runs: number;
    readonly flood_mb_per_s: number;
    readonly flood_events_per_s: number;
    readonly max_backlog: number;
    /** From the end of the window until the gateway had every event of the gate runs. */
    readonly caught_up_ms: number;
    readonly ms: Latency;
  };
  readonly integrity: {
    readonly protocol_errors: string[];
    readonly conflicting_duplicates: number;
    readonly duplicates: number;
    readonly run_seq_violations: number;
    readonly daemon_log: { readonly warnings: number; readonly errors: number; readonly messages: string[] };
  };
  readonly goals: Record<string, Goal>;
}

// ---- the gateway side ------------------------------------------------------------------------

/** Watches a GatewayPeer's frames: when welcome went out, when a target seq came in, arrivals. */
class Tap {
  /** performance.now() of the last welcome sent. */
  welcomeAt = Number.NaN;
  /** performance.now() when an events frame carrying `target` (or beyond) arrived. */
  doneAt = Number.NaN;
  #target = Number.POSITIVE_INFINITY;
  /** Date.now() when each seq first arrived (only while `recording`). */
  readonly arrivals = new Map<number, number>();
  recording = false;
  outputEvents = 0;
  outputBytes = 0;

  readonly onFrame = (record: FrameRecord): void => {
    const frame = record.frame;
    if (!isRecord(frame)) return;
    if (record.dir === 'out') {
      if (frame.op === 'welcome') this.welcomeAt = performance.now();
      return;
    }
    if (frame.op !== 'events' || !Array.isArray(frame.events)) return;
    let last = 0;
    for (const event of frame.events as unknown[]) {
      if (!isRecord(event) || typeof event.seq !== 'number') continue;
      last = event.seq;
      if (this.recording && !this.arrivals.has(event.seq)) this.arrivals.set(event.seq, record.at);
      if (event.type === 'step.output' && isRecord(event.data) && typeof event.data.text === 'string') {
        this.outputEvents += 1;
        this.outputBytes += event.data.text.length;
      }
    }
    if (Number.isNaN(this.doneAt) && last >= this.#target) this.doneAt = performance.now();
  };

  expect(target: number): void {
    this.#target = target;
    this.doneAt = Number.NaN;
  }
}

interface Gateway {
  readonly peer: GatewayPeer;
  readonly tap: Tap;
  readonly port: number;
}

/** Every gateway started and not yet stopped. */
const gateways = new Set<Gateway>();
/** Baseline senders running. */
const children = new Set<ChildProcess>();
/** Every gateway stopped in this run, for the integrity summary. */
const retired: GatewayPeer[] = [];

async function startGateway(port = 0): Promise<Gateway> {
  const tap = new Tap();
  const peer = await GatewayPeer.start({
    port,
    token: TOKEN,
    hbMs: HB_MS,
    initialCredit: CREDIT,
    onFrame: tap.onFrame,
  });
  const gateway = { peer, tap, port: Number(new URL(peer.url).port) };
  gateways.add(gateway);
  return gateway;
}

async function stopGateway(gateway: Gateway): Promise<void> {
  gateways.delete(gateway);
  retired.push(gateway.peer);
  await gateway.peer.stop();
}

/** Synchronous, for signal handlers: kills the baseline senders (gateways die with the process). */
export function killGatewayChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

// ---- the daemon side -------------------------------------------------------------------------

interface Daemon {
  readonly project: string;
  /** Open control connections (reopened by `restart`). */
  connections: ControlConnection[];
  /** Stops the daemon and starts it again (same project and flags), as a fresh process. */
  restart(): Promise<void>;
}

function status(daemon: Daemon): Promise<StatusResult> {
  const connection = daemon.connections[0];
  if (connection === undefined) throw new Error('no control connection');
  return connection.request('status', {}, StatusResultSchema);
}

async function backlog(daemon: Daemon): Promise<number> {
  const { gateway } = await status(daemon);
  if (gateway.backlog === undefined)
    throw new Error(`status reports no gateway backlog: ${JSON.stringify(gateway)}`);
  return gateway.backlog;
}

/** Runs `task(connection)` `count` times, WINDOW at once per control connection. */
async function spread(daemon: Daemon, count: number, task: (c: ControlConnection) => Promise<unknown>) {
  let next = 0;
  const worker = async (connection: ControlConnection): Promise<void> => {
    while (next < count) {
      next += 1;
      await task(connection);
    }
  };
  await Promise.all(daemon.connections.flatMap((c) => Array.from({ length: WINDOW }, () => worker(c))));
}

function submit(connection: ControlConnection, workflowId: string): Promise<{ run_id: string }> {
  return connection.request('run.submit', { workflow_id: workflowId, inputs: {} }, RunAckSchema, {
    timeoutMs: 60_000,
  });
}

/** `runs` gate runs, each denied at once: EVENTS_PER_DENIED_RUN events each, no run left waiting. */
function deniedRuns(daemon: Daemon, runs: number): Promise<void> {
  return spread(daemon, runs, async (connection) => {
    const { run_id } = await submit(connection, 'park');
    await connection.request('gate.decide', { run_id, decision: 'deny' }, z.unknown(), { timeoutMs: 60_000 });
  });
}

/** Polls until the daemon has nothing unacknowledged and the gateway has exactly its journal. */
async function caughtUp(daemon: Daemon, gateway: Gateway, timeoutMs = 60_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const current = await status(daemon);
    if (current.gateway.state === 'authed' && current.gateway.backlog === 0) return gateway.peer.storedMax();
    if (performance.now() > deadline)
      throw new Error(`the gateway link never caught up: ${JSON.stringify(current.gateway)}`);
    await sleep(10);
  }
}

// ---- 6. shipping rate ------------------------------------------------------------------------

async function waitShipped(gateway: Gateway, target: number, what: string): Promise<number> {
  await gateway.peer.waitFor(() => gateway.peer.storedMax() >= target, 120_000, what);
  const ms = gateway.tap.doneAt - gateway.tap.welcomeAt;
  if (!(ms > 0)) throw new Error(`${what}: no welcome/arrival timing (${ms})`);
  return ms;
}

function shipSample(who: ShipSample['who'], how: string, events: number, ms: number): ShipSample {
  return { who, how, events, ms: round1(ms), events_per_s: Math.round(events / (ms / 1000)) };
}

/** A fresh gateway (empty store) on the same port: the daemon resends its whole journal. */
async function freshGateway(old: Gateway): Promise<Gateway> {
  old.peer.close(CloseCode.draining, 'bench: a fresh gateway takes over');
  await stopGateway(old);
  return startGateway(old.port);
}

/** The baseline: a fresh SQLite file and a fresh gateway, the sender in its own process. */
async function baselineTrial(host: GatewayBenchHost, eventsFile: string, events: number) {
  const dir = host.makeProject('name: bench-baseline\n');
  const gateway = await startGateway();
  try {
    gateway.tap.expect(events);
    const args: SenderArgs = {
      db: join(dir, 'baseline.db'),
      events: eventsFile,
      url: gateway.peer.url,
      token: TOKEN,
    };
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./baseline-sender.js', import.meta.url)), JSON.stringify(args)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    children.delete(child);
    if (code !== 0) throw new Error(`baseline sender exited ${code}: ${stdout}${stderr}`);
    const ms = await waitShipped(gateway, events, 'the baseline to ship its backlog');
    const { insert_ms: insertMs } = JSON.parse(stdout) as { insert_ms: number };
    return { sample: shipSample('baseline', 'script', events, ms), insertMs };
  } finally {
    await stopGateway(gateway);
    host.removeProject(dir);
  }
}

// ---- 7. reconnect ----------------------------------------------------------------------------

/** Polls `status` until the gateway welcomed the daemon again; collects the waits it planned. */
async function plannedBackoffs(daemon: Daemon, gateway: Gateway, since: number): Promise<number[]> {
  const planned = new Map<string, number>();
  const deadline = since + 60_000;
  while (!(gateway.tap.welcomeAt > since) && performance.now() < deadline) {
    const { gateway: link } = await status(daemon);
    if (link.state === 'backoff' && link.since !== null && link.next_retry_at != null)
      planned.set(link.since, Date.parse(link.next_retry_at) - Date.parse(link.since));
    await sleep(2);
  }
  return [...planned.values()];
}

async function reconnectTrial(daemon: Daemon, gateway: Gateway, kind: ReconnectSample['kind']) {
  // A fresh daemon process: its backoff starts at attempt 0, as after 60 s of healthy link, and
  // not at the doubled ceiling the previous crash left (see bench/README.md).
  if (kind === 'crash') await daemon.restart();
  const start = await caughtUp(daemon, gateway);
  // No acks and so no new credit: the gateway stores up to the credit it granted, unacknowledged,
  // and the rest stays in the daemon's outbox.
  gateway.peer.stopAcking();
  await deniedRuns(daemon, (CREDIT + RECONNECT_BACKLOG) / EVENTS_PER_DENIED_RUN);
  await gateway.peer.waitFor(
    () => gateway.peer.storedMax() >= start + CREDIT,
    30_000,
    'the gateway to use up its credit',
  );
  const unacked = await backlog(daemon);
  const target = start + unacked;
  const toReplay = target - gateway.peer.storedMax();
  gateway.tap.expect(target);
  const t0 = performance.now();
  if (kind === 'drain') gateway.peer.close(CloseCode.draining, 'bench: draining for a restart');
  await gateway.peer.restart();
  gateway.peer.resumeAcking();
  const planned = await plannedBackoffs(daemon, gateway, t0);
  await waitShipped(gateway, target, `the replay after a ${kind} restart`);
  const { welcomeAt, doneAt } = gateway.tap;
  return {
    kind,
    unacked,
    to_replay: toReplay,
    welcome_ms: round1(welcomeAt - t0),
    replay_ms: round1(doneAt - welcomeAt),
    total_ms: round1(doneAt - t0),
    planned_backoff_ms: planned,
  } satisfies ReconnectSample;
}

// ---- 8–9. latency ----------------------------------------------------------------------------

/** Submits park runs at `perSecond` for `ms` (round-robin over the connections); returns their ids. */
async function paced(daemon: Daemon, perSecond: number, ms: number): Promise<string[]> {
  const ids: string[] = [];
  const pending: Promise<void>[] = [];
  let inFlight = 0;
  let submitted = 0;
  const started = performance.now();
  for (let now = started; now - started < ms; now = performance.now()) {
    const due = Math.floor(((now - started) / 1000) * perSecond);
    while (submitted < due && inFlight < WINDOW) {
      const connection = daemon.connections[submitted % daemon.connections.length];
      if (connection === undefined) throw new Error('no control connection');
      submitted += 1;
      inFlight += 1;
      pending.push(
        submit(connection, 'park').then(({ run_id }) => {
          inFlight -= 1;
          ids.push(run_id);
        }),
      );
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return ids;
}

/** For the events of `runIds` (of `types`, if given): gateway arrival − the event's `ts`, in ms. */
function arrivalDelays(gateway: Gateway, runIds: readonly string[], types?: readonly string[]): number[] {
  const wanted = new Set(runIds);
  const delays: number[] = [];
  for (const event of gateway.peer.events) {
    if (event.run_id === null || !wanted.has(event.run_id)) continue;
    if (types !== undefined && !types.includes(event.type)) continue;
    const at = gateway.tap.arrivals.get(event.seq);
    if (at !== undefined) delays.push(at - Date.parse(event.ts));
  }
  return delays;
}

async function waitForRunEvents(gateway: Gateway, runIds: readonly string[], what: string): Promise<void> {
  const waiting = new Set(runIds);
  let scanned = 0;
  await gateway.peer.waitFor(
    () => {
      const { events } = gateway.peer;
      for (; scanned < events.length; scanned++) {
        const event = events[scanned];
        if (event?.type === 'run.waiting' && event.run_id !== null) waiting.delete(event.run_id);
      }
      return waiting.size === 0;
    },
    120_000,
    what,
  );
}

// ---- the whole section -----------------------------------------------------------------------

function writeWorkflow(project: string, id: string, plan: string): void {
  const dir = join(project, 'workflows', id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.yml'), `id: ${id}\nname: ${id}\n`);
  writeFileSync(join(dir, 'plan.yml'), plan);
}

function daemonLog(project: string): GatewayResults['integrity']['daemon_log'] {
  const dir = join(project, '.charter/daemon');
  let warnings = 0;
  let errors = 0;
  const counts = new Map<string, number>();
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^daemon\.log/.test(f)) : [];
  for (const file of files) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (!isRecord(entry) || typeof entry.level !== 'number' || entry.level < 40) continue;
      if (entry.level >= 50) errors += 1;
      else warnings += 1;
      const code = entry.code === undefined ? '' : ` (code ${String(entry.code)})`;
      const text = `${entry.level >= 50 ? 'error' : 'warn'}: ${String(entry.msg)}${code}`;
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
  }
  const messages = [...counts].sort((a, b) => b[1] - a[1]).map(([text, n]) => `${n} × ${text}`);
  return { warnings, errors, messages };
}

export async function gatewayBench(host: GatewayBenchHost): Promise<GatewayResults> {
  const project = host.makeProject('name: bench-gateway\ndaemon: { max_queued_runs: 100000, max_runs: 4 }\n');
  writeWorkflow(project, 'park', 'steps: [{ id: hold, gate: { prompt: Hold } }]\n');
  const floodStep = (i: number) =>
    `  - { id: f${i}, run: "yes 'flood line' | head -c ${FLOOD_BYTES_PER_STEP}" }\n`;
  writeWorkflow(
    project,
    'flood',
    `steps:\n${Array.from({ length: FLOOD_STEPS }, (_, i) => floodStep(i)).join('')}`,
  );
  const tokenFile = join(project, 'gateway-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });

  // The first gateway refuses the daemon (401: it waits, retrying only at the 30 s cap or when
  // the token file changes), so the backlog builds up in the store with nothing in flight.
  const gateway = await startGateway();
  gateway.peer.refuseUpgrades(401);
  const flags = ['--gateway', gateway.peer.url, '--gateway-token-file', tokenFile];
  const connect = async (): Promise<ControlConnection[]> => {
    const statusArgs = [host.cli, 'status', '--json', '--project-path', project];
    const { socket_path: socketPath } = StatusResultSchema.parse(
      JSON.parse((await timeNodeOk(statusArgs, host.repoRoot)).stdout),
    );
    const opened: ControlConnection[] = [];
    for (let i = 0; i < CONTROL_CONNECTIONS; i++)
      opened.push(await ControlConnection.open({ socketPath, clientVersion: packageVersion }));
    return opened;
  };
  const daemon: Daemon = {
    project,
    connections: [],
    restart: async () => {
      for (const connection of daemon.connections.splice(0)) connection.close();
      await host.stopDaemon(project);
      await host.startDaemon(project, flags);
      daemon.connections = await connect();
    },
  };
  try {
    await host.startDaemon(project, flags);
    daemon.connections = await connect();
    try {
      return await measure(host, daemon, gateway, tokenFile);
    } catch (error) {
      const log = join(project, '.charter/daemon/daemon.log');
      const tail = existsSync(log)
        ? readFileSync(log, 'utf8').trimEnd().split('\n').slice(-20).join('\n')
        : '';
      throw new Error(`${errorMessage(error)}\nlast lines of ${log}:\n${tail}`);
    }
  } finally {
    for (const connection of daemon.connections) connection.close();
    await host.stopDaemon(project);
    killGatewayChildren();
    for (const open of [...gateways]) await stopGateway(open);
    host.removeProject(project);
  }
}

async function measure(
  host: GatewayBenchHost,
  daemon: Daemon,
  first: Gateway,
  tokenFile: string,
): Promise<GatewayResults> {
  // The daemon's gateway: every switch to a fresh one stops the previous one.
  let gateway = first;

  // 6. The stored backlog, shipped.
  await deniedRuns(daemon, BACKLOG_RUNS);
  const events = await backlog(daemon); // nothing was ever acked: the backlog is the whole journal
  const link = (await status(daemon)).gateway;
  if (link.state !== 'rejected')
    throw new Error(`expected the refused link to wait, got ${JSON.stringify(link)}`);
  gateway.tap.expect(events);
  gateway.peer.clearRefusal();
  const released = performance.now();
  writeFileSync(tokenFile, `${TOKEN}\n\n`); // a changed file: the daemon reconnects at once
  const samples: ShipSample[] = [];
  samples.push(shipSample('daemon', 'backlog', events, await waitShipped(gateway, events, 'the backlog')));
  const releaseToWelcome = round1(gateway.tap.welcomeAt - released);
  const eventsFile = join(daemon.project, 'baseline-events.jsonl');
  writeFileSync(
    eventsFile,
    `${gateway.peer.events
      .slice(0, events)
      .map((e) => JSON.stringify(e))
      .join('\n')}\n`,
  );
  const inserts: number[] = [];
  for (let trial = 0; trial < SHIP_TRIALS; trial++) {
    const baseline = await baselineTrial(host, eventsFile, events);
    samples.push(baseline.sample);
    inserts.push(baseline.insertMs);
    if (trial === SHIP_TRIALS - 1) break;
    gateway = await freshGateway(gateway);
    gateway.tap.expect(events);
    samples.push(
      shipSample('daemon', 'fresh gateway', events, await waitShipped(gateway, events, 'the journal')),
    );
  }
  const median = (who: ShipSample['who']) =>
    Math.round(summarize(samples.filter((s) => s.who === who).map((s) => s.events_per_s)).median);
  const daemonRate = median('daemon');
  const baselineRate = median('baseline');

  // 7. Reconnect: drains first (they do not count as failures), then crashes.
  const reconnects: ReconnectSample[] = [];
  for (const kind of ['drain', 'crash'] as const)
    for (let trial = 0; trial < RECONNECT_TRIALS; trial++)
      reconnects.push(await reconnectTrial(daemon, gateway, kind));
  const totalMedian = (kind: ReconnectSample['kind']) =>
    round1(summarize(reconnects.filter((s) => s.kind === kind).map((s) => s.total_ms)).median);

  // 8. Latency at a steady 1,000 events/s.
  await caughtUp(daemon, gateway);
  gateway.tap.recording = true;
  const latencyRuns = await paced(daemon, LATENCY_EVENTS_PER_S / EVENTS_PER_PARKED_RUN, LATENCY_MS);
  await waitForRunEvents(gateway, latencyRuns, 'the latency runs at the gateway');
  const latencyMs = latency(arrivalDelays(gateway, latencyRuns));

  // 9. Fairness: gate runs every 20 ms while one run floods output.
  await caughtUp(daemon, gateway);
  const primary = daemon.connections[0];
  if (primary === undefined) throw new Error('no control connection');
  const flood = await submit(primary, 'flood');
  await gateway.peer.waitFor(() => gateway.tap.outputEvents > 0, 30_000, 'the flood to reach the gateway');
  const bytesBefore = gateway.tap.outputBytes;
  const eventsBefore = gateway.tap.outputEvents;
  const windowStart = performance.now();
  let maxBacklog = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxBacklog = Math.max(maxBacklog, await backlog(daemon));
      await sleep(250);
    }
  })();
  const gateRuns = await paced(daemon, 1000 / FAIRNESS_EVERY_MS, FAIRNESS_MS);
  const windowS = (performance.now() - windowStart) / 1000;
  const floodBytes = gateway.tap.outputBytes - bytesBefore;
  const floodEvents = gateway.tap.outputEvents - eventsBefore;
  sampling = false;
  await sampler;
  const windowEnd = performance.now();
  await waitForRunEvents(gateway, gateRuns, 'the gate runs behind the flood');
  const caughtUpMs = round1(performance.now() - windowEnd);
  await primary.request('run.cancel', { run_id: flood.run_id, reason: 'bench over' }, z.unknown());
  const fairnessMs = latency(arrivalDelays(gateway, gateRuns, ['run.waiting']));
  await caughtUp(daemon, gateway, 120_000);
  gateway.tap.recording = false;

  const peers = [...retired, ...[...gateways].map((g) => g.peer)];
  const integrity = {
    protocol_errors: peers.flatMap((p) => p.protocolErrors),
    conflicting_duplicates: peers.reduce((n, p) => n + p.conflictingDuplicates().length, 0),
    duplicates: peers.reduce((n, p) => n + p.duplicatesSeen(), 0),
    run_seq_violations: peers.reduce((n, p) => n + p.runSeqViolations().length, 0),
    daemon_log: daemonLog(daemon.project),
  };

  const ratio = Math.round((daemonRate / baselineRate) * 100) / 100;
  const drainMedian = totalMedian('drain');
  const crashMedian = totalMedian('crash');
  return {
    hb_ms: HB_MS,
    credit: CREDIT,
    shipping: {
      events,
      samples,
      daemon_events_per_s: daemonRate,
      baseline_events_per_s: baselineRate,
      ratio_daemon_vs_baseline: ratio,
      baseline_insert_events_per_s: Math.round(events / (summarize(inserts).median / 1000)),
      release_to_welcome_ms: releaseToWelcome,
    },
    reconnect: { samples: reconnects, drain_median_ms: drainMedian, crash_median_ms: crashMedian },
    latency: {
      target_events_per_s: LATENCY_EVENTS_PER_S,
      achieved_events_per_s: Math.round((latencyRuns.length * EVENTS_PER_PARKED_RUN) / (LATENCY_MS / 1000)),
      runs: latencyRuns.length,
      ms: latencyMs,
    },
    fairness: {
      gate_runs: gateRuns.length,
      flood_mb_per_s: round1(floodBytes / 1e6 / windowS),
      flood_events_per_s: Math.round(floodEvents / windowS),
      max_backlog: maxBacklog,
      caught_up_ms: caughtUpMs,
      ms: fairnessMs,
    },
    integrity,
    goals: {
      gateway_events_per_s: {
        goal: `>= ${GOAL_EVENTS_PER_S} events/s`,
        value: daemonRate,
        met: daemonRate >= GOAL_EVENTS_PER_S,
      },
      gateway_vs_baseline: { goal: `>= ${GOAL_VS_BASELINE}`, value: ratio, met: ratio >= GOAL_VS_BASELINE },
      gateway_reconnect_drain_ms: {
        goal: `< ${GOAL_RECONNECT_MS} ms`,
        value: drainMedian,
        met: drainMedian < GOAL_RECONNECT_MS,
      },
      gateway_reconnect_crash_ms: {
        goal: `< ${GOAL_RECONNECT_MS} ms`,
        value: crashMedian,
        met: crashMedian < GOAL_RECONNECT_MS,
      },
      gateway_latency_p99_ms: {
        goal: `< ${GOAL_LATENCY_P99_MS} ms`,
        value: latencyMs.p99,
        met: latencyMs.p99 < GOAL_LATENCY_P99_MS,
      },
      gateway_fairness_p99_ms: {
        goal: `<= ${GOAL_FAIRNESS_P99_MS} ms`,
        value: fairnessMs.p99,
        met: fairnessMs.p99 <= GOAL_FAIRNESS_P99_MS,
      },
    },
  };
}

// ---- printing --------------------------------------------------------------------------------

export function printGateway(results: GatewayResults, verdict: (met: boolean) => string): void {
  const { shipping, reconnect, goals } = results;
  const check = (goal: Goal | undefined): string => (goal ? `goal ${goal.goal}  ${verdict(goal.met)}` : '');
  const num = (value: number, width = 8, digits = 1): string => value.toFixed(digits).padStart(width);
  console.log(
    `\n6. Gateway: a stored backlog of ${shipping.events} events shipped over charter.v1 to an in-process ` +
      `GatewayPeer (credit ${results.credit}, hb ${results.hb_ms} ms)`,
  );
  console.log(
    `  ${'welcome → last event at the gateway'.padEnd(34)}${'ms'.padStart(8)}${'events/s'.padStart(10)}`,
  );
  const label = (s: ShipSample): string =>
    s.who === 'baseline'
      ? 'baseline: SQLite + ws script'
      : s.how === 'backlog'
        ? 'daemon, backlog built while refused'
        : 'daemon, to a fresh gateway';
  for (const s of shipping.samples)
    console.log(`  ${label(s).padEnd(34)}${num(s.ms)}${String(s.events_per_s).padStart(10)}`);
  console.log(
    `  ${'daemon, median'.padEnd(34)}${''.padStart(8)}${String(shipping.daemon_events_per_s).padStart(10)}  ${check(goals.gateway_events_per_s)}`,
  );
  console.log(
    `  ${'baseline, median'.padEnd(34)}${''.padStart(8)}${String(shipping.baseline_events_per_s).padStart(10)}`,
  );
  console.log(
    `  ${'daemon / baseline (median)'.padEnd(34)}${num(shipping.ratio_daemon_vs_baseline, 8, 2)}  ${check(goals.gateway_vs_baseline)}`,
  );
  console.log(
    `  baseline insert, ${INSERT_BATCH} per transaction: ${shipping.baseline_insert_events_per_s} events/s; ` +
      `refused daemon welcomed ${shipping.release_to_welcome_ms} ms after its token file changed  informational`,
  );

  const first = reconnect.samples[0];
  console.log(
    `\n7. Gateway restart with ${first?.unacked ?? '?'} unacknowledged events ` +
      `(${first?.to_replay ?? '?'} not yet sent), N=${RECONNECT_TRIALS} each`,
  );
  console.log(
    `  ${'ms from close/restart'.padEnd(34)}${'welcome'.padStart(8)}${'replay'.padStart(8)}${'total'.padStart(8)}  planned backoff`,
  );
  for (const s of reconnect.samples) {
    const name = s.kind === 'drain' ? 'drain: close(4013), restart' : 'crash: restart (1006)';
    console.log(
      `  ${name.padEnd(34)}${num(s.welcome_ms)}${num(s.replay_ms)}${num(s.total_ms)}  ${s.planned_backoff_ms.join(' + ') || '–'}`,
    );
  }
  console.log(
    `  ${'drain, median total'.padEnd(34)}${''.padStart(16)}${num(reconnect.drain_median_ms)}  ${check(goals.gateway_reconnect_drain_ms)}`,
  );
  console.log(
    `  ${'crash, median total'.padEnd(34)}${''.padStart(16)}${num(reconnect.crash_median_ms)}  ${check(goals.gateway_reconnect_crash_ms)}`,
  );
  console.log(
    '  crash: the daemon is restarted before each, so its full-jitter backoff starts at attempt 0 (≤ 0.5 s); ' +
      'see section 10 for restarts in a row',
  );

  const row = (name: string, l: Latency, goal: Goal | undefined): string =>
    `  ${name.padEnd(34)}${String(l.n).padStart(8)}${num(l.median)}${num(l.p99)}${num(l.max)}  ${check(goal)}`;
  const head = `  ${'ms (1 ms clock), ts → arrival'.padEnd(34)}${'n'.padStart(8)}${'median'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}`;
  const { latency: lat, fairness: fair } = results;
  console.log(
    `\n8. Event latency at ${lat.target_events_per_s} events/s (${lat.runs} gate runs, ${lat.achieved_events_per_s} events/s achieved, ${LATENCY_MS / 1000} s)`,
  );
  console.log(head);
  console.log(row('every event of those runs', lat.ms, goals.gateway_latency_p99_ms));
  console.log(
    `\n9. Fairness: a gate run every ${FAIRNESS_EVERY_MS} ms while one run floods output (${FAIRNESS_MS / 1000} s)`,
  );
  console.log(head);
  console.log(row('run.waiting of the gate runs', fair.ms, goals.gateway_fairness_p99_ms));
  console.log(
    `  flood at the gateway: ${fair.flood_mb_per_s} MB/s, ${fair.flood_events_per_s} events/s; ` +
      `daemon backlog up to ${fair.max_backlog} events; all gate runs in ${fair.caught_up_ms} ms after the window  informational`,
  );
  const { integrity } = results;
  const log = integrity.daemon_log;
  console.log(
    `  integrity: ${integrity.protocol_errors.length} protocol errors, ${integrity.conflicting_duplicates} conflicting ` +
      `duplicates, ${integrity.duplicates} events resent, ${integrity.run_seq_violations} run_seq violations; ` +
      `daemon log: ${log.warnings} warnings, ${log.errors} errors`,
  );
  for (const message of [...integrity.protocol_errors.slice(0, 5), ...log.messages.slice(0, 8)])
    console.log(`    ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
