/**
 * Operator lines out of a byte stream (the dev gateway's standard input), never holding more
 * than the limit of one line: a longer line is reported once, as soon as it passes the limit,
 * and the rest of it is skipped up to its newline, so input that never ends a line costs
 * nothing. (On a terminal the kernel's line discipline already bounds a line; a pipe has no
 * such bound.)
 */

/** The longest operator line, in bytes: room for a command with the largest args (72 KiB). */
export const MAX_OPERATOR_LINE_BYTES = 72 * 1024;

export type InputItem = { readonly kind: 'line'; readonly text: string } | { readonly kind: 'tooLong' };

export class OperatorInput {
  readonly #maxBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Inside a line already reported too long: drop bytes until its newline. */
  #skipping = false;

  constructor(maxBytes: number = MAX_OPERATOR_LINE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The lines (and too-long reports) this chunk completes, in order. */
  push(chunk: Buffer): InputItem[] {
    const items: InputItem[] = [];
    let start = 0;
    while (start <= chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (!this.#skipping) {
        if (this.#pendingBytes + piece.length > this.#maxBytes) {
          items.push({ kind: 'tooLong' });
          this.#pending = [];
          this.#pendingBytes = 0;
          this.#skipping = true;
        } else if (piece.length > 0) {
          this.#pending.push(Buffer.from(piece));
          this.#pendingBytes += piece.length;
        }
      }
      if (newline === -1) break;
      if (this.#skipping) this.#skipping = false;
      else items.push({ kind: 'line', text: this.#take() });
      start = newline + 1;
    }
    return items;
  }

  /** At the end of input: the last line, if it had no newline. */
  end(): InputItem[] {
    if (this.#skipping || this.#pendingBytes === 0) return [];
    return [{ kind: 'line', text: this.#take() }];
  }

  #take(): string {
    const line = Buffer.concat(this.#pending, this.#pendingBytes).toString('utf8');
    this.#pending = [];
    this.#pendingBytes = 0;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  }
}
