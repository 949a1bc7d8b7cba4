/**
 * Tells `run.logs --follow` followers that their run has new stored events. It listens to the
 * store's append notification, so every writer reaches followers — a checkpoint, step output,
 * a run failed by the crash path or by recovery — without any writer having to remember them.
 * The store is the source of truth: a follower is only told "something was stored" and reads
 * the store itself after the writing transaction has ended, so it never sees an entry that was
 * rolled back, nor misses or repeats one (it reads by seq).
 */
import { setImmediate as later } from 'node:timers';
import type { Store } from '../store/store.js';

type Listener = () => void;

export class RunFollowers {
  readonly #listeners = new Map<string, Set<Listener>>();
  /** Runs with new entries since the last notification round. */
  readonly #touched = new Set<string>();
  #scheduled = false;
  readonly #unsubscribe: () => void;

  constructor(store: Store) {
    this.#unsubscribe = store.onAppend((entry) => {
      const runId = entry.run_id;
      // The common case (nobody follows this run) costs one map lookup.
      if (runId === null || !this.#listeners.has(runId)) return;
      this.#touched.add(runId);
      if (this.#scheduled) return;
      this.#scheduled = true;
      // Appends notify from inside their transaction: tell followers once it has ended.
      later(() => this.#notify());
    });
  }

  /** `onStored` is called (after the writing transaction) whenever the run has new entries. */
  subscribe(runId: string, onStored: Listener): () => void {
    let set = this.#listeners.get(runId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(runId, set);
    }
    set.add(onStored);
    return () => {
      set.delete(onStored);
      if (set.size === 0) this.#listeners.delete(runId);
    };
  }

  get followers(): number {
    let count = 0;
    for (const set of this.#listeners.values()) count += set.size;
    return count;
  }

  close(): void {
    this.#unsubscribe();
    this.#listeners.clear();
  }

  #notify(): void {
    this.#scheduled = false;
    const runs = [...this.#touched];
    this.#touched.clear();
    for (const runId of runs) {
      for (const listener of [...(this.#listeners.get(runId) ?? [])]) listener();
    }
  }
}
