/**
 * What the daemon has to send one control connection and the socket has not taken yet. Lines are
 * handed to the socket only while it is not asking for a drain; the rest wait here, counted in
 * bytes, so that the server can bound them (per connection and for all connections together)
 * and, when it drops a client that does not read, discard them at once instead of leaving them
 * in the socket's own queue until it is destroyed.
 */
import type { Socket } from 'node:net';

export class Outbox {
  readonly #socket: Socket;
  #waiting: Buffer[] = [];
  #waitingBytes = 0;
  /** Since when the client has had unread bytes without a drain (performance.now()); null: none. */
  #backlogSince: number | null = null;
  readonly #onFlushed: () => void;

  /** `onFlushed` runs after a drain moved waiting lines to the socket (producers may resume). */
  constructor(socket: Socket, onFlushed: () => void) {
    this.#socket = socket;
    this.#onFlushed = onFlushed;
    socket.on('drain', () => this.#flush());
  }

  /** Queues one line (already newline-terminated). */
  push(line: Buffer): void {
    if (this.#socket.destroyed || this.#socket.writableEnded) return;
    if (this.#waitingBytes === 0 && !this.#socket.writableNeedDrain) this.#socket.write(line);
    else {
      this.#waiting.push(line);
      this.#waitingBytes += line.length;
    }
    if (this.#backlogSince === null && this.bytes > 0) this.#backlogSince = performance.now();
  }

  /** Bytes not yet read by the client as far as this process knows: waiting here or in the socket. */
  get bytes(): number {
    return this.#waitingBytes + this.#socket.writableLength;
  }

  /**
   * Since when (performance.now()) the client has had something unread without reading what the
   * socket held (a drain); null when nothing is unread. The oldest marks the slowest reader.
   */
  get backlogSince(): number | null {
    if (this.#backlogSince !== null && this.bytes === 0) this.#backlogSince = null;
    return this.#backlogSince;
  }

  /** Forgets every waiting line (the client is being dropped); returns how many bytes that was. */
  discard(): number {
    const bytes = this.#waitingBytes;
    this.#waiting = [];
    this.#waitingBytes = 0;
    return bytes;
  }

  #flush(): void {
    while (this.#waiting.length > 0 && !this.#socket.destroyed) {
      const line = this.#waiting.shift() as Buffer;
      this.#waitingBytes -= line.length;
      if (!this.#socket.write(line)) break;
    }
    // A drain is progress: the client read everything the socket held. What it has not read yet
    // counts from now, so a client that keeps reading never looks like one that stopped.
    this.#backlogSince = this.bytes === 0 ? null : performance.now();
    this.#onFlushed();
  }
}
