/**
 * Runs every scenario in order against one gateway, as one daemon, and returns a result for
 * every clause of `CLAUSES`: a scenario that throws fails its clauses with what it threw, a
 * clause no scenario reported is "not observed". Every connection is closed after each scenario.
 * Order matters: the command scenario goes first, so that its first connection is the first to
 * receive the commands queued for the daemon.
 */
import { isCharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { CLAUSE_IDS, CLAUSES, type ClauseId, type ClauseResult } from './clauses.js';
import { type CommandsSeen, checkCommandResult, checkCommands } from './command-checks.js';
import { checkCredit } from './credit-checks.js';
import { checkEvents } from './event-checks.js';
import { checkFrameSize } from './frame-size-checks.js';
import { checkFraming, checkGatewayFrames } from './framing-checks.js';
import { checkHandshake } from './handshake-checks.js';
import { checkLiveness } from './liveness-checks.js';
import { type CheckReport, reportOf } from './report.js';
import { type CheckOptions, CheckSession } from './session.js';
import { checkUpgrade } from './upgrade-checks.js';

interface Scenario {
  /** The clauses it reports (failed together when it throws). */
  readonly clauses: readonly ClauseId[];
  readonly run: (session: CheckSession) => Promise<ClauseResult[]> | ClauseResult[];
}

function scenarios(): Scenario[] {
  const seen: CommandsSeen = { cmdIds: [] };
  return [
    {
      clauses: [
        'upgrade.no-token',
        'upgrade.wrong-token',
        'subprotocol.selected',
        'subprotocol.none-offered',
        'subprotocol.other-offered',
      ],
      run: checkUpgrade,
    },
    {
      clauses: ['commands.dseq-increasing', 'commands.resent-without-cack', 'commands.not-resent-after-cack'],
      run: (session) => checkCommands(session, seen),
    },
    {
      clauses: [
        'handshake.welcome',
        'handshake.unsupported-protocol',
        'handshake.down-applied-ahead',
        'handshake.epoch-newer-wins',
        'handshake.epoch-older-refused',
      ],
      run: checkHandshake,
    },
    {
      clauses: [
        'framing.unknown-op',
        'framing.not-json',
        'framing.event-before-hello',
        'framing.second-hello',
      ],
      run: checkFraming,
    },
    { clauses: ['max-frame.at-limit', 'max-frame.above-limit'], run: checkFrameSize },
    {
      clauses: ['events.ack-cumulative', 'events.gap-refused', 'events.resend-deduplicated'],
      run: checkEvents,
    },
    { clauses: ['credit.replenished', 'credit.overrun-refused'], run: checkCredit },
    { clauses: ['commands.result-accepted'], run: (session) => checkCommandResult(session, seen) },
    { clauses: ['liveness.pong', 'liveness.quiet-link'], run: checkLiveness },
    { clauses: ['framing.gateway-frames'], run: checkGatewayFrames },
  ];
}

export async function runGatewayCheck(options: CheckOptions): Promise<CheckReport> {
  const session = new CheckSession(options);
  const results = new Map<ClauseId, ClauseResult>();
  try {
    for (const scenario of scenarios()) {
      try {
        for (const result of await scenario.run(session)) results.set(result.id, result);
      } catch (error) {
        if (isCharterError(error)) throw error; // the gateway cannot be checked at all
        const why = `the check itself failed: ${errorMessage(error)}`;
        for (const id of scenario.clauses)
          if (!results.has(id)) results.set(id, { id, status: 'fail', saw: why });
      } finally {
        await session.closeAll();
      }
    }
  } finally {
    await session.closeAll();
  }
  const clauses = CLAUSE_IDS.map(
    (id) =>
      results.get(id) ?? {
        id,
        status: 'not-observed' as const,
        saw: `no scenario checked it (${CLAUSES[id].requires})`,
      },
  );
  return reportOf(options, session.daemon.daemonId, clauses);
}
