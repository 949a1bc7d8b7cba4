/**
 * The gateway link machine: scripted tests with a simulated clock (backoff sequence and reset,
 * heartbeats, rejection and recovery on a token change, superseded, draining), and a model-based
 * test where `xstate/graph` paths through an abstract model drive the real machine through every
 * state and every transition.
 */
import { describe, expect, it, vi } from 'vitest';
import { createActor, createMachine, fromCallback, SimulatedClock, setup } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import {
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  backoffCeiling,
  FAST_CEILING_MS,
  FAST_RETRIES,
  FLAP_CAP_MS,
  gatewayLinkMachine,
  HEALTHY_PROOF_MS,
  type LinkReport,
  type TransportCommand,
} from '../../machines/gateway-link.machine.js';

/** Always the top of the range: every wait is its ceiling. */
const ALWAYS_CEILING = () => 0.999_999_9;

/** A small seeded generator (mulberry32): jitter that looks random and is the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function harness(options: { url?: string | null; random?: () => number } = {}) {
  const clock = new SimulatedClock();
  const reports: LinkReport[] = [];
  const pings: number[] = [];
  /** Simulated time at which each transport (one connection attempt) started. */
  const attempts: number[] = [];
  const machine = gatewayLinkMachine.provide({
    actors: {
      transport: fromCallback<TransportCommand, { url: string }>(({ receive }) => {
        attempts.push(clock.now());
        const attempt = attempts.length;
        receive(() => pings.push(attempt));
      }),
    },
    actions: {
      report: (_args, params) =>
        reports.push({
          type: 'gateway.status',
          state: params.state,
          lastError: null,
          connId: null,
          retryInMs: null,
          at: 0,
        }),
    },
  });
  const url = options.url === undefined ? 'http://127.0.0.1:1' : options.url;
  const input = { url, random: options.random ?? seeded(1), now: () => clock.now() };
  const actor = createActor(machine, { clock, input }).start();
  const state = () => {
    const value = actor.getSnapshot().value;
    if (typeof value === 'string') return value;
    const link = (value as { link?: unknown }).link;
    return typeof link === 'string' ? link : 'authed';
  };
  const welcome = (hbMs = 1000) => {
    actor.send({ type: 'link.open' });
    actor.send({ type: 'link.welcome', connId: 'c1', hbMs });
  };
  /** In backoff: lets the planned wait run out, so the next attempt starts. */
  const waitOut = () => {
    expect(state()).toBe('backoff');
    clock.increment(actor.getSnapshot().context.nextDelayMs);
    expect(state()).toBe('connecting');
  };
  return {
    actor,
    clock,
    reports,
    pings,
    attempts,
    state,
    welcome,
    waitOut,
    transports: () => attempts.length,
  };
}

