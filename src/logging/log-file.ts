/**
 * A synchronous, size-bounded log file for pino. Synchronous so the last lines before a crash are
 * on disk (pino.destination is async by default); bounded so a chatty daemon cannot fill the disk:
 * past `maxBytes` the file rotates to `.1`, `.2`, … keeping `keep` old files.
 */
import { closeSync, existsSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

export interface LogFileOptions {
  readonly path: string;
  readonly maxBytes?: number;
  readonly keep?: number;
}

export class RotatingLogFile {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  #fd: number;
  #size: number;

  constructor(options: LogFileOptions) {
    this.path = options.path;
    this.#maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
    this.#keep = options.keep ?? 3;
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  /** pino's destination interface. */
  write(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    if (this.#size > 0 && this.#size + bytes > this.#maxBytes) this.#rotate();
    writeSync(this.#fd, line);
    this.#size += bytes;
    return true;
  }

  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }

  #rotate(): void {
    closeSync(this.#fd);
    rmSync(`${this.path}.${this.#keep}`, { force: true });
    for (let index = this.#keep - 1; index >= 1; index--) {
      const from = `${this.path}.${index}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${index + 1}`);
    }
    if (this.#keep > 0) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = 0;
  }
}
