/**
 * Keeps the control socket accepting through a shortage of file descriptors (EMFILE, ENFILE).
 *
 * - Headroom: before serving a new connection the server asks `admit()`, which (on Linux, from
 *   /proc/self) refuses it while fewer than `reserve` descriptors are left under the process's
 *   limit, so that the store, the log, step processes and the answers to clients already
 *   connected still get theirs.
 * - A spare descriptor: when accept itself fails, libuv keeps retrying it for as long as
 *   connections are pending, synchronously; `failed()` closes the spare descriptor held since
 *   start so that the next accept succeeds (and that connection is refused at once, which frees
 *   its descriptor for the next one), so the backlog drains instead of spinning.
 * - An episode: from the first refusal or failure, every new connection is refused without
 *   looking, and the guard retries after 100 ms, then doubling up to 5 s, until the spare
 *   descriptor is back and twice the reserve is free again. It logs once when an episode starts and
 *   once when it ends, never per connection.
 */
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { errorMessage } from '../errors/error-message.js';

export interface AcceptGuardLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface AcceptFigures {
  /** False during an episode: new connections are refused until a retry finds descriptors. */
  readonly accepting: boolean;
  /** Connections refused or lost for lack of descriptors (or a failed accept) since start. */
  readonly acceptErrors: number;
  readonly lastError: string | null;
  readonly lastErrorAt: string | null;
  /** When the next retry is due during an episode (ISO 8601), else null. */
  readonly nextRetryAt: string | null;
}

export interface DescriptorUse {
  readonly open: number;
  readonly limit: number;
}

export interface AcceptGuardOptions {
  /** Descriptors kept free under the limit (default 16). */
  readonly reserve?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly logger?: AcceptGuardLogger;
  /** How many descriptors are open and the limit; null where that cannot be known. */
  readonly descriptorUse?: () => DescriptorUse | null;
}

export const ACCEPT_BACKOFF = { minMs: 100, maxMs: 5_000 } as const;

export class AcceptGuard {
  readonly #reserve: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #logger: AcceptGuardLogger | undefined;
  readonly #descriptorUse: () => DescriptorUse | null;
  #spare: number | null = null;
  #episode: { readonly startedAt: number; refused: number; attempt: number } | null = null;
  #retryTimer: NodeJS.Timeout | undefined;
  #nextRetryAt: number | null = null;
  #acceptErrors = 0;
  #lastError: string | null = null;
  #lastErrorAt: string | null = null;
  #closed = false;

  constructor(options: AcceptGuardOptions = {}) {
    this.#reserve = options.reserve ?? 16;
    this.#minBackoffMs = options.minBackoffMs ?? ACCEPT_BACKOFF.minMs;
    this.#maxBackoffMs = options.maxBackoffMs ?? ACCEPT_BACKOFF.maxMs;
    this.#logger = options.logger;
    this.#descriptorUse = options.descriptorUse ?? procDescriptorUse;
    this.#spare = openSpare();
  }

  /**
   * Whether a connection just accepted may be served. False (and counted) during an episode,
   * or when descriptors run short, which starts one. The caller refuses the connection and
   * closes it at once.
   */
  admit(): boolean {
    if (this.#closed) return true;
    if (this.#episode !== null) {
      this.#refused();
      return false;
    }
    const shortage = this.#shortage();
    if (shortage === null) return true;
    this.#record(shortage);
    this.#startEpisode(shortage);
    this.#refused();
    return false;
  }

  /**
   * An accept that failed (the server's `error` with syscall `accept`). Returns true when a
   * descriptor was freed for the next accept; false when the caller must free one itself (close
   * a connection) to keep the accept loop from spinning.
   */
  failed(error: unknown): boolean {
    const message = errorMessage(error);
    this.#acceptErrors++;
    this.#record(message);
    this.#startEpisode(message);
    if (this.#spare === null) return false;
    closeQuietly(this.#spare);
    this.#spare = null;
    return true;
  }

  get figures(): AcceptFigures {
    return {
      accepting: this.#episode === null,
      acceptErrors: this.#acceptErrors,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      nextRetryAt: this.#nextRetryAt === null ? null : new Date(this.#nextRetryAt).toISOString(),
    };
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    if (this.#spare !== null) closeQuietly(this.#spare);
    this.#spare = null;
  }

  #refused(): void {
    this.#acceptErrors++;
    if (this.#episode !== null) this.#episode.refused++;
  }

  #record(message: string): void {
    this.#lastError = message;
    this.#lastErrorAt = new Date().toISOString();
  }

  /**
   * A description of the shortage, or null while more than `keepFree` descriptors are left under
   * the limit. An episode ends only with twice the reserve free, so that it does not end and
   * start again with every connection that comes and goes at the edge.
   */
  #shortage(keepFree = this.#reserve): string | null {
    let use: DescriptorUse | null;
    try {
      use = this.#descriptorUse();
    } catch (error) {
      // Even listing /proc/self/fd needs a descriptor: failing to is itself the shortage.
      return errorMessage(error);
    }
    if (use === null || use.open < use.limit - keepFree) return null;
    return `EMFILE: ${use.open} of ${use.limit} file descriptors open (${this.#reserve} kept in reserve)`;
  }

  #startEpisode(message: string): void {
    if (this.#episode !== null || this.#closed) return;
    this.#episode = { startedAt: Date.now(), refused: 0, attempt: 0 };
    this.#logger?.warn(
      { error: message },
      'control socket out of file descriptors: refusing new connections until some are free',
    );
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    const episode = this.#episode;
    if (episode === null || this.#closed) return;
    const delay = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** episode.attempt);
    episode.attempt++;
    this.#nextRetryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => this.#retry(), delay);
    this.#retryTimer.unref();
  }

  #retry(): void {
    const episode = this.#episode;
    if (episode === null || this.#closed) return;
    if (this.#spare === null) this.#spare = openSpare();
    if (this.#spare === null || this.#shortage(2 * this.#reserve) !== null) {
      this.#scheduleRetry();
      return;
    }
    this.#episode = null;
    this.#nextRetryAt = null;
    const log = { refused: episode.refused, seconds: (Date.now() - episode.startedAt) / 1000 };
    this.#logger?.info(log, 'control socket accepting again');
  }
}

/** Open descriptors and the soft limit, from /proc/self (Linux); null elsewhere. */
export function procDescriptorUse(): DescriptorUse | null {
  let limits: string;
  try {
    limits = readFileSync('/proc/self/limits', 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  if (soft === undefined || soft === 'unlimited') return null;
  // The listing's own descriptor is counted in it, and is closed again by now.
  return { open: readdirSync('/proc/self/fd').length - 1, limit: Number(soft) };
}

function openSpare(): number | null {
  try {
    return openSync('/dev/null', 'r');
  } catch {
    return null;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