describe('gateway link machine', () => {
  it('without a gateway it is offline and opens nothing', () => {
    const h = harness({ url: null });
    expect(h.state()).toBe('offline');
    expect(h.transports()).toBe(0);
  });

  it('connects, handshakes, replays then goes live', () => {
    const h = harness();
    expect(h.state()).toBe('connecting');
    expect(h.transports()).toBe(1);
    h.welcome();
    expect(h.actor.getSnapshot().matches({ link: { authed: { stream: 'replaying' } } })).toBe(true);
    h.actor.send({ type: 'link.caughtUp' });
    expect(h.actor.getSnapshot().matches({ link: { authed: { stream: 'live' } } })).toBe(true);
    expect(h.actor.getSnapshot().context.connId).toBe('c1');
    expect(h.reports.map((r) => r.state)).toEqual(['connecting', 'handshaking', 'authed']);
  });

  it('backs off with full jitter: 0.5 s, 1 s for the fast retries, then doubling to the 30 s cap; never gives up', () => {
    const h = harness({ random: ALWAYS_CEILING });
    const waits: number[] = [];
    for (let attempt = 0; attempt < 18; attempt++) {
      h.actor.send({ type: 'link.failed', message: 'ECONNREFUSED' });
      expect(h.state()).toBe('backoff');
      const wait = h.actor.getSnapshot().context.nextDelayMs;
      waits.push(wait);
      h.clock.increment(wait - 1);
      expect(h.state()).toBe('backoff');
      h.clock.increment(1);
      expect(h.state()).toBe('connecting');
    }
    expect(waits).toEqual([
      500, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
      30000,
    ]);
    expect(waits.map((_, i) => backoffCeiling(i))).toEqual(waits);
    expect(waits.slice(0, FAST_RETRIES).every((w) => w <= FAST_CEILING_MS)).toBe(true);
    expect(h.transports()).toBe(19);
  });

  it('a gateway that accepts the connection and drops it: the same ceilings, capped at 60 s', () => {
    const h = harness({ random: ALWAYS_CEILING });
    const waits: number[] = [];
    for (let attempt = 0; attempt < 18; attempt++) {
      h.actor.send({ type: 'link.open' });
      h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
      waits.push(h.actor.getSnapshot().context.nextDelayMs);
      h.waitOut();
    }
    expect(waits.slice(FAST_RETRIES)).toEqual([2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(waits).toEqual(waits.map((_, i) => backoffCeiling(i, true)));
    // One refused attempt in between: that failure did not reach the gateway, so the 30 s cap.
    h.actor.send({ type: 'link.failed', message: 'ECONNREFUSED' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_CAP_MS);
  });

  it('a random wait is within [0, ceiling]', () => {
    const h = harness({ random: () => 0 });
    h.actor.send({ type: 'link.failed', message: 'x' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(0);
    h.clock.increment(0);
    expect(h.state()).toBe('connecting');
  });

  it(`a connection authed for ${HEALTHY_PROOF_MS} ms proves the gateway healthy: the attempt count restarts at 0`, () => {
    const h = harness({ random: ALWAYS_CEILING });
    for (let i = 0; i < 14; i++) {
      h.actor.send({ type: 'link.failed', message: 'x' });
      h.waitOut();
    }
    expect(h.actor.getSnapshot().context.attempt).toBe(14);
    h.welcome(20_000);
    h.clock.increment(HEALTHY_PROOF_MS - 1);
    expect(h.actor.getSnapshot().context.attempt).toBe(14);
    h.clock.increment(1);
    expect(h.actor.getSnapshot().context.attempt).toBe(0);
    h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_BASE_MS);
  });

  it('a connection dropped before the proof counts as failed, whether before or right after welcome', () => {
    const h = harness({ random: ALWAYS_CEILING });
    for (let i = 0; i < 12; i++) {
      h.actor.send({ type: 'link.failed', message: 'x' });
      h.waitOut();
    }
    // Accepted, then closed before welcome.
    h.actor.send({ type: 'link.open' });
    h.actor.send({ type: 'link.closed', code: 1011, reason: '' });
    expect(h.actor.getSnapshot().context.attempt).toBe(13);
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(backoffCeiling(12, true));
    h.waitOut();
    // Welcomed, then dropped just before the proof.
    h.welcome();
    h.clock.increment(HEALTHY_PROOF_MS - 1);
    h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
    expect(h.actor.getSnapshot().context.attempt).toBe(14);
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(backoffCeiling(13, true));
  });

  it('10 gateway restarts within a minute, each after a healthy session: every retry once it is back is within the fast window', () => {
    // Worst case jitter: every wait is its full ceiling.
    const h = harness({ random: ALWAYS_CEILING });
    const downtimes = [250, 500, 1000, 1500, 2000];
    const backAfter: number[] = [];
    h.welcome();
    for (let restart = 0; restart < 10; restart++) {
      // A healthy session of 3.5 s (the gateway answers pings), then the gateway goes away.
      for (let t = 0; t < 3500; t += 500) {
        h.clock.increment(500);
        h.actor.send({ type: 'link.alive' });
      }
      expect(h.state()).toBe('authed');
      h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
      const reachableAt = h.clock.now() + (downtimes[restart % downtimes.length] ?? 0);
      for (;;) {
        expect(h.actor.getSnapshot().context.nextDelayMs).toBeLessThanOrEqual(FAST_CEILING_MS);
        h.waitOut();
        if (h.clock.now() >= reachableAt) break;
        h.actor.send({ type: 'link.failed', message: 'connect ECONNREFUSED 127.0.0.1:1' });
      }
      backAfter.push(h.clock.now() - reachableAt);
      h.welcome();
    }
    expect(h.clock.now()).toBeLessThan(60_000);
    expect(Math.max(...backAfter)).toBeLessThanOrEqual(FAST_CEILING_MS);
    expect(h.state()).toBe('authed');
  });

  it.each([
    ['before welcome', false],
    ['right after welcome', true],
  ] as const)(
    'a gateway that accepts and drops every connection %s: attempts space out to >= 10 s after the first minute',
    (_name, welcomed) => {
      for (const seed of [1, 2, 3]) {
        const h = harness({ random: seeded(seed) });
        const minutes = 10;
        while (h.clock.now() < minutes * 60_000) {
          expect(h.state()).toBe('connecting');
          h.actor.send({ type: 'link.open' });
          if (welcomed) h.actor.send({ type: 'link.welcome', connId: 'c', hbMs: 1000 });
          h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
          h.waitOut();
        }
        const perMinute = Array.from(
          { length: minutes },
          (_, m) => h.attempts.filter((at) => at >= m * 60_000 && at < (m + 1) * 60_000).length,
        );
        const afterFirst = perMinute.slice(1);
        expect(
          afterFirst.reduce((a, b) => a + b, 0) / afterFirst.length,
          `seed ${seed}: ${perMinute}`,
        ).toBeLessThanOrEqual(6);
        expect(Math.max(...afterFirst), `seed ${seed}: ${perMinute}`).toBeLessThanOrEqual(6);
        // From the second minute on, the ceiling is the flapping cap.
        expect(backoffCeiling(h.actor.getSnapshot().context.attempt - 1, true)).toBe(FLAP_CAP_MS);
      }
    },
  );

  it('stamps its reports with the injected clock and jitters with the injected random', () => {
    const random = vi.spyOn(Math, 'random');
    const clock = new SimulatedClock();
    const reports: LinkReport[] = [];
    const parent = setup({
      types: { events: {} as LinkReport },
      actors: {
        link: gatewayLinkMachine.provide({ actors: { transport: fromCallback(() => undefined) } }),
      },
    }).createMachine({
      invoke: {
        src: 'link',
        input: { url: 'http://127.0.0.1:1', random: () => 0.5, now: () => 1_000_000 + clock.now() },
      },
      on: { 'gateway.status': { actions: ({ event }) => reports.push(event) } },
    });
    const actor = createActor(parent, { clock }).start();
    clock.increment(40);
    const link = Object.values(actor.getSnapshot().children)[0];
    link?.send({ type: 'link.failed', message: 'ECONNREFUSED' });
    clock.increment(250);
    expect(reports.map((r) => [r.state, r.at, r.retryInMs])).toEqual([
      ['connecting', 1_000_000, null],
      ['backoff', 1_000_040, 250], // floor(0.5 × 501)
      ['connecting', 1_000_290, null],
    ]);
    expect(random).not.toHaveBeenCalled();
    random.mockRestore();
  });

  it('pings every hb_ms and drops a silent peer after 2 × hb_ms', () => {
    const h = harness();
    h.welcome(1000);
    h.clock.increment(1000);
    expect(h.pings).toHaveLength(1);
    h.actor.send({ type: 'link.alive' });
    h.clock.increment(1000);
    expect(h.pings).toHaveLength(2);
    h.clock.increment(999);
    expect(h.state()).toBe('authed'); // 1999 ms since the last inbound frame
    h.clock.increment(1);
    expect(h.state()).toBe('backoff');
    expect(h.actor.getSnapshot().context.lastError).toContain('heartbeat timeout');
    expect(h.actor.getSnapshot().children.transport).toBeUndefined(); // stopped: its socket is terminated
  });

  it('credentials refused (401/403 or 4004): rejected, retried only at the cap or when the token changes', () => {
    const h = harness();
    h.actor.send({ type: 'link.refused', status: 401, retryAfterMs: null });
    expect(h.state()).toBe('rejected');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_CAP_MS);
    h.clock.increment(BACKOFF_CAP_MS - 1);
    expect(h.state()).toBe('rejected');
    h.actor.send({ type: 'link.tokenChanged' });
    expect(h.state()).toBe('connecting');
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4004, reason: 'revoked' });
    expect(h.state()).toBe('rejected');
    h.clock.increment(BACKOFF_CAP_MS);
    expect(h.state()).toBe('connecting');
  });

  it('429/503 back off for at least Retry-After', () => {
    const h = harness({ random: () => 0 });
    h.actor.send({ type: 'link.refused', status: 503, retryAfterMs: 7000 });
    expect(h.state()).toBe('backoff');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(7000);
    h.waitOut();
    // Beyond every cap when the gateway says so; used once.
    h.actor.send({ type: 'link.refused', status: 429, retryAfterMs: 90_000 });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(90_000);
    h.waitOut();
    h.actor.send({ type: 'link.failed', message: 'x' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(0);
  });

  it('rejected and stalled retry at exactly 30 s, even after a flapping streak', () => {
    const h = harness({ random: ALWAYS_CEILING });
    for (let i = 0; i < 16; i++) {
      h.actor.send({ type: 'link.open' });
      h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
      h.waitOut();
    }
    h.actor.send({ type: 'link.refused', status: 403, retryAfterMs: null });
    expect(h.state()).toBe('rejected');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_CAP_MS);
    h.clock.increment(BACKOFF_CAP_MS);
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4012, reason: 'v0' });
    expect(h.state()).toBe('stalled');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_CAP_MS);
  });

  it('superseded (4005): never reconnects', () => {
    const h = harness();
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4005, reason: 'newer epoch' });
    expect(h.state()).toBe('superseded');
    h.clock.increment(10 * BACKOFF_CAP_MS);
    expect(h.state()).toBe('superseded');
    expect(h.transports()).toBe(1);
  });

  it('a draining gateway (4013): reconnect at once with a little jitter, attempts unchanged', () => {
    const h = harness({ random: ALWAYS_CEILING });
    for (let i = 0; i < 12; i++) {
      h.actor.send({ type: 'link.failed', message: 'x' });
      h.waitOut();
    }
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4013, reason: 'draining' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(500);
    h.clock.increment(500);
    expect(h.state()).toBe('connecting');
    expect(h.actor.getSnapshot().context.attempt).toBe(12);
    h.actor.send({ type: 'link.failed', message: 'x' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(backoffCeiling(12));
  });

  it('cursor invalid (4006): reported, retried only at the cap', () => {
    const h = harness();
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4006, reason: 'ahead' });
    expect(h.state()).toBe('stalled');
    expect(h.actor.getSnapshot().context.lastError).toContain('4006');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(BACKOFF_CAP_MS);
  });

  it('close at any time ends it', () => {
    const h = harness();
    h.welcome();
    h.actor.send({ type: 'link.close' });
    expect(h.actor.getSnapshot().status).toBe('done');
  });
});

