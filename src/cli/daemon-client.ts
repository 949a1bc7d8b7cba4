/**
 * How a CLI command reaches the daemon of a project: through the one client
 * (`charter-daemon/client`, src/client/), with the CLI's deadlines and its version warning.
 */
import * as z from 'zod/mini';
import { type CharterClient, connect } from '../client/client.js';
import { type DaemonPaths, daemonPaths, resolveProjectRoot } from '../project/paths.js';
import type { StatusResult } from '../protocol/control.js';
import { packageVersion } from '../version.js';

// A CLI call validates a couple of messages and exits: compiling validators (zod's JIT) costs
// more than it saves there. The daemon, which validates many messages, keeps the JIT. (The
// library itself leaves zod's settings to the program that imports it.)
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
  /** Deadline for hello and for each call's first answer. */
  readonly requestTimeoutMs?: number;
}

/** Connects to the project's daemon; warns through `warn` when the daemon is another version. */
export async function connectToDaemon(
  target: ProjectTarget,
  warn: (message: string) => void,
  deadlines: Deadlines = {},
): Promise<CharterClient> {
  const client = await connect({
    projectPath: target.projectRoot,
    clientVersion: packageVersion,
    connectTimeoutMs: deadlines.connectTimeoutMs ?? 2000,
    timeoutMs: deadlines.requestTimeoutMs ?? 10_000,
  });
  const daemonVersion = client.hello.daemon_version;
  if (daemonVersion !== packageVersion) {
    warn(
      `this CLI is charter-daemon ${packageVersion} but the running daemon is ${daemonVersion}; ` +
        'restart it to use this version: charter-daemon restart',
    );
  }
  return client;
}

export async function fetchStatus(
  target: ProjectTarget,
  warn: (message: string) => void,
  deadlines: Deadlines = {},
): Promise<StatusResult> {
  const client = await connectToDaemon(target, warn, { requestTimeoutMs: 5000, ...deadlines });
  try {
    return await client.status();
  } finally {
    client.close();
  }
}
