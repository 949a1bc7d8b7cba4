/**
 * What every scenario of a check run shares: the endpoint, the token, the one daemon identity,
 * the log of gateway frames, the subprotocol offer that gets past the upgrade, and the bounds
 * on waiting. It opens connections and keeps track of them, so that each scenario ends with
 * all of its connections closed, one connection at a time (a second open connection of the
 * same daemon would supersede the first: "Handshake", 4005).
 */

import type { ClauseResult } from './clauses.js';
import {
  connect,
  DAEMON_OFFER,
  type ErrorFrame,
  type HelloFrame,
  type ScriptedConnection,
  type SubprotocolOffer,
  type UpgradeOutcome,
  type WelcomeFrame,
} from './connection.js';
import { CheckDaemon } from './daemon-identity.js';
import { FrameLog } from './frame-log.js';

export interface CheckOptions {
  /** The gateway address as a daemon takes it (`http://127.0.0.1:8765`). */
  readonly url: string;
  /** The WebSocket URL the daemon opens for it (`daemonEndpoint(url)`). */
  readonly endpoint: string;
  /** The bearer token a daemon would send. */
  readonly token: string;
  /** The daemon id to play (default: a fresh random one). */
  readonly daemonId?: string;
  /** The longest any one wait for the gateway lasts. */
  readonly timeoutMs: number;
  /** How long to wait for the gateway to send a first command. */
  readonly commandWaitMs: number;
  /** Where the kit says what it waits for (a person may have to act: queue a command). */
  readonly notice?: (text: string) => void;
}

export type Welcomed =
  | { readonly ok: true; readonly conn: ScriptedConnection; readonly welcome: WelcomeFrame }
  | { readonly ok: false; readonly why: string; readonly conn: ScriptedConnection | null };

export class CheckSession {
  readonly daemon: CheckDaemon;
  readonly log = new FrameLog();
  /** Changed by the subprotocol scenario when the gateway selects something else (so the rest can run). */
  offer: SubprotocolOffer = DAEMON_OFFER;
  readonly #open = new Set<ScriptedConnection>();

  constructor(readonly options: CheckOptions) {
    this.daemon = new CheckDaemon(options.daemonId);
  }

  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  notice(text: string): void {
    this.options.notice?.(text);
  }

  async connect(
    overrides: { token?: string | null; offer?: SubprotocolOffer } = {},
  ): Promise<UpgradeOutcome> {
    const outcome = await connect({
      endpoint: this.options.endpoint,
      token: overrides.token === undefined ? this.options.token : overrides.token,
      offer: overrides.offer ?? this.offer,
      timeoutMs: this.options.timeoutMs,
      log: this.log,
    });
    if (outcome.kind === 'open') this.#open.add(outcome.conn);
    return outcome;
  }

  /** An open connection (no hello yet), or why there is none. */
  async opened(): Promise<{ ok: true; conn: ScriptedConnection } | { ok: false; why: string }> {
    const outcome = await this.connect();
    if (outcome.kind === 'open') return { ok: true, conn: outcome.conn };
    return { ok: false, why: describeUpgrade(outcome) };
  }

  /** Opens a connection and says hello as the kit's daemon; the welcome, or why there is none. */
  async welcomed(hello: Partial<HelloFrame> = {}): Promise<Welcomed> {
    const opened = await this.opened();
    if (!opened.ok) return { ok: false, why: opened.why, conn: null };
    const { conn } = opened;
    const outcome = await conn.hello(this.daemon.hello(hello), this.options.timeoutMs);
    if (outcome.kind === 'welcome') {
      this.daemon.committed = outcome.welcome.up_committed;
      return { ok: true, conn, welcome: outcome.welcome };
    }
    const why =
      outcome.kind === 'closed'
        ? `hello answered by ${describeClose(outcome.code, outcome.error)}`
        : `no welcome within ${this.options.timeoutMs} ms${conn.invalid.length > 0 ? ` (invalid: ${conn.invalid[0]})` : ''}`;
    return { ok: false, why, conn };
  }

  /** Closes every connection this session opened and still holds. */
  async closeAll(): Promise<void> {
    const open = [...this.#open];
    this.#open.clear();
    await Promise.all(open.map((conn) => conn.close()));
  }
}

export function describeUpgrade(outcome: Exclude<UpgradeOutcome, { kind: 'open' }>): string {
  if (outcome.kind === 'refused') return `upgrade answered HTTP ${outcome.status}`;
  const selected =
    outcome.selected === undefined ? '' : ` (selected subprotocol ${JSON.stringify(outcome.selected)})`;
  return `upgrade failed: ${outcome.message}${selected}`;
}

export function describeClose(code: number, error: ErrorFrame | undefined): string {
  if (error === undefined) return `close ${code} (no error frame)`;
  return `error {code ${JSON.stringify(error.code)}, ${JSON.stringify(error.message.slice(0, 80))}} then close ${code}`;
}

/** One scenario of a clause group: it judges one clause on connections it opens through the session. */
export type Scenario = (session: CheckSession) => Promise<ClauseResult>;

/**
 * Runs scenarios one after the other, each ending with every connection it opened closed (one
 * connection at a time: a second one of the same daemon would supersede the first).
 */
export async function inTurn(session: CheckSession, scenarios: readonly Scenario[]): Promise<ClauseResult[]> {
  const results: ClauseResult[] = [];
  for (const scenario of scenarios) {
    results.push(await scenario(session));
    await session.closeAll();
  }
  return results;
}
