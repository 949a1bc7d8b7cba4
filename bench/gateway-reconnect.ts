/**
 * Section 10 of `npm run bench` (alone: `npm run bench -- --only reconnect`): the gateway link's
 * reconnect policy against real daemons. A rolling deploy (10 gateway restarts within a minute,
 * each with a downtime): time from the gateway listening again until the daemon's link is
 * `authed`. A flapping gateway (every connection accepted and dropped at once, before or right
 * after `welcome`): connection attempts per minute. Every gateway is a GatewayPeer in the bench
 * process, one per daemon. See bench/README.md.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ControlConnection } from '../src/client/connection.js';
import { type DropPoint, GatewayPeer } from '../src/gateway-server/gateway-peer.js';
import { type StatusResult, StatusResultSchema } from '../src/protocol/control.js';
import { packageVersion } from '../src/version.js';
import type { GatewayBenchHost } from './gateway.js';
import { type Latency, latency, round1, timeNodeOk } from './measure.js';
import type { Goal } from './runs.js';

const TOKEN = 'bench-reconnect-token';
const HB_MS = 1000;
/** Daemon + gateway pairs restarted in parallel: 3 × 10 samples. */
const RESTART_PAIRS = 3;
const RESTARTS = 10;
/** One restart every 6 s: 10 within a minute (the last at 54 s). */
const RESTART_EVERY_MS = 6000;
/** How long each restart keeps the port closed, cycled (shifted by one per pair). */
const DOWNTIMES_MS = [250, 500, 1000, 1500, 2000] as const;
/** The link is healthy this long before the first restart (the daemon's proof is 2 s). */
const SETTLE_MS = 3000;
/** Flapping gateways are watched this long from the daemon's first attempt. */
const FLAP_MINUTES = 3;
const STATUS_POLL_MS = 10;

const GOAL_RESTART_P99_MS = 2000;
const GOAL_FLAP_PER_MINUTE = 6;

export interface RestartSample {
  readonly pair: number;
  readonly restart: number;
  readonly down_ms: number;
  /** From the gateway listening again until the daemon's link entered `authed` (its `since`). */
  readonly ms: number;
}

export interface FlapResult {
  /** Where the gateway dropped each connection: right after the upgrade, or after `welcome`. */
  readonly drop_at: DropPoint;
  /** Connection attempts (upgrades) in each minute since the daemon's first attempt. */
  readonly per_minute: number[];
  /** Mean time between attempts after the first minute, in seconds. */
  readonly mean_interval_s: number;
}

export interface ReconnectPolicyResults {
  readonly restarts: {
    readonly pairs: number;
    readonly per_pair: number;
    readonly every_ms: number;
    readonly downtimes_ms: readonly number[];
    /** From the first to the last restart of a pair, the longest. */
    readonly span_ms: number;
    readonly samples: RestartSample[];
    readonly ms: Latency;
  };
  readonly flapping: FlapResult[];
  readonly goals: Record<string, Goal>;
}

interface Pair {
  readonly project: string;
  readonly peer: GatewayPeer;
  readonly control: ControlConnection;
}

/** A daemon in a fresh project linked to its own gateway, with one control connection. */
async function startPair(host: GatewayBenchHost, name: string, dropAt?: DropPoint): Promise<Pair> {
  const project = host.makeProject(`name: ${name}\n`);
  const tokenFile = join(project, 'gateway-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const peer = await GatewayPeer.start({ token: TOKEN, hbMs: HB_MS });
  if (dropAt !== undefined) peer.dropConnections(dropAt);
  await host.startDaemon(project, ['--gateway', peer.url, '--gateway-token-file', tokenFile]);
  const { stdout } = await timeNodeOk(
    [host.cli, 'status', '--json', '--project-path', project],
    host.repoRoot,
  );
  const { socket_path: socketPath } = StatusResultSchema.parse(JSON.parse(stdout));
  const control = await ControlConnection.open({ socketPath, clientVersion: packageVersion });
  return { project, peer, control };
}

async function stopPair(host: GatewayBenchHost, pair: Pair): Promise<void> {
  pair.control.close();
  await host.stopDaemon(pair.project);
  await pair.peer.stop();
  host.removeProject(pair.project);
}

async function link(pair: Pair): Promise<StatusResult['gateway']> {
  return (await pair.control.request('status', {}, StatusResultSchema)).gateway;
}

/** Polls until the link is `authed` on a connection other than `previous`; returns its status. */
async function authedAgain(pair: Pair, previous: string | null, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await link(pair);
    if (current.state === 'authed' && current.conn_id != null && current.conn_id !== previous)
      return { connId: current.conn_id, since: Date.parse(current.since ?? '') };
    if (Date.now() > deadline)
      throw new Error(`the link was not authed again within ${timeoutMs} ms: ${JSON.stringify(current)}`);
    await sleep(STATUS_POLL_MS);
  }
}

/** 10 restarts, one every 6 s, each with a downtime; the time from listening to `authed` after each. */
async function rollingRestarts(
  pair: Pair,
  index: number,
): Promise<{ samples: RestartSample[]; span: number }> {
  let { connId } = await authedAgain(pair, null, 30_000);
  await sleep(SETTLE_MS);
  const samples: RestartSample[] = [];
  const start = Date.now();
  let last = start;
  for (let restart = 0; restart < RESTARTS; restart++) {
    const wait = start + restart * RESTART_EVERY_MS - Date.now();
    if (wait > 0) await sleep(wait);
    const down = DOWNTIMES_MS[(restart + index) % DOWNTIMES_MS.length] ?? 0;
    last = Date.now();
    await pair.peer.restart(down);
    const reachable = Date.now();
    const authed = await authedAgain(pair, connId, 60_000);
    connId = authed.connId;
    samples.push({ pair: index, restart, down_ms: down, ms: authed.since - reachable });
  }
  return { samples, span: last - start };
}

