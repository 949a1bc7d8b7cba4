/**
 * `daemon.json`: written by a daemon once its socket listens, removed at a clean exit. The CLI
 * reads it to find the socket (which may live outside the project for deep paths) and the pid.
 * A leftover file from a killed daemon is harmless: the CLI then finds nobody listening.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface RuntimeInfo {
  pid: number;
  socket_path: string;
  version: string;
  started_at: string;
  /** How the daemon was started (flags only, never a token): `restart` starts it the same way. */
  launch?: RuntimeLaunch;
}

export interface RuntimeLaunch {
  foreground: boolean;
  gatewayUrl?: string;
  gatewayTokenFile?: string;
  logLevel?: string;
  maxRuns?: number;
  inspect?: boolean;
  inspectPort?: number;
}

function isRuntimeInfo(value: unknown): value is RuntimeInfo {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    Number.isInteger(v.pid) &&
    typeof v.socket_path === 'string' &&
    typeof v.version === 'string' &&
    typeof v.started_at === 'string'
  );
}

/** The runtime file's content, or undefined when it is missing or unreadable. */
export function readRuntimeFile(path: string): RuntimeInfo | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isRuntimeInfo(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Atomic write (temp file + rename) so a reader never sees half a file. */
export function writeRuntimeFile(path: string, info: RuntimeInfo): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, path);
}
