/**
 * In-process notification of newly stored run events, for `run.logs --follow`. The store is the
 * source of truth: a follower reads history from the store and then only hears what was stored
 * after it, so it never misses nor duplicates an entry (it filters by seq).
 */
import type { LogEntry } from '../protocol/runs.js';
import type { JournalEntry } from '../store/journal-entry.js';

type Listener = (entries: readonly LogEntry[]) => void;

export class RunEventBus {
  readonly #listeners = new Map<string, Set<Listener>>();

  /** Returns the function that unsubscribes. */
  subscribe(runId: string, listener: Listener): () => void {
    let set = this.#listeners.get(runId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(runId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(runId);
    };
  }

  publish(runId: string, entries: readonly JournalEntry[]): void {
    const set = this.#listeners.get(runId);
    if (set === undefined || entries.length === 0) return;
    const logEntries: LogEntry[] = entries.map((entry) => ({
      seq: entry.seq,
      run_seq: entry.run_seq ?? 0,
      ts: entry.ts,
      type: entry.type,
      data: entry.data,
    }));
    for (const listener of [...set]) listener(logEntries);
  }

  get followers(): number {
    let count = 0;
    for (const set of this.#listeners.values()) count += set.size;
    return count;
  }
}
