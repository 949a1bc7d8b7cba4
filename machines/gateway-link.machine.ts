/**
 * The gateway link: one authenticated WebSocket to charter-gateway (protocol charter.v1), owned
 * by the root with systemId `gateway`.
 *
 *   offline                       no gateway configured: a normal mode, events stay in the store
 *   connecting ─open─▶ handshaking ─welcome─▶ authed (replaying ─caught up─▶ live)
 *        ▲                 │                      │
 *        └──── backoff ◀───┴── error / close ─────┘   (full jitter under `backoffCeiling`)
 *   rejected                      401/403 or 4004: retry at the cap, or at once when the token changes
 *   superseded                    4005: a newer daemon process owns the link; never reconnect
 *   closed                        the daemon is stopping
 *
 * The machine decides; the socket lives in the invoked `transport` callback actor (src/gateway/),
 * which reports what happens and is told to ping. Timers are named delays (simulated in tests);
 * randomness and the wall clock come from the input, so tests pass deterministic ones.
 *
 * Backoff policy (docs/protocol.md, "Reconnecting and backoff"): `attempt` counts the attempts
 * since the link last proved healthy, i.e. stayed `authed` for HEALTHY_PROOF_MS. A connection
 * that fails before that (refused, dropped before or right after `welcome`) counts as failed, so
 * a flapping gateway sees the ceiling grow to its cap, while a gateway that restarts after a
 * healthy session gets the fast retries again.
 */
import { assign, fromCallback, sendParent, sendTo, setup } from 'xstate';
import { CloseCode, HANDSHAKE_TIMEOUT_MS } from '../src/protocol/gateway-constants.js';

export interface LinkInput {
  /** null: no gateway configured (offline). */
  readonly url: string | null;
  /** Uniform in [0, 1): the jitter's source. Default `Math.random`. */
  readonly random?: () => number;
  /** Epoch milliseconds, stamped on reports. Default `Date.now`. */
  readonly now?: () => number;
}

export type LinkStateName =
  | 'offline'
  | 'connecting'
  | 'handshaking'
  | 'authed'
  | 'backoff'
  | 'rejected'
  | 'superseded'
  | 'closed';

export interface LinkContext {
  readonly url: string | null;
  readonly random: () => number;
  readonly now: () => number;
  /** Attempts since the link last proved healthy (reset after HEALTHY_PROOF_MS in `authed`). */
  attempt: number;
  /** The gateway accepted the current (or last) attempt's upgrade: a failure then costs it work. */
  opened: boolean;
  /** The wait before the next attempt, planned on entering backoff. */
  nextDelayMs: number;
  lastError: string | null;
  connId: string | null;
  hbMs: number;
  /** Set by the gateway with 429/503 Retry-After: the next wait is at least this long. */
  retryAfterMs: number;
}

export type TransportReport =
  | { type: 'link.open' }
  | { type: 'link.welcome'; connId: string; hbMs: number }
  | { type: 'link.caughtUp' }
  /** Any inbound frame: the peer is alive. Sent at most a few times per heartbeat interval. */
  | { type: 'link.alive' }
  | { type: 'link.refused'; status: number; retryAfterMs: number | null }
  | { type: 'link.closed'; code: number; reason: string }
  | { type: 'link.failed'; message: string };

export type LinkEvent = TransportReport | { type: 'link.tokenChanged' } | { type: 'link.close' };

/** What the transport is told. */
export type TransportCommand = { type: 'transport.ping' };

/** What the root hears: enough for `status`. */
export type LinkReport = {
  type: 'gateway.status';
  state: LinkStateName;
  lastError: string | null;
  connId: string | null;
  /** Milliseconds until the next attempt, when one is planned. */
  retryInMs: number | null;
  /** When the link entered this state (epoch ms). */
  at: number;
};

/** Ceiling of the first retry. */
export const BACKOFF_BASE_MS = 500;
/** Ceiling of the fast retries, kept under the 2 s a restarted gateway should wait for us. */
export const FAST_CEILING_MS = 1_000;
/** Retries at most FAST_CEILING_MS apart: they cover a restart's downtime (about 5 s on average). */
export const FAST_RETRIES = 10;
/** Cap of the ceiling while the gateway is unreachable or refuses the upgrade (and of the fixed retries). */
export const BACKOFF_CAP_MS = 30_000;
/** Cap of the ceiling when the gateway accepted the connection and then dropped it (flapping). */
export const FLAP_CAP_MS = 60_000;
/** `authed` this long proves the gateway healthy: the attempt count starts again at 0. */
export const HEALTHY_PROOF_MS = 2_000;

/**
 * Upper bound of the full-jitter wait after `attempt` attempts without a healthy connection:
 * 0.5 s, then 1 s up to the FAST_RETRIES-th, then doubling (2, 4, 8, 16 s …) up to the cap,
 * which is FLAP_CAP_MS when the failed attempt had been accepted (`opened`), else BACKOFF_CAP_MS.
 */
