/**
 * How a CLI command reaches the daemon of a project: find its socket (the runtime file names it;
 * otherwise the path the daemon would use), connect with deadlines, say hello.
 */
import * as z from 'zod/mini';
import { ControlConnection } from '../control/client.js';
import { type DaemonPaths, daemonPaths, resolveProjectRoot } from '../project/paths.js';
import { readRuntimeFile } from '../project/runtime-file.js';
import { type StatusResult, StatusResultSchema } from '../protocol/control.js';
import { packageVersion } from '../version.js';

// A CLI call validates a couple of messages and exits: compiling validators (zod's JIT) costs
// more than it saves there. The daemon, which validates many messages, keeps the JIT.
z.config({ jitless: true });

export interface ProjectTarget {
  readonly projectRoot: string;
  readonly paths: DaemonPaths;
}

export function targetProject(projectPath: string): ProjectTarget {
  const projectRoot = resolveProjectRoot(projectPath);
  return { projectRoot, paths: daemonPaths(projectRoot) };
}

export interface Deadlines {
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

/** Opens a control connection; warns through `warn` when the daemon is another version. */
export async function connectToDaemon(
  target: ProjectTarget,
  warn: (message: string) => void,
  deadlines: Deadlines = {},
): Promise<ControlConnection> {
  const socketPath = readRuntimeFile(target.paths.runtimeFile)?.socket_path ?? target.paths.socketPath;
  const connection = await ControlConnection.open({
    socketPath,
    clientVersion: packageVersion,
    connectTimeoutMs: deadlines.connectTimeoutMs ?? 2000,
    helloTimeoutMs: deadlines.requestTimeoutMs ?? 5000,
  });
  const daemonVersion = connection.hello?.daemon_version;
  if (daemonVersion !== undefined && daemonVersion !== packageVersion) {
    warn(
      `this CLI is charter-daemon ${packageVersion} but the running daemon is ${daemonVersion}; ` +
        'restart it to use this version: charter-daemon restart',
    );
  }
  return connection;
}

export async function fetchStatus(
  target: ProjectTarget,
  warn: (message: string) => void,
  deadlines: Deadlines = {},
): Promise<StatusResult> {
  const connection = await connectToDaemon(target, warn, deadlines);
  try {
    return await connection.request('status', {}, StatusResultSchema, {
      timeoutMs: deadlines.requestTimeoutMs ?? 5000,
    });
  } finally {
    connection.close();
  }
}
