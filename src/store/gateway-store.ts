/**
 * The store's side of the gateway link. Upstream, the outbox is simply the journal after the
 * gateway's cumulative ack (`meta.up_acked`): acked events stay in the journal (the audit trail)
 * and leave the outbox by moving the cursor. Downstream, every command is stored in the inbox
 * before it is acknowledged (`cack`), and its cmd_id is unique: applied at most once.
 */
import type Database from 'better-sqlite3';
import type { CommandFrame, UpEvent } from '../protocol/gateway.js';
import type { JournalEntry, JournalRow, NewJournalEntry } from './journal-entry.js';

export type ReceivedCommand =
  /** New: stored as pending, to be applied. */
  | { kind: 'new' }
  /**
   * A cmd_id seen before (under another dseq): not applied again. Its `duplicate` result was
   * journaled in the same transaction that moved `down_applied` past it.
   */
  | { kind: 'duplicate'; status: InboxStatus }
  /** A dseq already stored (a resend): nothing to do but acknowledge. */
  | { kind: 'resent' }
  /** Unusable contents: stored as rejected and answered, nothing to apply. */
  | { kind: 'rejected' };

/** A command frame whose envelope is sound but whose contents cannot be applied. */
export interface RejectedCommand {
  readonly dseq: number;
  readonly cmdId: string;
  /** As sent, cut to a bounded length. */
  readonly kind: string;
  readonly runId: string | null;
  /** A bounded copy of the args (JSON), for the audit trail. */
  readonly argsCopy: string;
  readonly error: { readonly code: string; readonly message: string };
}

export type InboxStatus = 'pending' | 'applied' | 'rejected';

/** What became of a command, as its `command.result` reports it. */
export interface CommandOutcome {
  readonly status: 'applied' | 'rejected';
  readonly error?: { readonly code: string; readonly message: string };
  readonly runId?: string;
}

export interface PendingCommand {
  readonly dseq: number;
  readonly cmdId: string;
  readonly kind: CommandFrame['kind'];
  readonly runId: string | null;
  readonly args: Record<string, unknown>;
}

export class GatewayStore {
  readonly #db: Database.Database;
  #maxFrame: number | null | undefined;
  readonly #append: (entry: NewJournalEntry) => JournalEntry;
  readonly #getMeta: Database.Statement<[string], { value: string }>;
  readonly #setMeta: Database.Statement<[string, string]>;
  readonly #outbox: Database.Statement<[number, number], JournalRow>;
  readonly #tsAt: Database.Statement<[number], { ts: string }>;
  readonly #lastSeq: Database.Statement<[], { seq: number | null }>;
  readonly #byCmdId: Database.Statement<[string], { status: InboxStatus }>;
  readonly #byDseq: Database.Statement<[number], { dseq: number }>;
  readonly #insertCommand: Database.Statement<[number, string, string, string | null, string, string]>;
  readonly #pending: Database.Statement<
    [],
    { dseq: number; cmd_id: string; kind: string; run_id: string | null; args: string }
  >;
  readonly #settle: Database.Statement<[string, string | null, string]>;
  readonly #insertRejected: Database.Statement<
    [number, string, string, string | null, string, string, string]
  >;
  readonly #runOf: Database.Statement<[string], { run_id: string | null }>;
  readonly #kindOf: Database.Statement<[string], { kind: string }>;
  readonly #assignRun: Database.Statement<[string, string]>;

