/**
 * Round-robin turns for parse work, so that one connection flooding the socket cannot starve
 * the others. A connection with complete lines to handle is queued here (and its socket paused
 * by the server); each event-loop turn (`setImmediate`, after the I/O callbacks of that turn)
 * gives every queued connection one bounded slice of work, in the order they became ready, and
 * requeues those with lines left. A request from a quiet connection therefore waits for at most
 * one slice of each busy connection ahead of it, however much those have sent.
 */
export class FairTurns<T> {
  readonly #work: (item: T) => boolean;
  #ready = new Set<T>();
  #scheduled = false;
  #stopped = false;

  /** `work` does one bounded slice for `item` and returns true when it has more to do. */
  constructor(work: (item: T) => boolean) {
    this.#work = work;
  }

  /** Queues `item` for the next turn (once, however often it is added). */
  add(item: T): void {
    if (this.#stopped) return;
    this.#ready.add(item);
    this.#schedule();
  }

  /** Drops `item` from the queue (its connection went away). */
  remove(item: T): void {
    this.#ready.delete(item);
  }

  stop(): void {
    this.#stopped = true;
    this.#ready.clear();
  }

  #schedule(): void {
    if (this.#scheduled || this.#ready.size === 0) return;
    this.#scheduled = true;
    setImmediate(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    const turn = this.#ready;
    this.#ready = new Set();
    for (const item of turn) {
      if (this.#stopped) return;
      if (this.#work(item)) this.#ready.add(item);
    }
    this.#schedule();
  }
}
