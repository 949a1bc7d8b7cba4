/**
 * `charter-daemon gateway-check` through the built CLI against the repo's strict gateway
 * (GatewayPeer on 127.0.0.1): every clause holds and it exits 0; a broken gateway fails its
 * clause and exits 1; commands queued when the kit asks for them are seen; bad flags exit 2 and
 * an address where nothing listens exits 1 with GATEWAY_UNREACHABLE.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLAUSE_IDS } from '../../src/gateway-check/clauses.js';
import type { CheckReport } from '../../src/gateway-check/report.js';
import { GatewayPeer, type GatewayPeerOptions } from '../../src/gateway-server/gateway-peer.js';
import { assertBuilt, cliPath, parseJson, runCli } from '../support/cli.js';

const TOKEN = 'tok-check-SECRET';
const cleanups: (() => Promise<void> | void)[] = [];
let tokenDir = '';
let tokenFile = '';

beforeAll(() => {
  assertBuilt();
  tokenDir = mkdtempSync(join(tmpdir(), 'gwc-'));
  tokenFile = join(tokenDir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});
afterAll(() => rmSync(tokenDir, { recursive: true, force: true }));
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(options: GatewayPeerOptions = {}, commands = 2): Promise<GatewayPeer> {
  const peer = await GatewayPeer.start({ token: TOKEN, hbMs: 500, ...options });
  cleanups.push(() => peer.stop());
  for (let i = 1; i <= commands; i += 1) {
    peer.sendCommand({ cmd_id: `c-${i}`, kind: 'run.start', args: { workflow_id: 'greet' } });
  }
  return peer;
}

const check = (url: string, ...flags: string[]) =>
  runCli(['gateway-check', url, '--token-file', tokenFile, '--timeout', '3', ...flags], {
    timeoutMs: 30_000,
  });

describe('charter-daemon gateway-check', () => {
  it('passes every clause of the strict gateway and exits 0 (--json)', async () => {
    const peer = await gateway();
    const result = await check(peer.url, '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = parseJson<CheckReport>(result.stdout);
    expect(report.clauses.map((clause) => clause.id)).toEqual(CLAUSE_IDS);
    expect(report.clauses.filter((clause) => !clause.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.clauses[0]).toMatchObject({
      id: 'upgrade.no-token',
      section: 'docs/protocol.md#the-upgrade-request',
    });
    expect(report.endpoint).toBe(`${peer.url.replace(/^http/, 'ws')}/v1/daemon`);
    // The token never shows.
    expect(result.stdout + result.stderr).not.toContain(TOKEN);
  });

  it('prints the table and exits 1 when a clause fails (acks that go backwards)', async () => {
    const peer = await gateway({ misbehave: { ackBackwards: true } });
    const result = await check(peer.url);
    expect(result.code, result.stderr).toBe(1);
    const rows = result.stdout.split('\n').filter((line) => /^[a-z-]+\.[a-z-]+ /.test(line));
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(CLAUSE_IDS);
    const failing = rows.filter((row) => /\sFAIL\s/.test(row)).map((row) => row.split(/\s+/)[0]);
    expect(failing).toEqual(['events.ack-cumulative']);
    expect(result.stdout).toContain('went backwards');
    expect(result.stdout).toMatch(/27 of 28 clauses hold; 1 failed, 0 not observed/);
  });

  it('asks for a command on stderr and sees one queued then', async () => {
    const peer = await gateway({}, 0);
    const child = spawn(
      process.execPath,
      [cliPath, 'gateway-check', peer.url, '--token-file', tokenFile, '--json', '--command-wait', '20'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      const before = stderr;
      stderr += chunk.toString();
      if (!before.includes('queue one') && stderr.includes('queue one')) {
        peer.sendCommand({ cmd_id: 'asked-for', kind: 'run.start', args: { workflow_id: 'greet' } });
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const report = parseJson<CheckReport>(stdout);
    expect(stderr).toContain(`for daemon ${report.daemon_id}`);
    expect(code, stderr).toBe(0);
    expect(report.clauses.find((clause) => clause.id === 'commands.dseq-increasing')?.saw).toContain(
      'dseq 1:run.start',
    );
  });

  it('exits 2 on bad flags, with INVALID_FLAG', async () => {
    const peer = await gateway();
    const noToken = await runCli(['gateway-check', peer.url, '--json'], {
      env: { CHARTER_GATEWAY_TOKEN: '' },
    });
    expect(noToken.code).toBe(2);
    expect(parseJson<{ error: { code: string; message: string } }>(noToken.stdout).error).toMatchObject({
      code: 'INVALID_FLAG',
      message: expect.stringContaining('--token-file'),
    });
    const badUrl = await check('ftp://example.invalid');
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('INVALID_FLAG');
    const badTimeout = await check(peer.url, '--timeout', '0');
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toContain('--timeout');
    const missing = await runCli([
      'gateway-check',
      peer.url,
      '--token-file',
      join(tmpdir(), 'gwc-no-such-file'),
    ]);
    expect(missing.code).toBe(2);
    // None of them connected.
    expect(peer.upgrades).toEqual([]);
  });

  it('exits 1 with GATEWAY_UNREACHABLE when nothing listens at the address', async () => {
    const server = createServer();
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      }),
    );
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const result = await check(`http://127.0.0.1:${port}`, '--json');
    expect(result.code).toBe(1);
    expect(parseJson<{ error: { code: string } }>(result.stdout).error.code).toBe('GATEWAY_UNREACHABLE');
  });
});
