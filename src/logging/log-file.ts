/**
 * A synchronous, size-bounded log file for pino. Synchronous so the last lines before a crash are
 * on disk (pino.destination is async by default); bounded so a chatty daemon cannot fill the disk:
 * past `maxBytes` the file rotates to `.1`, `.2`, … keeping `keep` old files.
 *
 * Logging never takes the daemon down: a line that cannot be written (EPERM on an immutable file,
 * ENOSPC, EIO, a failed rotation, …) is dropped and counted, the error is remembered for `status`,
 * and the file is reopened on a later write, at most once per `retryMs`. Once a line is written
 * again, `onRecovered` is told how many were dropped, so that the logger can say so in the file.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';

export interface LogFileOptions {
  readonly path: string;
  readonly maxBytes?: number;
  readonly keep?: number;
  /**
   * After a failed write, lines are dropped without touching the file for this long; the next
   * write then reopens the file and tries again. The same period paces the check that the path
   * still names the open file (moved or deleted by someone else: reopened). Default 1000 ms.
   */
  readonly retryMs?: number;
  /** Called (in a microtask, outside pino's write) after lines were dropped and a write succeeds again. */
  readonly onRecovered?: (recovery: LogRecovery) => void;
  /** Milliseconds since the epoch; tests pass their own. */
  readonly now?: () => number;
}

export interface LogRecovery {
  /** Lines dropped since the file last worked. */
  readonly droppedLines: number;
  /** The error that made the last of them drop. */
  readonly lastError: string;
}

export interface LogFileHealth {
  readonly path: string;
  /** Lines dropped since the file was opened (this process). */
  readonly droppedLines: number;
  /** `CODE: message` of the last failure, null when writes never failed. */
  readonly lastError: string | null;
  readonly lastErrorAt: string | null;
  /** True while writes fail: lines are being dropped until the next retry succeeds. */
  readonly failing: boolean;
}

export class RotatingLogFile {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #retryMs: number;
  readonly #onRecovered: ((recovery: LogRecovery) => void) | undefined;
  readonly #now: () => number;
  /** -1 while no file is open (failed open, failed rotation, or closed). */
  #fd = -1;
  #size = 0;
  #closed = false;
  /** While failing: when the next write may try to reopen the file. */
  #retryAt = 0;
  /** When the path was last compared with the open file. */
  #checkedAt: number;
  #failing = false;
  #droppedLines = 0;
  #droppedSinceWorking = 0;
  #lastError: string | null = null;
  #lastErrorAt: string | null = null;
  /** A line was cut short (ENOSPC mid-line): the next written line starts on a fresh one. */
  #partialLine = false;

  constructor(options: LogFileOptions) {
    this.path = options.path;
    this.#maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
    this.#keep = options.keep ?? 3;
    this.#retryMs = options.retryMs ?? 1000;
    this.#onRecovered = options.onRecovered;
    this.#now = options.now ?? Date.now;
    this.#checkedAt = this.#now();
    try {
      this.#open();
    } catch (error) {
      // A log file that cannot be opened yet is a reason to drop lines, not to refuse to start.
      this.#fail(error);
    }
  }

  /** pino's destination interface. Never throws. */
  write(line: string): boolean {
    if (this.#closed) return true;
    if (this.#failing) {
      if (this.#now() < this.#retryAt) return this.#drop();
      try {
        this.#reopen();
      } catch (error) {
        this.#fail(error);
        return this.#drop();
      }
    } else {
      this.#followPath();
    }
    try {
      const bytes = Buffer.byteLength(line);
      if (this.#size > 0 && this.#size + bytes > this.#maxBytes) this.#rotate();
      this.#writeLine(line);
    } catch (error) {
      this.#fail(error);
      return this.#drop();
    }
    if (this.#failing) this.#recovered();
    return true;
  }

  health(): LogFileHealth {
    return {
      path: this.path,
      droppedLines: this.#droppedLines,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      failing: this.#failing,
    };
  }

  close(): void {
    this.#closed = true;
    this.#closeFd();
  }

  #open(): void {
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  #reopen(): void {
    this.#closeFd();
    this.#open();
    this.#checkedAt = this.#now();
  }

  #closeFd(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    try {
      closeSync(fd);
    } catch {
      // EIO or EBADF on close: the descriptor is released either way.
    }
  }

  /**
   * A log file moved away or deleted by someone else (a state directory removed under the
   * daemon, an external rotation): write to a file at the path again. When the path cannot be
   * opened (its directory is gone too), keep the open file rather than lose the lines.
   */
  #followPath(): void {
    const now = this.#now();
    if (now - this.#checkedAt < this.#retryMs) return;
    this.#checkedAt = now;
    let atPath: Stats | undefined;
    try {
      atPath = statSync(this.path);
    } catch {
      atPath = undefined;
    }
    try {
      const open = fstatSync(this.#fd);
      if (atPath !== undefined && atPath.dev === open.dev && atPath.ino === open.ino) return;
      const fd = openSync(this.path, 'a', 0o600);
      this.#closeFd();
      this.#fd = fd;
      this.#size = fstatSync(fd).size;
    } catch {
      // Keep writing where we were; a write that fails is handled by write().
    }
  }

  #writeLine(line: string): void {
    let buffer = Buffer.from(this.#partialLine ? `\n${line}` : line);
    while (buffer.length > 0) {
      const written = writeSync(this.#fd, buffer);
      this.#size += written;
      buffer = buffer.subarray(written);
      // Part of this line is in the file: if the rest fails, the next line must start afresh.
      this.#partialLine = buffer.length > 0;
    }
  }

  #rotate(): void {
    this.#closeFd();
    rmSync(`${this.path}.${this.#keep}`, { force: true });
    for (let index = this.#keep - 1; index >= 1; index--) {
      const from = `${this.path}.${index}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${index + 1}`);
    }
    if (this.#keep > 0) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = 0;
    this.#partialLine = false;
  }

  #fail(error: unknown): void {
    this.#failing = true;
    this.#retryAt = this.#now() + this.#retryMs;
    this.#lastError = describeError(error);
    this.#lastErrorAt = new Date(this.#now()).toISOString();
  }

  #drop(): boolean {
    this.#droppedLines += 1;
    this.#droppedSinceWorking += 1;
    return true;
  }

  #recovered(): void {
    const recovery: LogRecovery = {
      droppedLines: this.#droppedSinceWorking,
      lastError: this.#lastError ?? 'unknown error',
    };
    this.#failing = false;
    this.#droppedSinceWorking = 0;
    const notify = this.#onRecovered;
    // Outside the current write: the callback logs through pino, which is writing to us now.
    if (notify !== undefined && recovery.droppedLines > 0) queueMicrotask(() => notify(recovery));
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined || error.message.startsWith(code) ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}
