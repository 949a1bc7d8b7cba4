/**
 * The gateway link machine: scripted tests with a simulated clock (backoff sequence and reset,
 * heartbeats, rejection and recovery on a token change, superseded, draining), and a model-based
 * test where `xstate/graph` paths through an abstract model drive the real machine through every
 * state and every transition.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, createMachine, fromCallback, SimulatedClock } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import {
  BACKOFF_CAP_MS,
  backoffCeiling,
  gatewayLinkMachine,
  HEALTHY_RESET_MS,
  type LinkReport,
  type TransportCommand,
} from '../../machines/gateway-link.machine.js';

afterEach(() => vi.restoreAllMocks());

function harness(url: string | null = 'http://127.0.0.1:1') {
  const clock = new SimulatedClock();
  const reports: LinkReport[] = [];
  const pings: number[] = [];
  let transports = 0;
  const machine = gatewayLinkMachine.provide({
    actors: {
      transport: fromCallback<TransportCommand, { url: string }>(({ receive }) => {
        transports += 1;
        receive(() => pings.push(transports));
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
  const actor = createActor(machine, { clock, input: { url } }).start();
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
  return { actor, clock, reports, pings, state, welcome, transports: () => transports };
}

describe('gateway link machine', () => {
  it('without a gateway it is offline and opens nothing', () => {
    const h = harness(null);
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

  it('backs off with full jitter under 0.5 s × 2^attempt, capped at 30 s, and never gives up', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999_9); // always the ceiling
    const h = harness();
    const waits: number[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      h.actor.send({ type: 'link.failed', message: 'ECONNREFUSED' });
      expect(h.state()).toBe('backoff');
      const wait = h.actor.getSnapshot().context.nextDelayMs;
      waits.push(wait);
      h.clock.increment(wait - 1);
      expect(h.state()).toBe('backoff');
      h.clock.increment(1);
      expect(h.state()).toBe('connecting');
    }
    expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(waits.map((_, i) => backoffCeiling(i))).toEqual(waits);
    expect(h.transports()).toBe(11);
  });

  it('a random wait is within [0, ceiling]', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const h = harness();
    h.actor.send({ type: 'link.failed', message: 'x' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(0);
    h.clock.increment(0);
    expect(h.state()).toBe('connecting');
  });

  it('resets the attempt count after 60 s of healthy connection', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999_9);
    const h = harness();
    for (let i = 0; i < 4; i++) {
      h.actor.send({ type: 'link.failed', message: 'x' });
      h.clock.increment(h.actor.getSnapshot().context.nextDelayMs);
    }
    expect(h.actor.getSnapshot().context.attempt).toBe(4);
    h.welcome(20_000);
    // keep it alive through the minute
    for (let t = 0; t < HEALTHY_RESET_MS; t += 10_000) {
      h.clock.increment(10_000);
      h.actor.send({ type: 'link.alive' });
    }
    expect(h.actor.getSnapshot().context.attempt).toBe(0);
    h.actor.send({ type: 'link.closed', code: 1006, reason: '' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(500);
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
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const h = harness();
    h.actor.send({ type: 'link.refused', status: 503, retryAfterMs: 7000 });
    expect(h.state()).toBe('backoff');
    expect(h.actor.getSnapshot().context.nextDelayMs).toBe(7000);
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
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999_9);
    const h = harness();
    h.welcome();
    h.actor.send({ type: 'link.closed', code: 4013, reason: 'draining' });
    expect(h.actor.getSnapshot().context.nextDelayMs).toBeLessThanOrEqual(500);
    h.clock.increment(500);
    expect(h.state()).toBe('connecting');
    expect(h.actor.getSnapshot().context.attempt).toBe(0);
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
      vi.spyOn(Math, 'random').mockReturnValue(0.5);
      const h = harness();
      const walker = createActor(model).start();
      for (const step of [...pathTo(state), event]) {
        walker.send({ type: step });
        drive(h, step);
        expect(h.state(), `after ${step}`).toBe(String(walker.getSnapshot().value));
      }
    },
  );
});