export function backoffCeiling(attempt: number, opened = false): number {
  if (attempt < FAST_RETRIES) return Math.min(FAST_CEILING_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const cap = opened ? FLAP_CAP_MS : BACKOFF_CAP_MS;
  return Math.min(cap, FAST_CEILING_MS * 2 ** (attempt - FAST_RETRIES + 1));
}

export const gatewayLinkMachine = setup({
  types: {
    context: {} as LinkContext,
    events: {} as LinkEvent,
    input: {} as LinkInput,
  },
  actors: {
    // Provided by the wiring: opens the WebSocket, moves events and commands, reports.
    transport: fromCallback<TransportCommand, { url: string }>(() => undefined),
  },
  actions: {
    /** Picks the next wait: uniform in [0, ceiling] (full jitter). */
    planBackoff: assign(({ context }) => {
      const ceiling = backoffCeiling(context.attempt, context.opened);
      const jittered = Math.floor(context.random() * (ceiling + 1));
      return {
        nextDelayMs: Math.max(jittered, context.retryAfterMs),
        attempt: context.attempt + 1,
        retryAfterMs: 0,
      };
    }),
    /** A draining gateway asks for a prompt reconnect: jitter within the first step only. */
    planPromptReconnect: assign({
      nextDelayMs: ({ context }) => Math.floor(context.random() * (BACKOFF_BASE_MS + 1)),
    }),
    planCapRetry: assign({ nextDelayMs: BACKOFF_CAP_MS }),
    noteError: assign({ lastError: (_args, params: { message: string }) => params.message }),
    noteRetryAfter: assign({
      retryAfterMs: ({ event }) => (event.type === 'link.refused' ? (event.retryAfterMs ?? 0) : 0),
    }),
    noteWelcome: assign(({ event }) =>
      event.type === 'link.welcome' ? { connId: event.connId, hbMs: event.hbMs, lastError: null } : {},
    ),
    forgetConnection: assign({ connId: null }),
    noteOpened: assign({ opened: true }),
    forgetOpened: assign({ opened: false }),
    resetAttempts: assign({ attempt: 0 }),
    ping: sendTo('transport', { type: 'transport.ping' }),
    report: sendParent(
      ({ context }, params: { state: LinkStateName; retrying?: boolean }): LinkReport => ({
        type: 'gateway.status',
        state: params.state,
        lastError: context.lastError,
        connId: context.connId,
        retryInMs: params.retrying ? context.nextDelayMs : null,
        at: context.now(),
      }),
    ),
  },
  guards: {
    configured: ({ context }) => context.url !== null,
    credentialsRefused: ({ event }) =>
      event.type === 'link.refused' && (event.status === 401 || event.status === 403),
    revoked: ({ event }) => event.type === 'link.closed' && event.code === CloseCode.credentialsRevoked,
    superseded: ({ event }) => event.type === 'link.closed' && event.code === CloseCode.superseded,
    gatewayDraining: ({ event }) => event.type === 'link.closed' && event.code === CloseCode.draining,
    hopeless: ({ event }) =>
      event.type === 'link.closed' &&
      (event.code === CloseCode.cursorInvalid || event.code === CloseCode.unsupportedProtocol),
  },
  delays: {
    backoffDelay: ({ context }) => context.nextDelayMs,
    heartbeatInterval: ({ context }) => context.hbMs,
    heartbeatTimeout: ({ context }) => 2 * context.hbMs,
    healthyProof: HEALTHY_PROOF_MS,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  },
}).createMachine({
  id: 'gateway',
  description: 'The one WebSocket to charter-gateway: connect, authenticate, replay, stay alive, back off.',
  context: ({ input }) => ({
    url: input.url,
    random: input.random ?? Math.random,
    now: input.now ?? Date.now,
    attempt: 0,
    opened: false,
    nextDelayMs: 0,
    lastError: null,
    connId: null,
    hbMs: 15_000,
    retryAfterMs: 0,
  }),
  initial: 'starting',
  on: {
    'link.close': { target: '.closed' },
  },
  states: {
    starting: {
      always: [{ guard: 'configured', target: 'link' }, { target: 'offline' }],
    },
    offline: {
      description: 'No gateway configured: events are kept in the local store.',
      entry: { type: 'report', params: { state: 'offline' } },
    },
    link: {
      description: 'A socket exists (the transport actor lives as long as this state).',
      initial: 'connecting',
      invoke: {
        id: 'transport',
        src: 'transport',
        input: ({ context }) => ({ url: context.url ?? '' }),
      },
      on: {
        'link.failed': {
          target: 'backoff',
          actions: { type: 'noteError', params: ({ event }) => ({ message: event.message }) },
        },
        'link.refused': [
          {
            guard: 'credentialsRefused',
            target: 'rejected',
            actions: {
              type: 'noteError',
              params: ({ event }) => ({
                message: `the gateway refused the credentials (HTTP ${event.status})`,
              }),
            },
          },
          {
            target: 'backoff',
            actions: [
              'noteRetryAfter',
              {
                type: 'noteError',
                params: ({ event }) => ({ message: `the gateway is busy (HTTP ${event.status})` }),
              },
            ],
          },
        ],
        'link.closed': [
          {
            guard: 'revoked',
            target: 'rejected',
            actions: { type: 'noteError', params: { message: 'the gateway revoked the credentials (4004)' } },
          },
          {
            guard: 'superseded',
            target: 'superseded',
            actions: {
              type: 'noteError',
              params: { message: 'superseded by a newer daemon process for this project (4005)' },
            },
          },
          {
            guard: 'gatewayDraining',
            target: 'reconnecting',
            actions: { type: 'noteError', params: { message: 'the gateway is draining (4013)' } },
          },
          {
            guard: 'hopeless',
            target: 'stalled',
            actions: {
              type: 'noteError',
              params: ({ event }) => ({
                message:
                  event.code === CloseCode.cursorInvalid
                    ? `the gateway's cursor is ahead of this daemon's store (4006): ${event.reason}`
                    : `the gateway does not speak this protocol (4012): ${event.reason}`,
              }),
            },
          },
          {
            target: 'backoff',
            actions: {
              type: 'noteError',
              params: ({ event }) => ({
                message: `closed by the gateway (${event.code}${event.reason ? `: ${event.reason}` : ''})`,
              }),
            },
          },
        ],
      },
      states: {
        connecting: {
          description: 'Opening the WebSocket (upgrade with the bearer token).',
          entry: ['forgetOpened', { type: 'report', params: { state: 'connecting' } }],
          on: { 'link.open': { target: 'handshaking', actions: 'noteOpened' } },
          after: {
            handshakeTimeout: {
              target: '#gateway.backoff',
              actions: { type: 'noteError', params: { message: 'no connection within 10 s' } },
            },
          },
        },
        handshaking: {
          description: 'hello sent; waiting for welcome.',
          entry: { type: 'report', params: { state: 'handshaking' } },
          on: { 'link.welcome': { target: 'authed', actions: 'noteWelcome' } },
          after: {
            handshakeTimeout: {
              target: '#gateway.backoff',
              actions: { type: 'noteError', params: { message: 'no welcome within 10 s' } },
            },
          },
        },
        authed: {
          description: 'Authenticated: replaying the backlog, then live.',
          type: 'parallel',
          entry: { type: 'report', params: { state: 'authed' } },
          exit: 'forgetConnection',
          // Failures before the proof (a drop right after welcome included) keep counting.
          after: { healthyProof: { actions: 'resetAttempts' } },
          states: {
            stream: {
              initial: 'replaying',
              states: {
                replaying: { on: { 'link.caughtUp': 'live' } },
                live: {},
              },
            },
            pinging: {
              description: 'A ping every hb_ms, whatever else flows.',
              initial: 'waiting',
              states: {
                waiting: {
                  after: { heartbeatInterval: { target: 'waiting', reenter: true, actions: 'ping' } },
                },
              },
            },
            liveness: {
              description: 'No inbound frame for 2 × hb_ms means a dead peer: terminate and reconnect.',
              initial: 'watching',
              states: {
                watching: {
                  on: { 'link.alive': { target: 'watching', reenter: true } },
                  after: {
                    heartbeatTimeout: {
                      target: '#gateway.backoff',
                      actions: {
                        type: 'noteError',
                        params: ({ context }) => ({
                          message: `no frame from the gateway for ${2 * context.hbMs} ms (heartbeat timeout)`,
                        }),
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    backoff: {
      description: 'Waiting a random time (full jitter) before the next attempt.',
      entry: ['planBackoff', { type: 'report', params: { state: 'backoff', retrying: true } }],
      after: { backoffDelay: 'link' },
      on: { 'link.tokenChanged': 'link' },
    },
    reconnecting: {
      description: 'The gateway is draining: reconnect at once, with a little jitter.',
      entry: ['planPromptReconnect', { type: 'report', params: { state: 'backoff', retrying: true } }],
      after: { backoffDelay: 'link' },
    },
    stalled: {
      description: 'Reconnecting cannot help until someone acts: retry at the cap only.',
      entry: ['planCapRetry', { type: 'report', params: { state: 'backoff', retrying: true } }],
      after: { backoffDelay: 'link' },
      on: { 'link.tokenChanged': 'link' },
    },
    rejected: {
      description: 'Credentials refused: retry at the cap, or at once when the token changes.',
      entry: ['planCapRetry', { type: 'report', params: { state: 'rejected', retrying: true } }],
      after: { backoffDelay: 'link' },
      on: { 'link.tokenChanged': 'link' },
    },
    superseded: {
      description: 'A newer daemon process holds the link: this one never reconnects.',
      entry: { type: 'report', params: { state: 'superseded' } },
    },
    closed: {
      description: 'The daemon is stopping.',
      type: 'final',
      entry: { type: 'report', params: { state: 'closed' } },
    },
  },
});