/** Attempts against a gateway that drops every connection, counted per minute from the first. */
async function flapping(pair: Pair, dropAt: DropPoint): Promise<FlapResult> {
  const { upgrades } = pair.peer;
  await pair.peer.waitFor(() => upgrades.length > 0, 30_000, 'the first connection attempt');
  const first = upgrades[0]?.at ?? Date.now();
  const end = first + FLAP_MINUTES * 60_000;
  await sleep(end - Date.now());
  const perMinute = Array.from(
    { length: FLAP_MINUTES },
    (_, m) => upgrades.filter((u) => u.at >= first + m * 60_000 && u.at < first + (m + 1) * 60_000).length,
  );
  const later = perMinute.slice(1).reduce((a, b) => a + b, 0);
  const laterS = (FLAP_MINUTES - 1) * 60;
  return {
    drop_at: dropAt,
    per_minute: perMinute,
    mean_interval_s: round1(later === 0 ? laterS : laterS / later),
  };
}

export async function reconnectPolicyBench(host: GatewayBenchHost): Promise<ReconnectPolicyResults> {
  const pairs: Pair[] = [];
  try {
    const flaps: [DropPoint, Pair][] = [];
    for (const dropAt of ['upgrade', 'welcome'] as const) {
      const pair = await startPair(host, `bench-flap-${dropAt}`, dropAt);
      pairs.push(pair);
      flaps.push([dropAt, pair]);
    }
    const restartPairs: Pair[] = [];
    for (let i = 0; i < RESTART_PAIRS; i++) {
      const pair = await startPair(host, `bench-restarts-${i}`);
      pairs.push(pair);
      restartPairs.push(pair);
    }
    // Both scenarios at once: the flapping daemons are idle between attempts.
    const [flapping_, restarts] = await Promise.all([
      Promise.all(flaps.map(([dropAt, pair]) => flapping(pair, dropAt))),
      Promise.all(restartPairs.map((pair, i) => rollingRestarts(pair, i))),
    ]);
    const samples = restarts.flatMap((r) => r.samples);
    const ms = latency(samples.map((s) => s.ms));
    const worstMinute = Math.max(...flapping_.flatMap((f) => f.per_minute.slice(1)));
    return {
      restarts: {
        pairs: RESTART_PAIRS,
        per_pair: RESTARTS,
        every_ms: RESTART_EVERY_MS,
        downtimes_ms: DOWNTIMES_MS,
        span_ms: Math.max(...restarts.map((r) => r.span)),
        samples,
        ms,
      },
      flapping: flapping_,
      goals: {
        gateway_restart_to_authed_p99_ms: {
          goal: `<= ${GOAL_RESTART_P99_MS} ms`,
          value: ms.p99,
          met: ms.p99 <= GOAL_RESTART_P99_MS,
        },
        gateway_flapping_attempts_per_minute: {
          goal: `<= ${GOAL_FLAP_PER_MINUTE} in every minute after the first`,
          value: worstMinute,
          met: worstMinute <= GOAL_FLAP_PER_MINUTE,
        },
      },
    };
  } finally {
    for (const pair of pairs) await stopPair(host, pair);
  }
}

export function printReconnectPolicy(
  results: ReconnectPolicyResults,
  verdict: (met: boolean) => string,
): void {
  const { restarts, flapping: flaps, goals } = results;
  const check = (goal: Goal | undefined): string => (goal ? `goal ${goal.goal}  ${verdict(goal.met)}` : '');
  const num = (value: number, width = 8): string => value.toFixed(1).padStart(width);
  console.log(
    `\n10. Gateway reconnect policy: ${restarts.pairs} daemons, each against its own gateway restarted ` +
      `${restarts.per_pair} times, one every ${restarts.every_ms / 1000} s (over ${round1(restarts.span_ms / 1000)} s), ` +
      `down ${restarts.downtimes_ms.join('/')} ms in turn`,
  );
  console.log(
    `  ${'ms, listening again → authed'.padEnd(34)}${'n'.padStart(8)}${'median'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}`,
  );
  const l = restarts.ms;
  console.log(
    `  ${'every restart'.padEnd(34)}${String(l.n).padStart(8)}${num(l.median)}${num(l.p99)}${num(l.max)}  ${check(goals.gateway_restart_to_authed_p99_ms)}`,
  );
  for (const down of restarts.downtimes_ms) {
    const these = restarts.samples.filter((s) => s.down_ms === down).map((s) => s.ms);
    if (these.length === 0) continue;
    const s = latency(these);
    console.log(
      `  ${`down ${down} ms`.padEnd(34)}${String(s.n).padStart(8)}${num(s.median)}${num(s.p99)}${num(s.max)}`,
    );
  }
  console.log(
    `  A gateway that accepts and drops every connection, ${FLAP_MINUTES} min from the daemon's first attempt`,
  );
  for (const f of flaps) {
    const name = f.drop_at === 'upgrade' ? 'dropped after the upgrade' : 'dropped right after welcome';
    console.log(
      `  ${name.padEnd(34)}attempts per minute ${f.per_minute.join(', ')}; after the first minute one every ${f.mean_interval_s} s`,
    );
  }
  console.log(
    `  ${'worst minute after the first'.padEnd(34)}${check(goals.gateway_flapping_attempts_per_minute)}`,
  );
}
