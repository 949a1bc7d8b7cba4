/**
 * The clauses `gateway-check` checks, in the order it runs them: one per rule of
 * docs/protocol.md, each with the section (anchor) it comes from and what a gateway must do to
 * pass. The scenario files check them; the report lists every one of them, always.
 */
export interface ClauseSpec {
  /** The section of docs/protocol.md the rule is in (an anchor of that file). */
  readonly section: string;
  /** What the gateway must do, in one line. */
  readonly requires: string;
}

export const CLAUSES = {
  'upgrade.no-token': {
    section: '#the-upgrade-request',
    requires: 'an upgrade without Authorization is refused with 401',
  },
  'upgrade.wrong-token': {
    section: '#the-upgrade-request',
    requires: 'an upgrade with a wrong bearer token is refused with 401 or 403',
  },
  'subprotocol.selected': {
    section: '#the-upgrade-request',
    requires: 'an upgrade offering charter.v1 is answered 101 selecting charter.v1',
  },
  'subprotocol.none-offered': {
    section: '#the-upgrade-request',
    requires: 'an upgrade offering no subprotocol is refused with a 4xx status',
  },
  'subprotocol.other-offered': {
    section: '#the-upgrade-request',
    requires: 'an upgrade offering only another subprotocol is refused with a 4xx status',
  },
  'commands.dseq-increasing': {
    section: '#commands-downstream',
    requires: 'queued commands arrive after welcome, valid, dseq > down_applied and +1 each',
  },
  'commands.resent-without-cack': {
    section: '#commands-downstream',
    requires: 'a command not acknowledged by cack comes again, same dseq, on the next connection',
  },
  'commands.not-resent-after-cack': {
    section: '#commands-downstream',
    requires: 'after cack and hello.down_applied cover a command, it is not sent again',
  },
  'handshake.welcome': {
    section: '#handshake',
    requires: 'hello is answered by a valid welcome (nothing but ping before it)',
  },
  'handshake.unsupported-protocol': {
    section: '#handshake',
    requires: 'hello.protocol 2 is answered by error + close 4012',
  },
  'handshake.down-applied-ahead': {
    section: '#handshake',
    requires: 'hello.down_applied beyond every dseq assigned is answered by error + close 4006',
  },
  'handshake.epoch-newer-wins': {
    section: '#handshake',
    requires: 'a hello with a higher epoch wins: the older connection gets error + close 4005',
  },
  'handshake.epoch-older-refused': {
    section: '#handshake',
    requires: 'a hello with an epoch lower than one seen is refused with error + close 4005',
  },
  'framing.unknown-op': {
    section: '#framing',
    requires: 'a frame with an unknown op is answered by error + close 4002',
  },
  'framing.not-json': {
    section: '#framing',
    requires: 'a text message that is not JSON is answered by error + close 4002',
  },
  'framing.event-before-hello': {
    section: '#handshake',
    requires: 'events before hello are answered by error + close 4002',
  },
  'framing.second-hello': {
    section: '#errors-and-close-codes',
    requires: 'a second hello on one connection is answered by error + close 4002',
  },
  'max-frame.at-limit': {
    section: '#limits-and-flow-control',
    requires: 'an events frame of exactly welcome.max_frame bytes (at most 1 MiB) is stored and acked',
  },
  'max-frame.above-limit': {
    section: '#limits-and-flow-control',
    requires: 'a frame of max_frame + 1 bytes closes the connection with 1009 (or error + 4003)',
  },
  'events.ack-cumulative': {
    section: '#ack-gateway--daemon',
    requires: 'ack.up never goes backwards, never passes what was sent, and reaches the last seq',
  },
  'events.gap-refused': {
    section: '#events-upstream',
    requires: 'an event whose seq skips one is answered by error + close 4006',
  },
  'events.resend-deduplicated': {
    section: '#events-upstream',
    requires: 'events resent on a new connection are stored once: acks and up_committed count them once',
  },
  'credit.replenished': {
    section: '#events-upstream',
    requires: 'with all credit used, acks raise up_limit, and the gateway accepts events up to it',
  },
  'credit.overrun-refused': {
    section: '#events-upstream',
    requires: 'an event with seq > up_limit is answered by error + close 4008',
  },
  'commands.result-accepted': {
    section: '#cack-daemon--gateway-and-what-happens-to-a-command',
    requires: 'a command.result event goes up like any event: stored and acked',
  },
  'liveness.pong': {
    section: '#liveness',
    requires: 'ping {t} is answered by pong with the same t',
  },
  'liveness.quiet-link': {
    section: '#liveness',
    requires:
      'on a quiet link (the daemon pings every hb_ms) the gateway stays, answers, and its own pings (optional) come every hb_ms',
  },
  'framing.gateway-frames': {
    section: '#framing',
    requires: 'every gateway frame of the run is one JSON text object, a valid down frame, at most 1 MiB',
  },
} as const satisfies Record<string, ClauseSpec>;

export type ClauseId = keyof typeof CLAUSES;

export const CLAUSE_IDS = Object.keys(CLAUSES) as ClauseId[];

/** pass: the rule held; fail: it was broken; not-observed: the kit could not see (never a pass). */
export type ClauseStatus = 'pass' | 'fail' | 'not-observed';

export interface ClauseResult {
  readonly id: ClauseId;
  readonly status: ClauseStatus;
  /** What the kit saw, in one line. */
  readonly saw: string;
}

export const pass = (id: ClauseId, saw: string): ClauseResult => ({ id, status: 'pass', saw });
export const fail = (id: ClauseId, saw: string): ClauseResult => ({ id, status: 'fail', saw });
export const notObserved = (id: ClauseId, saw: string): ClauseResult => ({ id, status: 'not-observed', saw });
