/**
 * The conformance kit (src/gateway-check/) in-process against the repo's strict gateway
 * (GatewayPeer) on 127.0.0.1: the strict gateway passes every clause, and each deliberately
 * broken one (GatewayPeer's `misbehave`) fails exactly the clause it breaks and no other. A
 * gateway with no command queued leaves the command clauses "not observed", never passed.
 */
import { describe, expect, it } from 'vitest';
import { daemonEndpoint } from '../../src/gateway/endpoint.js';
import { CLAUSE_IDS } from '../../src/gateway-check/clauses.js';
import { reportLines } from '../../src/gateway-check/report.js';
import { runGatewayCheck } from '../../src/gateway-check/runner.js';
import { type GatewayMisbehaviour, GatewayPeer } from '../../src/gateway-server/gateway-peer.js';
import { withDeadline } from '../support/control-peer.js';

const TOKEN = 'test-token';

/**
 * Runs `body` with a test gateway that has `commands` commands queued (the kit's command
 * clauses need some), and stops that gateway afterwards (each test its own: they run at once).
 */
async function withPeer(
  options: { misbehave?: GatewayMisbehaviour; commands?: number },
  body: (peer: GatewayPeer) => Promise<void>,
): Promise<void> {
  const misbehave = options.misbehave;
  const peer = await GatewayPeer.start({ hbMs: 500, ...(misbehave === undefined ? {} : { misbehave }) });
  try {
    for (let i = 1; i <= (options.commands ?? 2); i += 1) {
      peer.sendCommand({ cmd_id: `c-${i}`, kind: 'run.start', args: { workflow_id: 'greet' } });
    }
    await body(peer);
  } finally {
    await withDeadline(peer.stop(), 'GatewayPeer.stop()');
  }
}

function check(peer: GatewayPeer, commandWaitMs = 1_000) {
  return runGatewayCheck({
    url: peer.url,
    endpoint: daemonEndpoint(peer.url),
    token: TOKEN,
    timeoutMs: 2_000,
    commandWaitMs,
  });
}

describe('gateway-check against the strict test gateway', () => {
  it('passes every clause, each reported once in the documented order', () =>
    withPeer({}, async (peer) => {
      const report = await check(peer);
      expect(report.clauses.map((clause) => clause.id)).toEqual(CLAUSE_IDS);
      expect(report.clauses.filter((clause) => !clause.ok)).toEqual([]);
      expect(report.ok).toBe(true);
      // One daemon for the whole run, and its stream is what the kit says it sent: each seq once.
      expect(new Set(peer.connections.map((conn) => conn.daemonId).filter((id) => id !== null))).toEqual(
        new Set([report.daemon_id]),
      );
      expect(peer.events.every((event, index) => event.seq === index + 1)).toBe(true);
      expect(peer.conflictingDuplicates()).toEqual([]);
      expect(peer.commandAcks).toContain(2);
      // Every connection it opened is closed.
      await peer.waitFor(
        () => peer.connections.every((conn) => conn.closedAt !== null),
        3_000,
        'every connection closed',
      );
      expect(reportLines(report).at(-1)).toBe(`all ${CLAUSE_IDS.length} clauses hold`);
    }));

  it('reports the command clauses as not observed (never passed) when no command is queued', () =>
    withPeer({ commands: 0 }, async (peer) => {
      const report = await check(peer, 200);
      const notOk = report.clauses.filter((clause) => !clause.ok);
      expect(notOk.map((clause) => [clause.id, clause.status])).toEqual([
        ['commands.dseq-increasing', 'not-observed'],
        ['commands.resent-without-cack', 'not-observed'],
        ['commands.not-resent-after-cack', 'not-observed'],
      ]);
      expect(notOk[0]?.saw).toContain(report.daemon_id);
      expect(report.ok).toBe(false);
      // command.result is still checked, with a made-up cmd_id.
      expect(report.clauses.find((clause) => clause.id === 'commands.result-accepted')?.ok).toBe(true);
    }));
});

describe.concurrent('gateway-check against deliberately broken gateways', () => {
  const broken: [string, GatewayMisbehaviour, string[]][] = [
    ['a wrong subprotocol', { subprotocol: 'charter.v0' }, ['subprotocol.selected']],
    ['no subprotocol selected', { subprotocol: '' }, ['subprotocol.selected']],
    ['acks that go backwards', { ackBackwards: true }, ['events.ack-cumulative']],
    ['credit ignored', { ignoreCredit: true }, ['credit.overrun-refused']],
    ['no dedupe of resent events', { noDedupe: true }, ['events.resend-deduplicated']],
    ['commands never resent', { noCommandResend: true }, ['commands.resent-without-cack']],
  ];
  for (const [name, misbehave, failing] of broken) {
    it(`${name}: fails exactly ${failing.join(', ')}`, () =>
      withPeer({ misbehave }, async (peer) => {
        const report = await check(peer);
        const notOk = report.clauses.filter((clause) => !clause.ok);
        expect(notOk.map((clause) => clause.id)).toEqual(failing);
        expect(notOk.every((clause) => clause.status === 'fail')).toBe(true);
        expect(report.ok).toBe(false);
      }));
  }
});
