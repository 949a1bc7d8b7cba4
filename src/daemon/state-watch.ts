/**
 * Noticing that the files that make this daemon findable are gone: the state directory removed
 * (`rm -rf .charter/daemon`) or the lock file or socket replaced. The daemon then serves nobody
 * (no client finds its socket) while its lock no longer keeps a second daemon out, so it must stop.
 *
 * A file counts as ours by its device and inode, taken when the watch starts: a path that is
 * missing, or that now names another file (a second daemon's lock or socket), is lost. Checked
 * every `intervalMs`, and at once when inotify reports a change in a watched file's directory.
 */
import { type FSWatcher, lstatSync, rmSync, watch } from 'node:fs';
import { dirname } from 'node:path';

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** The identity of the file at `path` (not following a symlink), or null when there is none. */
export function fileIdentity(path: string): FileIdentity | null {
  try {
    const stats = lstatSync(path);
    return { dev: stats.dev, ino: stats.ino };
  } catch {
    return null;
  }
}

export interface LostStateFile {
  readonly path: string;
  /** `missing`: nothing at the path; `replaced`: another file is there now. */
  readonly cause: 'missing' | 'replaced';
}

/** The first file that is no longer at its path, or null when all are. */
export function findLostFile(expected: ReadonlyMap<string, FileIdentity>): LostStateFile | null {
  for (const [path, identity] of expected) {
    const now = fileIdentity(path);
    if (now === null) return { path, cause: 'missing' };
    if (now.dev !== identity.dev || now.ino !== identity.ino) return { path, cause: 'replaced' };
  }
  return null;
}

/**
 * Removes the file at `path` only if it is still the one with `identity`: a file that replaced
 * ours (another daemon's socket) is not ours to remove.
 */
export function removeIfSame(path: string, identity: FileIdentity): boolean {
  const now = fileIdentity(path);
  if (now === null || now.dev !== identity.dev || now.ino !== identity.ino) return false;
  rmSync(path, { force: true });
  return true;
}

export interface StateWatchOptions {
  readonly files: readonly string[];
  readonly intervalMs?: number;
  /** Called once, with the first file found lost; the watch then stops. */
  readonly onLost: (lost: LostStateFile) => void;
}

export interface StateWatch {
  /** The identities taken at the start, by path. */
  readonly identities: ReadonlyMap<string, FileIdentity>;
  stop(): void;
}

/** Starts watching `files`, which must exist now; a missing one is reported at the first check. */
export function watchStateFiles(options: StateWatchOptions): StateWatch {
  const identities = new Map<string, FileIdentity>();
  for (const path of options.files) {
    // A file already missing is lost: an identity no file has makes the first check say so.
    identities.set(path, fileIdentity(path) ?? { dev: -1, ino: -1 });
  }
  let stopped = false;
  const watchers: FSWatcher[] = [];
  const check = () => {
    if (stopped) return;
    const lost = findLostFile(identities);
    if (lost === null) return;
    stop();
    options.onLost(lost);
  };
  const timer = setInterval(check, options.intervalMs ?? 1000);
  timer.unref();
  for (const dir of new Set(options.files.map((path) => dirname(path)))) {
    try {
      // Prompt notice; the interval alone is enough when inotify is unavailable or exhausted.
      // Only names appearing or vanishing matter: writes to the log or the store ('change') do not.
      const watcher = watch(dir, { persistent: false }, (event) => {
        if (event === 'rename') check();
      });
      watcher.on('error', () => watcher.close());
      watchers.push(watcher);
    } catch {
      // the interval covers it
    }
  }
  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    for (const watcher of watchers) watcher.close();
  }
  return { identities, stop };
}
