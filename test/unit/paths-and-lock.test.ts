import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProjectLock } from '../../src/daemon/lock.js';
import { CharterError } from '../../src/errors/charter-error.js';
import {
  daemonPaths,
  fallbackSocketPath,
  MAX_SOCKET_PATH_BYTES,
  resolveProjectRoot,
} from '../../src/project/paths.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdk-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('project paths', () => {
  it('resolves a project root only where charter.yml is', () => {
    const dir = tempDir();
    expect(() => resolveProjectRoot(dir)).toThrow(CharterError);
    writeFileSync(join(dir, 'charter.yml'), 'name: x\n');
    expect(resolveProjectRoot(dir)).toBe(dir);
    expect(() => resolveProjectRoot(join(dir, 'missing'))).toThrow(/does not exist/);
  });

  it('keeps the socket in the project when it fits, else a short path keyed by the root', () => {
    const shallow = daemonPaths('/p');
    expect(shallow.socketPath).toBe('/p/.charter/daemon/daemon.sock');
    expect(shallow.socketIsFallback).toBe(false);

    const deepRoot = `/${'d'.repeat(200)}`;
    const deep = daemonPaths(deepRoot, { XDG_RUNTIME_DIR: '/run/user/1000' });
    expect(deep.socketIsFallback).toBe(true);
    expect(deep.socketPath).toMatch(/^\/run\/user\/1000\/charter-daemon-\d+\/[0-9a-f]{16}\.sock$/);
    expect(Buffer.byteLength(deep.socketPath)).toBeLessThanOrEqual(MAX_SOCKET_PATH_BYTES);
    // Stable for the same root, different for another.
    expect(fallbackSocketPath(deepRoot, { XDG_RUNTIME_DIR: '/run/user/1000' })).toBe(deep.socketPath);
    expect(fallbackSocketPath(`${deepRoot}x`, { XDG_RUNTIME_DIR: '/run/user/1000' })).not.toBe(
      deep.socketPath,
    );
  });

  it('ignores an XDG_RUNTIME_DIR too long for a socket', () => {
    const deep = daemonPaths(`/${'d'.repeat(200)}`, { XDG_RUNTIME_DIR: `/${'r'.repeat(120)}` });
    expect(Buffer.byteLength(deep.socketPath)).toBeLessThanOrEqual(MAX_SOCKET_PATH_BYTES);
  });
});

describe('project lock', () => {
  it('is exclusive across processes and released when its holder is killed', async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    const lockPath = join(dir, 'daemon.lock');
    const lockModule = new URL('../../src/daemon/lock.ts', import.meta.url).pathname;
    // A second process holds the lock. It runs the compiled module when available (npm test builds).
    const compiled = lockModule.replace('/src/', '/dist/src/').replace(/\.ts$/, '.js');
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { ProjectLock } = await import(${JSON.stringify(compiled)});
         const lock = ProjectLock.tryAcquire(${JSON.stringify(lockPath)});
         process.stdout.write(lock ? 'held\\n' : 'busy\\n');
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const firstLine = await new Promise<string>((resolve) => {
      holder.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    });
    expect(firstLine).toBe('held');
    expect(ProjectLock.tryAcquire(lockPath)).toBeUndefined();

    const exited = new Promise((resolve) => holder.once('exit', resolve));
    holder.kill('SIGKILL');
    await exited;
    const lock = ProjectLock.tryAcquire(lockPath);
    expect(lock).toBeDefined();
    // Exclusive within a process too: a second handle is refused while the first is open.
    expect(ProjectLock.tryAcquire(lockPath)).toBeUndefined();
    lock?.release();
    const again = ProjectLock.tryAcquire(lockPath);
    expect(again).toBeDefined();
    again?.release();
  });
});