// ---- model-based ------------------------------------------------------------------------------

const model = createMachine({
  id: 'linkModel',
  initial: 'connecting',
  states: {
    connecting: {
      on: {
        OPEN: 'handshaking',
        FAIL: 'backoff',
        REFUSE_AUTH: 'rejected',
        REFUSE_BUSY: 'backoff',
        TIMER: 'backoff',
        STOP: 'closed',
      },
    },
    handshaking: {
      on: {
        WELCOME: 'authed',
        CLOSE_GENERIC: 'backoff',
        CLOSE_REVOKED: 'rejected',
        TIMER: 'backoff',
        STOP: 'closed',
      },
    },
    authed: {
      on: {
        CLOSE_GENERIC: 'backoff',
        CLOSE_REVOKED: 'rejected',
        CLOSE_SUPERSEDED: 'superseded',
        CLOSE_DRAINING: 'reconnecting',
        CLOSE_CURSOR: 'stalled',
        HB_TIMEOUT: 'backoff',
        FAIL: 'backoff',
        STOP: 'closed',
      },
    },
    backoff: { on: { TIMER: 'connecting', TOKEN_CHANGED: 'connecting', STOP: 'closed' } },
    reconnecting: { on: { TIMER: 'connecting', STOP: 'closed' } },
    stalled: { on: { TIMER: 'connecting', TOKEN_CHANGED: 'connecting', STOP: 'closed' } },
    rejected: { on: { TIMER: 'connecting', TOKEN_CHANGED: 'connecting', STOP: 'closed' } },
    superseded: { on: { STOP: 'closed' } },
    closed: { type: 'final' },
  },
});

