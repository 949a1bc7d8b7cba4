/**
 * docs/protocol.md, "The upgrade request": the bearer token is checked (401 without one; 401 or
 * 403 for a wrong one, which the daemon treats alike: "Refused upgrades"), and the gateway
 * selects `charter.v1` ("The gateway must select it"), so a client that does not offer it gets
 * no charter.v1 session (the test gateway answers 400).
 *
 * When the gateway selects something else, `subprotocol.selected` fails and the session learns
 * an offer that gets past the upgrade anyway, so that every other clause is still checked.
 */
import { randomBytes } from 'node:crypto';
import { CharterError } from '../errors/charter-error.js';
import { GATEWAY_SUBPROTOCOL } from '../protocol/gateway.js';
import { type ClauseId, type ClauseResult, fail, pass } from './clauses.js';
import type { SubprotocolOffer, UpgradeOutcome } from './connection.js';
import { type CheckSession, describeUpgrade } from './session.js';

/** Errors that mean nothing answers at the address at all (not a clause of the protocol). */
/** RFC 6455 §4.1: a subprotocol is an HTTP token. */
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$/;
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export async function checkUpgrade(session: CheckSession): Promise<ClauseResult[]> {
  const noToken = await session.connect({ token: null });
  if (noToken.kind === 'failed' && noToken.code !== undefined && UNREACHABLE.has(noToken.code)) {
    throw new CharterError(
      'GATEWAY_UNREACHABLE',
      `nothing answers at ${session.options.endpoint}: ${noToken.message}`,
    );
  }
  const results = [judgeRefusal('upgrade.no-token', noToken, [401])];
  const wrongToken = await session.connect({
    token: `gateway-check-wrong-${randomBytes(8).toString('hex')}`,
  });
  results.push(judgeRefusal('upgrade.wrong-token', wrongToken, [401, 403]));
  results.push(await checkSelected(session));
  results.push(
    judgeRefusal('subprotocol.none-offered', await session.connect({ offer: { kind: 'none' } }), 'any-4xx'),
  );
  const other: SubprotocolOffer = { kind: 'list', protocols: ['charter.v0'] };
  results.push(judgeRefusal('subprotocol.other-offered', await session.connect({ offer: other }), 'any-4xx'));
  await session.closeAll();
  return results;
}

function judgeRefusal(
  id: ClauseId,
  outcome: UpgradeOutcome,
  statuses: readonly number[] | 'any-4xx',
): ClauseResult {
  const wanted = statuses === 'any-4xx' ? 'a 4xx status' : statuses.join(' or ');
  if (outcome.kind === 'open') {
    const selected =
      outcome.conn.selected === undefined ? 'no subprotocol' : `subprotocol ${outcome.conn.selected}`;
    return fail(id, `upgrade accepted (101, ${selected}); expected ${wanted}`);
  }
  if (outcome.kind === 'failed') return fail(id, `${describeUpgrade(outcome)}; expected ${wanted}`);
  const ok =
    statuses === 'any-4xx'
      ? outcome.status >= 400 && outcome.status < 500
      : statuses.includes(outcome.status);
  const challenge = outcome.headers['www-authenticate'];
  const saw = `HTTP ${outcome.status}${challenge === undefined ? '' : ` (WWW-Authenticate: ${String(challenge).slice(0, 60)})`}`;
  return ok ? pass(id, saw) : fail(id, `${saw}; expected ${wanted}`);
}

/** Offers charter.v1 as the daemon does; on a wrong answer, finds an offer that gets through. */
async function checkSelected(session: CheckSession): Promise<ClauseResult> {
  const id = 'subprotocol.selected';
  // The daemon's client cannot tell what was selected when it is wrong: read the raw answer.
  const outcome = await session.connect();
  if (outcome.kind === 'refused')
    return fail(id, `${describeUpgrade(outcome)} (with the token and charter.v1)`);
  if (outcome.kind === 'open') {
    await outcome.conn.close();
    return pass(id, `101, Sec-WebSocket-Protocol: ${GATEWAY_SUBPROTOCOL}`);
  }
  if (!outcome.upgraded) return fail(id, describeUpgrade(outcome));
  if (outcome.selected === undefined) {
    session.offer = { kind: 'header', value: GATEWAY_SUBPROTOCOL };
    return fail(
      id,
      `101 without Sec-WebSocket-Protocol: a daemon's ws client fails the handshake (${outcome.message})`,
    );
  }
  if (outcome.selected !== GATEWAY_SUBPROTOCOL) {
    // Offering what it selects as well gets past ws's check (when it is a valid token at all).
    if (SUBPROTOCOL_TOKEN.test(outcome.selected)) {
      session.offer = { kind: 'list', protocols: [GATEWAY_SUBPROTOCOL, outcome.selected] };
    }
    return fail(
      id,
      `101 selecting ${JSON.stringify(outcome.selected)}: a daemon's ws client fails the handshake`,
    );
  }
  return fail(id, describeUpgrade(outcome));
}
