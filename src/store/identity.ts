/**
 * `identity.json`, beside the store: the daemon id and the highest journal seq handed out, kept
 * outside the database so that losing the database is never silent (a missing or emptied store
 * with a known identity is refused) and so that a recovered or restored store never hands out a
 * seq the gateway has already seen. Also remembers what the store file looked like when the
 * daemon closed it cleanly: a store unchanged since then needs only a light check at start.
 */
import { readFileSync, renameSync, type Stats, statSync, writeFileSync } from 'node:fs';

/** What the store file looked like when last closed cleanly (bigint stat, as strings). */
export interface StoreFingerprint {
  readonly ino: string;
  readonly size: string;
  readonly mtime_ns: string;
}

export interface StoreIdentity {
  readonly daemon_id: string;
  /** The highest journal seq known to have been handed out (at least: updated at open, prune, close). */
  readonly seq_high_water: number;
  readonly updated_at: string;
  /** Set at a clean close, cleared while a daemon has the store open. */
  readonly closed_store: StoreFingerprint | null;
}

function isIdentity(value: unknown): value is StoreIdentity {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.daemon_id === 'string' &&
    v.daemon_id !== '' &&
    Number.isSafeInteger(v.seq_high_water) &&
    (v.seq_high_water as number) >= 0
  );
}

/** The identity, or undefined when there is none (a missing or unreadable file). */
export function readIdentity(path: string): StoreIdentity | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isIdentity(parsed)) return undefined;
    return { ...parsed, closed_store: (parsed.closed_store as StoreFingerprint | undefined) ?? null };
  } catch {
    return undefined;
  }
}

/** Atomic write (temp file + rename), 0600. */
export function writeIdentity(path: string, identity: Omit<StoreIdentity, 'updated_at'>): void {
  const temp = `${path}.${process.pid}.tmp`;
  const full: StoreIdentity = { ...identity, updated_at: new Date().toISOString() };
  writeFileSync(temp, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, path);
}

/** The fingerprint of the file at `path`, or undefined when it does not exist. */
export function fingerprintOf(path: string): StoreFingerprint | undefined {
  let stats: Stats | import('node:fs').BigIntStats;
  try {
    stats = statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
  return { ino: String(stats.ino), size: String(stats.size), mtime_ns: String(stats.mtimeNs) };
}

export function sameFingerprint(
  a: StoreFingerprint | null | undefined,
  b: StoreFingerprint | undefined,
): boolean {
  return a != null && b !== undefined && a.ino === b.ino && a.size === b.size && a.mtime_ns === b.mtime_ns;
}
