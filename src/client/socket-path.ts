/**
 * Where a project's daemon listens: the path it wrote to `socket_path` in
 * `.charter/daemon/daemon.json`, else the path it would use (docs/control-protocol.md, "Where
 * the socket is"). Reads two small files at most; loads nothing of the daemon.
 */
import { daemonPaths, resolveProjectRoot } from '../project/paths.js';
import { readRuntimeFile } from '../project/runtime-file.js';

export interface LocatedSocket {
  readonly projectRoot: string;
  readonly socketPath: string;
}

/** Throws NOT_A_PROJECT when `projectPath` holds no charter.yml. */
export function locateSocket(projectPath: string): LocatedSocket {
  const projectRoot = resolveProjectRoot(projectPath);
  const paths = daemonPaths(projectRoot);
  const socketPath = readRuntimeFile(paths.runtimeFile)?.socket_path ?? paths.socketPath;
  return { projectRoot, socketPath };
}
