/**
 * Splits a byte stream into newline-terminated lines without ever holding more than the limit
 * of an unfinished line: an oversized line is detected as soon as its bytes exceed the limit,
 * not after a newline that may never come.
 */
export class LineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`line longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
  }
}

export class LineDecoder {
  readonly #maxLineBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Returns the lines completed by this chunk (without their `\n`); throws LineTooLongError. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      const lineBytes = this.#pendingBytes + (newline - start);
      if (lineBytes > this.#maxLineBytes) throw new LineTooLongError(this.#maxLineBytes);
      const tail = chunk.subarray(start, newline);
      const line =
        this.#pendingBytes === 0
          ? tail.toString('utf8')
          : Buffer.concat([...this.#pending, tail], lineBytes).toString('utf8');
      this.#pending = [];
      this.#pendingBytes = 0;
      lines.push(line.endsWith('\r') ? line.slice(0, -1) : line);
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#pendingBytes += rest.length;
      if (this.#pendingBytes > this.#maxLineBytes) throw new LineTooLongError(this.#maxLineBytes);
      this.#pending.push(rest);
    }
    return lines;
  }

  /** Bytes of the unfinished line held so far. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }
}
