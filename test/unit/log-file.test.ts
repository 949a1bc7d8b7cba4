import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type LogRecovery, RotatingLogFile } from '../../src/logging/log-file.js';
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

/** A clock the test moves: retries are paced by it. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let time = Date.parse('2030-01-01T00:00:00Z');
  return { now: () => time, advance: (ms) => (time += ms) };
}

describe('RotatingLogFile when the file cannot be written', () => {
  it('drops and counts lines on ENOSPC (/dev/full), never throws, and recovers when the path works again', async () => {
    const dir = tempDir();
    const path = join(dir, 'daemon.log');
    symlinkSync('/dev/full', path); // every write fails with ENOSPC, from the kernel
    const clock = manualClock();
    const recoveries: LogRecovery[] = [];
    const file = new RotatingLogFile({
      path,
      retryMs: 1000,
      now: clock.now,
      onRecovered: (recovery) => recoveries.push(recovery),
    });
    for (let i = 0; i < 5; i++) expect(file.write(`line ${i}\n`)).toBe(true);
    expect(file.health()).toMatchObject({ path, droppedLines: 5, failing: true });
    expect(file.health().lastError).toMatch(/^ENOSPC/);
    expect(file.health().lastErrorAt).toBe(new Date(clock.now()).toISOString());

    // The path now names a writable file; lines are still dropped until the retry is due.
    rmSync(path);
    writeFileSync(path, '', { mode: 0o600 });
    file.write('still dropped\n');
    expect(file.health().droppedLines).toBe(6);
    clock.advance(1000);
    file.write('back\n');
    expect(readFileSync(path, 'utf8')).toBe('back\n');
    expect(file.health()).toMatchObject({ droppedLines: 6, failing: false });
    expect(file.health().lastError).toMatch(/^ENOSPC/); // kept for status
    await Promise.resolve(); // the recovery is reported outside the write
    expect(recoveries).toEqual([{ droppedLines: 6, lastError: expect.stringMatching(/^ENOSPC/) }]);
    file.close();
  });

  it('survives an immutable file (chattr +i): EPERM drops lines, chattr -i brings them back', async (context) => {
    const path = join(tempDir(), 'daemon.log');
    const file = new RotatingLogFile({ path, retryMs: 0 });
    file.write('before\n');
    if (!chattr('+i', path)) {
      file.close();
      context.skip('chattr +i is refused here (needs CAP_LINUX_IMMUTABLE on a filesystem with attributes)');
    }
    try {
      expect(file.write('lost 1\n')).toBe(true);
      expect(file.write('lost 2\n')).toBe(true);
      expect(file.health()).toMatchObject({ droppedLines: 2, failing: true });
      expect(file.health().lastError).toMatch(/^EPERM/);
    } finally {
      chattr('-i', path);
    }
    file.write('after\n');
    file.close();
    expect(readFileSync(path, 'utf8')).toBe('before\nafter\n');
    expect(file.health()).toMatchObject({ droppedLines: 2, failing: false });
  });

  it('a file that cannot be opened at all does not throw from the constructor', () => {
    const path = join(tempDir(), 'daemon.log');
    mkdirSync(path); // EISDIR
    const clock = manualClock();
    const file = new RotatingLogFile({ path, now: clock.now });
    expect(file.write('dropped\n')).toBe(true);
    expect(file.health()).toMatchObject({ droppedLines: 1, failing: true });
    expect(file.health().lastError).toMatch(/^EISDIR/);
    rmSync(path, { recursive: true });
    clock.advance(1000);
    file.write('kept\n');
    file.close();
    expect(readFileSync(path, 'utf8')).toBe('kept\n');
  });

  it('a rotation that fails drops the line and is retried later', () => {
    const path = join(tempDir(), 'daemon.log');
    mkdirSync(`${path}.1`); // the rotation cannot remove or rename over it
    writeFileSync(join(`${path}.1`, 'x'), 'x');
    const clock = manualClock();
    const file = new RotatingLogFile({ path, maxBytes: 10, keep: 1, now: clock.now });
    file.write('12345678\n');
    expect(() => file.write('rotates\n')).not.toThrow();
    expect(file.health()).toMatchObject({ droppedLines: 1, failing: true });
    rmSync(`${path}.1`, { recursive: true });
    clock.advance(1000);
    file.write('rotated\n');
    file.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('12345678\n');
    expect(readFileSync(path, 'utf8')).toBe('rotated\n');
  });

  it('a log file deleted under it is created again at its path', () => {
    const path = join(tempDir(), 'daemon.log');
    const clock = manualClock();
    const file = new RotatingLogFile({ path, now: clock.now });
    file.write('one\n');
    rmSync(path);
    clock.advance(1000);
    file.write('two\n');
    file.close();
    expect(readFileSync(path, 'utf8')).toBe('two\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(file.health().droppedLines).toBe(0);
  });
});

describe('daemon logger when the file cannot be written', () => {
  it('logs one line saying how many lines were dropped once the file works again', async () => {
    const dir = tempDir();
    const path = join(dir, 'daemon.log');
    symlinkSync('/dev/full', path);
    const log = await createDaemonLogger({ logPath: path, level: 'info', foreground: false });
    for (let i = 0; i < 3; i++) log.logger.info({ i }, 'into the void');
    expect(log.status()).toMatchObject({ path, dropped_lines: 3, failing: true });
    rmSync(path);
    // The retry is paced by the wall clock (about once a second): keep logging until it is due.
    const deadline = Date.now() + 10_000;
    while (!existsSync(path) || !readFileSync(path, 'utf8').includes('takes lines again')) {
      if (Date.now() > deadline) throw new Error('the log file was never reopened');
      log.logger.info('tick');
      await new Promise((r) => setTimeout(r, 50));
    }
    log.close();
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const notice = lines.find((line) => String(line.msg).includes('takes lines again'));
    expect(notice).toMatchObject({ level: 40, last_error: expect.stringMatching(/^ENOSPC/) });
    expect(notice?.dropped_lines).toBe(log.status().dropped_lines);
    expect(log.status()).toMatchObject({ failing: false });
  });
});

function chattr(flag: '+i' | '-i', path: string): boolean {
  return spawnSync('chattr', [flag, path], { stdio: 'ignore' }).status === 0;
}
