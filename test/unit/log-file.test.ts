import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RotatingLogFile } from '../../src/logging/log-file.js';
import { createDaemonLogger } from '../../src/logging/logger.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdl-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('RotatingLogFile', () => {
  it('creates the file 0600 and appends synchronously', () => {
    const path = join(tempDir(), 'daemon.log');
    const file = new RotatingLogFile({ path });
    file.write('one\n');
    expect(readFileSync(path, 'utf8')).toBe('one\n'); // on disk before close: a crash loses nothing
    file.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('stays bounded: rotates past maxBytes and keeps only `keep` old files', () => {
    const path = join(tempDir(), 'daemon.log');
    const file = new RotatingLogFile({ path, maxBytes: 100, keep: 2 });
    const line = `${'x'.repeat(39)}\n`; // 40 bytes
    for (let i = 0; i < 20; i++) file.write(line);
    file.close();
    expect(statSync(path).size).toBeLessThanOrEqual(100);
    expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(100);
    expect(statSync(`${path}.2`).size).toBeLessThanOrEqual(100);
    expect(existsSync(`${path}.3`)).toBe(false);
  });

  it('continues the size count of an existing file', () => {
    const path = join(tempDir(), 'daemon.log');
    const first = new RotatingLogFile({ path, maxBytes: 100 });
    first.write(`${'a'.repeat(79)}\n`);
    first.close();
    const second = new RotatingLogFile({ path, maxBytes: 100 });
    second.write(`${'b'.repeat(39)}\n`);
    second.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toMatch(/^a+\n$/);
    expect(readFileSync(path, 'utf8')).toMatch(/^b+\n$/);
  });
});

describe('daemon logger', () => {
  it('writes JSON lines with secrets redacted', async () => {
    const path = join(tempDir(), 'daemon.log');
    const { logger, close } = await createDaemonLogger({ logPath: path, level: 'debug', foreground: false });
    logger.info({ token: 'tok-123', gateway: { token: 'tok-456', url: 'http://x' } }, 'connecting');
    logger.debug({ headers: { authorization: 'Bearer tok-789' } }, 'upgrade');
    close();
    const text = readFileSync(path, 'utf8');
    for (const secret of ['tok-123', 'tok-456', 'tok-789']) expect(text).not.toContain(secret);
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ msg: 'connecting', token: '[redacted]', gateway: { url: 'http://x' } });
    expect(lines[1]).toMatchObject({ level: 20, headers: { authorization: '[redacted]' } });
  });
});
