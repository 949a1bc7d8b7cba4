import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fileIdentity,
  type LostStateFile,
  removeIfSame,
  type StateWatch,
  watchStateFiles,
} from '../../src/daemon/state-watch.js';

const dirs: string[] = [];
const watches: StateWatch[] = [];
function stateDir(): { dir: string; lock: string; socket: string } {
  const root = mkdtempSync(join(tmpdir(), 'csw-'));
  dirs.push(root);
  const dir = join(root, 'daemon');
  mkdirSync(dir);
  const lock = join(dir, 'daemon.lock');
  const socket = join(dir, 'daemon.sock');
  writeFileSync(lock, '');
  writeFileSync(socket, '');
  return { dir, lock, socket };
}
afterEach(() => {
  for (const watch of watches.splice(0)) watch.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function watchUntilLost(files: string[], intervalMs = 50): Promise<LostStateFile> {
  return new Promise((resolve) => {
    watches.push(watchStateFiles({ files, intervalMs, onLost: resolve }));
  });
}

describe('state watch', () => {
  it('reports the state directory removed (rm -rf)', async () => {
    const { dir, lock, socket } = stateDir();
    const lost = watchUntilLost([lock, socket]);
    rmSync(dir, { recursive: true });
    expect(await lost).toMatchObject({ cause: 'missing' });
  });

  it('reports a file replaced by another one at the same path', async () => {
    const { dir, lock, socket } = stateDir();
    const lost = watchUntilLost([lock, socket]);
    writeFileSync(join(dir, 'other'), '');
    renameSync(join(dir, 'other'), lock);
    expect(await lost).toEqual({ path: lock, cause: 'replaced' });
  });

  it('reports once, and nothing while the files stay', async () => {
    const { dir, lock, socket } = stateDir();
    const reports: LostStateFile[] = [];
    watches.push(watchStateFiles({ files: [lock, socket], intervalMs: 10, onLost: (l) => reports.push(l) }));
    writeFileSync(join(dir, 'state.db'), 'writes beside the watched files are no loss');
    await new Promise((r) => setTimeout(r, 100));
    expect(reports).toEqual([]);
    rmSync(socket);
    rmSync(lock);
    for (let waited = 0; reports.length === 0 && waited < 5000; waited += 10) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 100)); // a second report would come within this
    expect(reports).toEqual([{ path: expect.any(String), cause: 'missing' }]);
  });

  it('removeIfSame leaves a file that replaced ours', () => {
    const { dir, socket } = stateDir();
    const ours = fileIdentity(socket);
    if (ours === null) throw new Error('no identity');
    writeFileSync(join(dir, 'theirs'), '');
    renameSync(join(dir, 'theirs'), socket);
    expect(removeIfSame(socket, ours)).toBe(false);
    expect(fileIdentity(socket)).not.toBeNull();
    const theirs = fileIdentity(socket);
    if (theirs === null) throw new Error('no identity');
    expect(removeIfSame(socket, theirs)).toBe(true);
    expect(fileIdentity(socket)).toBeNull();
  });
});
