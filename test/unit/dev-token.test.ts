/**
 * The dev gateway's token files, on a real file system: a given file is read as the daemon
 * reads its --gateway-token-file; a generated token is written 0600 in a private directory and
 * kept for the next start on the port only while nobody else can read or own it.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  generatedTokenPath,
  newToken,
  readKeptToken,
  readTokenFile,
  writeTokenFile,
} from '../../src/gateway-server/dev-token.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdt-'));
  dirs.push(dir);
  return dir;
}

describe('dev gateway tokens', () => {
  it('a given file: the trimmed token; empty, several words, missing or a directory are INVALID_FLAG', () => {
    const dir = scratch();
    const file = join(dir, 'token');
    writeFileSync(file, '  s3cret-token \n');
    expect(readTokenFile(file)).toEqual({ token: 's3cret-token', file, origin: 'given' });
    for (const content of ['', ' \n', 'two words\n', 'a\nb\n']) {
      writeFileSync(file, content);
      expect(() => readTokenFile(file)).toThrow(expect.objectContaining({ code: 'INVALID_FLAG' }));
    }
    for (const unusable of [join(dir, 'missing'), dir]) {
      expect(() => readTokenFile(unusable)).toThrow(/cannot be read/);
    }
  });

  it('a generated token: one file per port under XDG_RUNTIME_DIR, 0600 in a 0700 directory, kept while private', () => {
    const runtime = scratch();
    const file = generatedTokenPath(8765, { XDG_RUNTIME_DIR: runtime });
    expect(file).toBe(join(runtime, 'charter-dev-gateway', 'token-8765'));
    expect(generatedTokenPath(8766, { XDG_RUNTIME_DIR: runtime })).not.toBe(file);
    expect(readKeptToken(file)).toBeNull();

    const token = newToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(writeTokenFile(file, token)).toEqual({ token, file, origin: 'new' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(runtime, 'charter-dev-gateway')).mode & 0o777).toBe(0o700);
    expect(readKeptToken(file)).toEqual({ token, file, origin: 'kept' });

    chmodSync(file, 0o644);
    expect(readKeptToken(file)).toBeNull();
    chmodSync(file, 0o600);
    chmodSync(join(runtime, 'charter-dev-gateway'), 0o755);
    expect(readKeptToken(file)).toBeNull();
    // Written again, the directory is made private again.
    writeTokenFile(file, newToken());
    expect(statSync(join(runtime, 'charter-dev-gateway')).mode & 0o777).toBe(0o700);
  });

  it('a token cannot be written where a file stands in for the directory', () => {
    const runtime = scratch();
    mkdirSync(runtime, { recursive: true });
    writeFileSync(join(runtime, 'charter-dev-gateway'), 'not a directory');
    const file = generatedTokenPath(1234, { XDG_RUNTIME_DIR: runtime });
    expect(() => writeTokenFile(file, newToken())).toThrow(expect.objectContaining({ code: 'INVALID_FLAG' }));
  });
});
