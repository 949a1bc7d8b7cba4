/**
 * docs/protocol.md, "Commands downstream": commands carry `dseq` 1, 2, 3… per daemon without a
 * skip; after `hello` the gateway sends every command with `dseq > down_applied` (so one never
 * acknowledged by `cack` comes again on the next connection), and forgets a command once
 * `cack.down` covers it. And "`cack` … and what happens to a command": the outcome goes up as a
 * `command.result` event, in `seq` order like any other event.
 *
 * The kit applies no command. It needs the gateway to have commands queued for its daemon id
 * (queued beforehand with `--daemon-id`, or while it waits, `--command-wait`); a clause it could
 * not observe for want of a command is reported as such, never as a pass. It answers every
 * command it received with a `rejected` result (CHECK_ONLY), which is the truth.
 */
import { randomBytes } from 'node:crypto';
import { errorCatalogue } from '../errors/catalogue.js';
import type { UpEvent } from '../protocol/gateway.js';
import { type ClauseResult, fail, notObserved, pass } from './clauses.js';
import type { CommandFrame } from './connection.js';
import { judgeAcked } from './expect-ack.js';
import type { CheckSession } from './session.js';
import { until } from './wait.js';

/** Results sent for at most this many commands (one frame). */
const MAX_RESULTS = 50;

/** The commands received on the first connection: what `checkCommandResult` answers. */
export interface CommandsSeen {
  readonly cmdIds: string[];
}

export async function checkCommands(session: CheckSession, seen: CommandsSeen): Promise<ClauseResult[]> {
  const results = await runCommandScenario(session, seen);
  await session.closeAll();
  return results;
}

async function runCommandScenario(session: CheckSession, seen: CommandsSeen): Promise<ClauseResult[]> {
  const { daemon } = session;
  const from = daemon.downApplied;
  const first = await session.welcomed();
  if (!first.ok) return allUnobserved(`no connection to receive commands on: ${first.why}`);

  // Connection A: take what the gateway sends, acknowledge nothing.
  const a = first.conn;
  await a.roundTrip(session.timeoutMs);
  if (a.commands().length === 0) {
    const seconds = Math.round(session.options.commandWaitMs / 1000);
    session.notice(
      `waiting up to ${seconds} s for a command: queue one (any kind) on the gateway for daemon ${daemon.daemonId}`,
    );
    await until(() => (a.commands().length > 0 || !a.open ? true : undefined), session.options.commandWaitMs);
    await a.roundTrip(session.timeoutMs); // the rest of a burst
  }
  const received = a.commands();
  seen.cmdIds.push(...new Set(received.map((command) => command.cmd_id)));
  const invalid = a.invalid.length > 0 ? `; invalid frames: ${a.invalid[0]}` : '';
  if (received.length === 0) {
    const why = `no command arrived within ${session.options.commandWaitMs} ms of welcome${invalid} (queue commands for daemon ${daemon.daemonId}, see --command-wait)`;
    return allUnobserved(why);
  }
  const order = judgeOrder(received, from);
  const dseqResult =
    order === null
      ? pass('commands.dseq-increasing', `${describe(received)} after down_applied ${from}`)
      : fail('commands.dseq-increasing', `${order}${invalid}`);
  const firstCommand = received[0] as CommandFrame;
  const last = highestDseq(received, 0);
  await a.close();

  // Connection B: the same down_applied, so the first command must come again.
  const second = await session.welcomed();
  if (!second.ok) {
    return [
      dseqResult,
      notObserved('commands.resent-without-cack', `no second connection: ${second.why}`),
      notObserved('commands.not-resent-after-cack', 'no second connection'),
    ];
  }
  const b = second.conn;
  const again = await until(
    () => b.commands().find((command) => command.dseq === firstCommand.dseq) ?? (b.open ? undefined : null),
    session.timeoutMs,
  );
  const resent =
    again === undefined || again === null
      ? fail(
          'commands.resent-without-cack',
          `dseq ${firstCommand.dseq} not sent again within ${session.timeoutMs} ms after hello with down_applied ${from} (${describe(b.commands())})`,
        )
      : again.cmd_id !== firstCommand.cmd_id
        ? fail(
            'commands.resent-without-cack',
            `dseq ${firstCommand.dseq} came again as cmd_id ${JSON.stringify(again.cmd_id)}, was ${JSON.stringify(firstCommand.cmd_id)}`,
          )
        : pass(
            'commands.resent-without-cack',
            `dseq ${firstCommand.dseq} (${JSON.stringify(firstCommand.cmd_id)}) again on the next connection (down_applied ${from})`,
          );
  const acknowledged = highestDseq(b.commands(), last);
  b.send({ op: 'cack', down: acknowledged });
  const cackRead = await b.roundTrip(session.timeoutMs);
  daemon.downApplied = acknowledged;
  if (!cackRead) {
    const closed = b.closeCode === null ? 'no pong' : `closed with ${b.closeCode}`;
    return [
      dseqResult,
      resent,
      fail('commands.not-resent-after-cack', `cack {down: ${acknowledged}} answered by ${closed}`),
    ];
  }
  await b.close();

  // Connection C: down_applied covers them; none may come again.
  const third = await session.welcomed();
  if (!third.ok)
    return [
      dseqResult,
      resent,
      notObserved('commands.not-resent-after-cack', `no third connection: ${third.why}`),
    ];
  const c = third.conn;
  await c.roundTrip(session.timeoutMs);
  await c.roundTrip(session.timeoutMs);
  const repeated = c.commands().filter((command) => command.dseq <= acknowledged);
  const after =
    repeated.length === 0
      ? pass(
          'commands.not-resent-after-cack',
          `nothing ≤ dseq ${acknowledged} after cack {down: ${acknowledged}} and hello down_applied ${acknowledged}`,
        )
      : fail(
          'commands.not-resent-after-cack',
          `sent again after cack {down: ${acknowledged}}: ${describe(repeated)}`,
        );
  return [dseqResult, resent, after];
}

