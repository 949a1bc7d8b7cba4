/**
 * The gateway link: one authenticated WebSocket to charter-gateway (protocol charter.v1), owned
 * by the root with systemId `gateway`.
 *
 *   offline                       no gateway configured: a normal mode, events stay in the store
 *   connecting ─open─▶ handshaking ─welcome─▶ authed (replaying ─caught up─▶ live)
 *        ▲                 │                      │
 *        └──── backoff ◀───┴── error / close ─────┘   (full jitter, 0.5 s × 2^attempt, cap 30 s)
 *   rejected                      401/403 or 4004: retry at the cap, or at once when the token changes
 *   superseded                    4005: a newer daemon process owns the link; never reconnect
 *   closed                        the daemon is stopping
 *
 * The machine decides; the socket lives in the invoked `transport` callback actor (src/gateway/),
 * which reports what happens and is told to ping. Timers are named delays (simulated in tests).
 */
import { assign, fromCallback, sendParent, sendTo, setup } from 'xstate';

export interface LinkInput {
  /** null: no gateway configured (offline). */
  readonly url: string | null;
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
  /** Consecutive failed attempts (reset after 60 s of healthy connection). */
  attempt: number;
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

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;
export const HEALTHY_RESET_MS = 60_000;

/** Upper bound of the full-jitter wait after `attempt` failures. */
export function backoffCeiling(attempt: number): number {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

const CLOSE_REVOKED = 4004;
const CLOSE_SUPERSEDED = 4005;
const CLOSE_CURSOR_INVALID = 4006;
const CLOSE_UNSUPPORTED = 4012;
const CLOSE_DRAINING = 4013;

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
    /** Picks the next wait: uniform in [0, ceiling] (full jitter). Provided so tests can fix it. */
    planBackoff: assign(({ context }) => {
      const ceiling = backoffCeiling(context.attempt);
      const jittered = Math.floor(Math.random() * (ceiling + 1));
      return {
        nextDelayMs: Math.max(jittered, context.retryAfterMs),
        attempt: context.attempt + 1,
        retryAfterMs: 0,
      };
    }),
    /** A draining gateway asks for a prompt reconnect: jitter within the first step only. */
    planPromptReconnect: assign({
      nextDelayMs: () => Math.floor(Math.random() * (BACKOFF_BASE_MS + 1)),
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
    resetAttempts: assign({ attempt: 0 }),
    ping: sendTo('transport', { type: 'transport.ping' }),
    report: sendParent(
      ({ context }, params: { state: LinkStateName; retrying?: boolean }): LinkReport => ({
        type: 'gateway.status',
        state: params.state,
        lastError: context.lastError,
        connId: context.connId,
        retryInMs: params.retrying ? context.nextDelayMs : null,
        at: Date.now(),
      }),
    ),
  },
  guards: {
    configured: ({ context }) => context.url !== null,
    credentialsRefused: ({ event }) =>
      event.type === 'link.refused' && (event.status === 401 || event.status === 403),
    revoked: ({ event }) => event.type === 'link.closed' && event.code === CLOSE_REVOKED,
    superseded: ({ event }) => event.type === 'link.closed' && event.code === CLOSE_SUPERSEDED,
    gatewayDraining: ({ event }) => event.type === 'link.closed' && event.code === CLOSE_DRAINING,
    hopeless: ({ event }) =>
      event.type === 'link.closed' &&
      (event.code === CLOSE_CURSOR_INVALID || event.code === CLOSE_UNSUPPORTED),
  },
  delays: {
    backoffDelay: ({ context }) => context.nextDelayMs,
    heartbeatInterval: ({ context }) => context.hbMs,
    heartbeatTimeout: ({ context }) => 2 * context.hbMs,
    healthyReset: HEALTHY_RESET_MS,
    handshakeTimeout: 10_000,
  },
}).createMachine({
  id: 'gateway',
  description: 'The one WebSocket to charter-gateway: connect, authenticate, replay, stay alive, back off.',
  context: ({ input }) => ({
    url: input.url,
    attempt: 0,
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
                  event.code === CLOSE_CURSOR_INVALID
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
          entry: { type: 'report', params: { state: 'connecting' } },
          on: { 'link.open': 'handshaking' },
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
          after: { healthyReset: { actions: 'resetAttempts' } },
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
