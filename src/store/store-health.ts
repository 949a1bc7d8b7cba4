/**
 * Whether the store can be written, as the daemon last found out. A write that fails (the disk
 * is full, the file is unwritable or damaged) is reported here by whoever caught it; the fault
 * stands until a later write is seen to commit. `status` shows it, and refusals name it.
 */
import { setImmediate as later } from 'node:timers';
import type { CodeOf } from '../errors/catalogue.js';
import { errorMessage } from '../errors/error-message.js';
import type { Store } from './store.js';

export interface StoreFault {
  /** DISK_FULL when the disk or the database is full, else STORE_FAILED. */
  readonly code: CodeOf<'DISK_FULL' | 'STORE_FAILED'>;
  readonly message: string;
  readonly since: string;
}

const DISK_FULL_CODES = new Set(['SQLITE_FULL', 'ENOSPC', 'EDQUOT']);

/** The catalogue code and message for a failed store write. */
export function classifyStoreError(
  error: unknown,
  storePath: string,
): { code: StoreFault['code']; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && DISK_FULL_CODES.has(code)) {
    return {
      code: 'DISK_FULL',
      message: `the disk holding ${storePath} is full (${code}): ${errorMessage(error)}`,
    };
  }
  return { code: 'STORE_FAILED', message: `writing ${storePath} failed: ${errorMessage(error)}` };
}

export class StoreHealth {
  #fault: StoreFault | null = null;
  #probe = false;
  readonly #store: Store;
  readonly #onChange: (fault: StoreFault | null) => void;

  constructor(store: Store, onChange: (fault: StoreFault | null) => void = () => undefined) {
    this.#store = store;
    this.#onChange = onChange;
    store.onAppend((entry) => {
      if (this.#fault === null || this.#probe) return;
      this.#probe = true;
      // Appends notify inside their transaction: look once it has ended. The entry is in the
      // journal then only if its transaction committed.
      later(() => {
        this.#probe = false;
        if (this.#fault !== null && this.#store.lastSeq() >= entry.seq) this.#set(null);
      });
    });
  }

  get fault(): StoreFault | null {
    return this.#fault;
  }

  /**
   * Whether the store takes writes, as far as can be known now: true while no fault stands;
   * otherwise a tiny write is tried, and its success clears the fault. Writers ask before
   * starting something they could not finish, such as applying a command.
   */
  writable(): boolean {
    if (this.#fault === null) return true;
    try {
      this.#store.probeWrite();
    } catch {
      return false;
    }
    this.#set(null);
    return true;
  }

  /** Records a failed write; returns its catalogue code and message for the refusal. */
  failed(error: unknown): { code: StoreFault['code']; message: string } {
    const classified = classifyStoreError(error, this.#store.path);
    if (this.#fault?.code !== classified.code) {
      this.#set({ ...classified, since: new Date().toISOString() });
    }
    return classified;
  }

  #set(fault: StoreFault | null): void {
    this.#fault = fault;
    this.#onChange(fault);
  }
}
