/** Run counts by state, and which states are final: shared by the machines, the store and the CLI. No zod, no I/O. */
import type { RunCounts, RunState } from './control.js';

/** A run in one of these states has ended: it has no actor any more, only its record. */
export function isFinalRunState(state: RunState): state is 'succeeded' | 'failed' | 'cancelled' {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

export function emptyRunCounts(): RunCounts {
  return { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 };
}