type ModelEvent =
  | 'OPEN'
  | 'WELCOME'
  | 'FAIL'
  | 'REFUSE_AUTH'
  | 'REFUSE_BUSY'
  | 'TIMER'
  | 'CLOSE_GENERIC'
  | 'CLOSE_REVOKED'
  | 'CLOSE_SUPERSEDED'
  | 'CLOSE_DRAINING'
  | 'CLOSE_CURSOR'
  | 'HB_TIMEOUT'
  | 'TOKEN_CHANGED'
  | 'STOP';

function drive(h: ReturnType<typeof harness>, event: ModelEvent): void {
  const a = h.actor;
  switch (event) {
    case 'OPEN':
      a.send({ type: 'link.open' });
      return;
    case 'WELCOME':
      a.send({ type: 'link.welcome', connId: 'c', hbMs: 1000 });
      return;
    case 'FAIL':
      a.send({ type: 'link.failed', message: 'x' });
      return;
    case 'REFUSE_AUTH':
      a.send({ type: 'link.refused', status: 403, retryAfterMs: null });
      return;
    case 'REFUSE_BUSY':
      a.send({ type: 'link.refused', status: 429, retryAfterMs: 100 });
      return;
    case 'TIMER': {
      const inLink = typeof a.getSnapshot().value !== 'string';
      h.clock.increment(inLink ? 10_000 : a.getSnapshot().context.nextDelayMs);
      return;
    }
    case 'CLOSE_GENERIC':
      a.send({ type: 'link.closed', code: 1006, reason: '' });
      return;
    case 'CLOSE_REVOKED':
      a.send({ type: 'link.closed', code: 4004, reason: '' });
      return;
    case 'CLOSE_SUPERSEDED':
      a.send({ type: 'link.closed', code: 4005, reason: '' });
      return;
    case 'CLOSE_DRAINING':
      a.send({ type: 'link.closed', code: 4013, reason: '' });
      return;
    case 'CLOSE_CURSOR':
      a.send({ type: 'link.closed', code: 4006, reason: '' });
      return;
    case 'HB_TIMEOUT':
      h.clock.increment(2000);
      return;
    case 'TOKEN_CHANGED':
      a.send({ type: 'link.tokenChanged' });
      return;
    case 'STOP':
      a.send({ type: 'link.close' });
      return;
  }
}

