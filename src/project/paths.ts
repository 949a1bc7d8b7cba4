/**
 * Where a project's daemon keeps its state. Light on purpose: the CLI imports it on every call.
 */
import { createHash } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CharterError } from '../errors/charter-error.js';

/**
 * Linux allows 108 bytes in `sun_path` (macOS 104) including the NUL; an over-long path fails with
 * misleading errors (EADDRINUSE, ENAMETOOLONG) or is silently truncated, so stay well under.
 */
export const MAX_SOCKET_PATH_BYTES = 100;

export interface DaemonPaths {
  readonly projectRoot: string;
  /** `.charter/daemon/`, mode 0700. */
  readonly stateDir: string;
  readonly socketPath: string;
  /** True when the project path is too deep for a socket in stateDir. */
  readonly socketIsFallback: boolean;
  readonly lockPath: string;
  readonly logPath: string;
  readonly storePath: string;
  /** `identity.json`: the daemon id and seq high-water mark, kept outside the store too. */
  readonly identityPath: string;
  /** `daemon.json`: pid and socket path of the running daemon, for the CLI. */
  readonly runtimeFile: string;
  /** stdout/stderr of a detached daemon: what happens before the logger exists. */
  readonly outputPath: string;
  /** The key that encrypts secret values at rest (0600; not in the store, see src/secrets/). */
  readonly secretKeyPath: string;
}

/** Resolves `--project-path` to a real project root, or throws NOT_A_PROJECT. */
export function resolveProjectRoot(projectPath: string): string {
  const absolute = resolve(projectPath);
  let root: string;
  try {
    root = realpathSync(absolute);
  } catch {
    throw new CharterError('NOT_A_PROJECT', `${absolute} does not exist`);
  }
  if (!statSync(root).isDirectory()) throw new CharterError('NOT_A_PROJECT', `${root} is not a directory`);
  if (!existsSync(join(root, 'charter.yml'))) {
    throw new CharterError('NOT_A_PROJECT', `${root} has no charter.yml`);
  }
  return root;
}

export function daemonPaths(projectRoot: string, env: NodeJS.ProcessEnv = process.env): DaemonPaths {
  const stateDir = join(projectRoot, '.charter', 'daemon');
  const preferredSocket = join(stateDir, 'daemon.sock');
  const socketIsFallback = Buffer.byteLength(preferredSocket) > MAX_SOCKET_PATH_BYTES;
  return {
    projectRoot,
    stateDir,
    socketPath: socketIsFallback ? fallbackSocketPath(projectRoot, env) : preferredSocket,
    socketIsFallback,
    lockPath: join(stateDir, 'daemon.lock'),
    logPath: join(stateDir, 'daemon.log'),
    storePath: join(stateDir, 'state.db'),
    identityPath: join(stateDir, 'identity.json'),
    runtimeFile: join(stateDir, 'daemon.json'),
    outputPath: join(stateDir, 'daemon.out'),
    secretKeyPath: join(stateDir, 'secrets.key'),
  };
}

/** The per-user directory that holds fallback sockets (created 0700 by the daemon). */
export function fallbackSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const runtimeDir = env.XDG_RUNTIME_DIR;
  const candidates = [runtimeDir?.startsWith('/') ? runtimeDir : undefined, tmpdir(), '/tmp'];
  for (const base of candidates) {
    if (base === undefined) continue;
    const dir = join(base, `charter-daemon-${uid}`);
    // 16 hex chars of hash + ".sock" + "/" = 22 bytes after the directory.
    if (Buffer.byteLength(dir) + 22 <= MAX_SOCKET_PATH_BYTES) return dir;
  }
  return `/tmp/charter-daemon-${uid}`;
}

/** A short, stable socket path keyed by a hash of the project root (the Nx approach). */
export function fallbackSocketPath(projectRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  const key = createHash('sha256').update(projectRoot).digest('hex').slice(0, 16);
  return join(fallbackSocketDir(env), `${key}.sock`);
}
