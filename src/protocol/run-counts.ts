/** Run counts by state, all zero: shared by the root machine and the store. No zod, no I/O. */
import type { RunCounts } from './control.js';

export function emptyRunCounts(): RunCounts {
  return { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 };
}