  constructor(db: Database.Database, append: (entry: NewJournalEntry) => JournalEntry) {
    this.#db = db;
    this.#append = append;
    this.#getMeta = db.prepare('SELECT value FROM meta WHERE key = ?');
    this.#setMeta = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.#outbox = db.prepare(
      'SELECT seq, ts, run_id, run_seq, type, data FROM journal WHERE seq > ? ORDER BY seq LIMIT ?',
    );
    this.#tsAt = db.prepare('SELECT ts FROM journal WHERE seq > ? ORDER BY seq LIMIT 1');
    this.#lastSeq = db.prepare('SELECT max(seq) AS seq FROM journal');
    this.#byCmdId = db.prepare('SELECT status FROM inbox WHERE cmd_id = ?');
    this.#byDseq = db.prepare('SELECT dseq FROM inbox WHERE dseq = ?');
    this.#insertCommand = db.prepare(
      'INSERT INTO inbox (dseq, cmd_id, kind, run_id, args, received_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.#pending = db.prepare(
      "SELECT dseq, cmd_id, kind, run_id, args FROM inbox WHERE status = 'pending' ORDER BY dseq",
    );
    this.#insertRejected = db.prepare(
      `INSERT INTO inbox (dseq, cmd_id, kind, run_id, args, received_at, status, result)
       VALUES (?, ?, ?, ?, ?, ?, 'rejected', ?)`,
    );
    this.#settle = db.prepare('UPDATE inbox SET status = ?, result = ? WHERE cmd_id = ?');
    this.#runOf = db.prepare('SELECT run_id FROM inbox WHERE cmd_id = ?');
    this.#kindOf = db.prepare('SELECT kind FROM inbox WHERE cmd_id = ?');
    this.#assignRun = db.prepare('UPDATE inbox SET run_id = ? WHERE cmd_id = ?');
  }

  /** The `max_frame` the gateway announced last (step output is split to fit it), if any. */
  maxFrame(): number | null {
    if (this.#maxFrame === undefined) {
      const value = this.#getMeta.get('max_frame')?.value;
      this.#maxFrame = value === undefined ? null : Number(value);
    }
    return this.#maxFrame;
  }

  rememberMaxFrame(maxFrame: number): void {
    if (this.maxFrame() === maxFrame) return;
    this.#setMeta.run('max_frame', String(maxFrame));
    this.#maxFrame = maxFrame;
  }

  /** Every seq ≤ this is durably stored by the gateway. */
  upAcked(): number {
    return Number(this.#getMeta.get('up_acked')?.value ?? 0);
  }

  /** Moves the cursor forward (never back: acks are cumulative and may arrive out of date). */
  ackUp(up: number): number {
    const current = this.upAcked();
    if (up > current) this.#setMeta.run('up_acked', String(up));
    return Math.max(up, current);
  }

  /** Events after `afterSeq`, in seq order, as sent upstream. */
  outbox(afterSeq: number, limit: number): UpEvent[] {
    return this.#outbox.all(afterSeq, limit).map((row) => ({
      seq: row.seq,
      run_id: row.run_id,
      run_seq: row.run_seq,
      type: row.type,
      ts: row.ts,
      data: JSON.parse(row.data) as unknown,
    }));
  }

  lastSeq(): number {
    return this.#lastSeq.get()?.seq ?? 0;
  }

  /** Unacked events, and the time of the oldest one (null when the outbox is empty). */
  backlog(): { count: number; oldestTs: string | null } {
    const acked = this.upAcked();
    const count = Math.max(0, this.lastSeq() - acked);
    return { count, oldestTs: count === 0 ? null : (this.#tsAt.get(acked)?.ts ?? null) };
  }

  /** Highest dseq durably stored; the gateway resends what follows. */
  downApplied(): number {
    return Number(this.#getMeta.get('down_applied')?.value ?? 0);
  }

  /** Stores a command before it is acknowledged, and tells what to do with it. */
  receiveCommand(frame: CommandFrame, now: Date = new Date()): ReceivedCommand {
    return this.#receive(frame.dseq, frame.cmd_id, () => {
      this.#insertCommand.run(
        frame.dseq,
        frame.cmd_id,
        frame.kind,
        // A run.start names no run: the daemon picks the id (assignRun) and keeps it here.
        frame.kind === 'run.start' ? null : (frame.run_id ?? null),
        JSON.stringify(frame.args),
        now.toISOString(),
      );
      return { kind: 'new' };
    });
  }

  /**
   * Stores a command whose contents are unusable (unknown kind, bad or oversized args) as
   * rejected, with its `command.result`, in the transaction that moves `down_applied` past it:
   * it is acknowledged and answered like any other, so it can never come back and wedge the link.
   */
  receiveRejectedCommand(command: RejectedCommand, now: Date = new Date()): ReceivedCommand {
    return this.#receive(command.dseq, command.cmdId, () => {
      this.#insertRejected.run(
        command.dseq,
        command.cmdId,
        command.kind,
        command.runId,
        command.argsCopy,
        now.toISOString(),
        JSON.stringify(command.error),
      );
      this.#journalResult(command.cmdId, { status: 'rejected', error: command.error });
      return { kind: 'rejected' };
    });
  }

  #receive(dseq: number, cmdId: string, store: () => ReceivedCommand): ReceivedCommand {
    return this.#db.transaction((): ReceivedCommand => {
      if (this.#byDseq.get(dseq) !== undefined || dseq <= this.downApplied()) return { kind: 'resent' };
      const seen = this.#byCmdId.get(cmdId);
      this.#setMeta.run('down_applied', String(dseq));
      if (seen !== undefined) {
        // Together with the dseq advance: once the gateway may forget this frame, its answer is
        // stored (a crash in between would otherwise leave the resend unanswered forever).
        this.#journalResult(cmdId, { status: 'duplicate' });
        return { kind: 'duplicate', status: seen.status };
      }
      return store();
    })();
  }

  /** The run a command is about (for run.start: the run it created), if known. */
  commandRun(cmdId: string): string | null {
    return this.#runOf.get(cmdId)?.run_id ?? null;
  }

  /** The kind of a stored command (as the gateway sent it), if the command is known. */
  commandKind(cmdId: string): string | null {
    return this.#kindOf.get(cmdId)?.kind ?? null;
  }

  /** Remembers the run id chosen for a run.start before the run is submitted. */
  assignRun(cmdId: string, runId: string): void {
    this.#assignRun.run(runId, cmdId);
  }

  /** Commands stored but not yet applied (after a crash between storing and applying). */
  pendingCommands(): PendingCommand[] {
    return this.#pending.all().map((row) => ({
      dseq: row.dseq,
      cmdId: row.cmd_id,
      kind: row.kind as CommandFrame['kind'],
      runId: row.run_id,
      args: JSON.parse(row.args) as Record<string, unknown>,
    }));
  }

  /**
   * Records what became of a command and the `command.result` event reporting it upstream, in
   * one transaction (joining the caller's, when there is one: a run's checkpoint settles the
   * command it applied in its own transaction). A command is settled once: settling one that is
   * no longer pending does nothing and returns undefined.
   */
  settleCommand(cmdId: string, result: CommandOutcome): JournalEntry | undefined {
    return this.#db.transaction(() => {
      if (this.#byCmdId.get(cmdId)?.status !== 'pending') return undefined;
      this.#settle.run(
        result.status,
        result.error === undefined ? null : JSON.stringify(result.error),
        cmdId,
      );
      return this.#journalResult(cmdId, result);
    })();
  }

  #journalResult(cmdId: string, result: CommandOutcome | { status: 'duplicate' }): JournalEntry {
    const { error, runId } = result as CommandOutcome;
    return this.#append({
      type: 'command.result',
      runId: null,
      data: {
        cmd_id: cmdId,
        status: result.status,
        ...(error === undefined ? {} : { error }),
        ...(runId === undefined ? {} : { run_id: runId }),
      },
    });
  }
}
