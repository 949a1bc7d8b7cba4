/**
 * The one daemon the kit plays for a whole check run. A real gateway keeps one stream per
 * `daemon_id` and remembers its epochs, seqs and commands across connections (docs/protocol.md,
 * "Handshake", "Events upstream"), so every scenario speaks as the same daemon: one id (a fresh
 * random one unless given), an epoch that only grows, seqs that go on from the gateway's last
 * `up_committed`, and a `down_applied` that moves only when the kit acknowledged commands.
 */
import { randomUUID } from 'node:crypto';
import { GATEWAY_PROTOCOL_VERSION, type UpEvent } from '../protocol/gateway.js';
import { packageVersion } from '../version.js';
import type { HelloFrame } from './connection.js';

/** The `type` of every event the kit makes up (daemon-level: run_id and run_seq null). */
export const PROBE_EVENT_TYPE = 'gateway-check.probe';
/** At most this many events are kept for resending with identical content. */
const MAX_EVENTS_KEPT = 100_000;

export class CheckDaemon {
  readonly daemonId: string;
  /** True when the id was made for this run: the gateway must know nothing of it. */
  readonly fresh: boolean;
  /** Milliseconds since 1970 at the start: above the epoch of any earlier run with the same id. */
  epoch: number;
  /** The epoch the run started with: every hello of the run has at least this one. */
  readonly firstEpoch: number;
  downApplied = 0;
  /** Highest seq the gateway said it holds (the last welcome's up_committed). */
  committed = 0;
  readonly #events = new Map<number, UpEvent>();

  constructor(daemonId?: string, now = Date.now()) {
    this.daemonId = daemonId ?? randomUUID();
    this.fresh = daemonId === undefined;
    this.epoch = Math.max(2, now);
    this.firstEpoch = this.epoch;
  }

  hello(overrides: Partial<HelloFrame> = {}): HelloFrame {
    return {
      op: 'hello',
      protocol: GATEWAY_PROTOCOL_VERSION,
      daemon_id: this.daemonId,
      epoch: this.epoch,
      daemon_version: packageVersion,
      project: { name: 'gateway-check' },
      down_applied: this.downApplied,
      ...overrides,
    };
  }

  /**
   * The event with this seq: made once, then the same content every time (a resend carries
   * identical content, "Events upstream"). `data` names the clause that made it; `pad` adds a
   * string of that many characters (to size a frame).
   */
  event(seq: number, clause: string, pad = 0): UpEvent {
    const known = this.#events.get(seq);
    if (known !== undefined && pad === 0) return known;
    const event: UpEvent = {
      seq,
      run_id: null,
      run_seq: null,
      type: PROBE_EVENT_TYPE,
      ts: new Date().toISOString(),
      data: pad === 0 ? { clause } : { clause, pad: 'x'.repeat(pad) },
    };
    if (this.#events.size >= MAX_EVENTS_KEPT) this.#events.clear();
    this.#events.set(seq, event);
    return event;
  }

  /** Keeps an event made elsewhere (a `command.result`) as the content of its seq from now on. */
  remember(event: UpEvent): UpEvent {
    if (this.#events.size >= MAX_EVENTS_KEPT) this.#events.clear();
    this.#events.set(event.seq, event);
    return event;
  }

  /** The events `from` … `to` (inclusive). */
  events(from: number, to: number, clause: string): UpEvent[] {
    const events: UpEvent[] = [];
    for (let seq = from; seq <= to; seq += 1) events.push(this.event(seq, clause));
    return events;
  }
}