describe('gateway link machine, model-based', () => {
  const toState = getShortestPaths(model);
  const transitions = Object.entries(model.config.states ?? {}).flatMap(([state, node]) =>
    Object.keys((node as { on?: Record<string, unknown> }).on ?? {}).map((event) => ({
      state,
      event: event as ModelEvent,
    })),
  );
  const pathTo = (state: string): ModelEvent[] => {
    const path = toState.find((p) => p.state.value === state);
    if (path === undefined) throw new Error(`no path to ${state}`);
    return path.steps
      .map((step) => step.event.type)
      .filter((type): type is ModelEvent => !type.startsWith('xstate.'));
  };

  it('every model state is reachable', () => {
    expect(toState.map((p) => String(p.state.value)).sort()).toEqual(
      Object.keys(model.config.states ?? {}).sort(),
    );
  });

  it.each(transitions.map((t) => [`${t.state} --${t.event}-->`, t] as const))(
    '%s',
    (_name, { state, event }) => {
      const h = harness({ random: () => 0.5 });
      const walker = createActor(model).start();
      for (const step of [...pathTo(state), event]) {
        walker.send({ type: step });
        drive(h, step);
        expect(h.state(), `after ${step}`).toBe(String(walker.getSnapshot().value));
      }
    },
  );
});