/** Why the dseqs break "1, 2, 3… in the order it sends, after down_applied", or null. */
function judgeOrder(commands: readonly CommandFrame[], downApplied: number): string | null {
  const firstDseq = commands[0]?.dseq ?? 0;
  if (firstDseq <= downApplied) return `first dseq ${firstDseq} ≤ down_applied ${downApplied}`;
  for (let i = 1; i < commands.length; i += 1) {
    const previous = commands[i - 1]?.dseq ?? 0;
    const current = commands[i]?.dseq ?? 0;
    if (current !== previous + 1)
      return `dseq ${current} after ${previous} (expected ${previous + 1}): ${describe(commands)}`;
  }
  return null;
}

/** The highest dseq of `commands`, at least `floor` (a loop: there may be many). */
function highestDseq(commands: readonly CommandFrame[], floor: number): number {
  return commands.reduce((highest, command) => Math.max(highest, command.dseq), floor);
}

function describe(commands: readonly CommandFrame[]): string {
  if (commands.length === 0) return 'no command';
  const shown = commands.slice(0, 6).map((command) => `${command.dseq}:${command.kind}`);
  return `dseq ${shown.join(', ')}${commands.length > 6 ? ` … (${commands.length})` : ''}`;
}

function allUnobserved(why: string): ClauseResult[] {
  return [
    notObserved('commands.dseq-increasing', why),
    notObserved('commands.resent-without-cack', why),
    notObserved('commands.not-resent-after-cack', why),
  ];
}

/** `command.result` for what the kit received (or one made-up cmd_id): stored and acked. */
export async function checkCommandResult(session: CheckSession, seen: CommandsSeen): Promise<ClauseResult[]> {
  const result = await sendResults(session, seen);
  await session.closeAll();
  return [result];
}

async function sendResults(session: CheckSession, seen: CommandsSeen): Promise<ClauseResult> {
  const id = 'commands.result-accepted';
  const opened = await session.welcomed();
  if (!opened.ok) return notObserved(id, opened.why);
  const { conn, welcome } = opened;
  const cmdIds =
    seen.cmdIds.length > 0
      ? seen.cmdIds.slice(0, MAX_RESULTS)
      : [`gateway-check-${randomBytes(6).toString('hex')}`];
  const start = welcome.up_committed;
  if (welcome.up_limit < start + cmdIds.length)
    return notObserved(id, `credit ${welcome.up_limit - start} < ${cmdIds.length} events`);
  const events = cmdIds.map((cmdId, index) => resultEvent(session, start + 1 + index, cmdId));
  conn.sendEvents(events);
  return judgeAcked(
    id,
    conn,
    start + events.length,
    session.timeoutMs,
    `${events.length} command.result event(s) (rejected, CHECK_ONLY)`,
  );
}

function resultEvent(session: CheckSession, seq: number, cmdId: string): UpEvent {
  return session.daemon.remember({
    seq,
    run_id: null,
    run_seq: null,
    type: 'command.result',
    ts: new Date().toISOString(),
    data: {
      cmd_id: cmdId,
      status: 'rejected',
      error: {
        code: 'CHECK_ONLY',
        message: `${errorCatalogue.CHECK_ONLY.title} (daemon ${session.daemon.daemonId})`,
      },
    },
  });
}
