/**
 * A run shard: the parent of a slice of the run actors.
 *
 * Why it exists: XState copies a parent's `children` map whenever a child is spawned or stopped,
 * so with every run a direct child of the root, each new run cost O(runs) and a stop of 10,000
 * parked runs took seconds of blocked event loop. Spread over shards (by a hash of the run id),
 * each of those operations touches only its shard. Runs keep their `run:<id>` systemId, so
 * everything addresses them through the system, not through their parent.
 */
import { enqueueActions, sendParent, setup } from 'xstate';
import { errorMessage } from '../src/errors/error-message.js';
import { isFinalRunState } from '../src/protocol/run-counts.js';
import { type RunReport, type RunStateReport, runMachine } from './run.machine.js';
import type { RunInput } from './run-types.js';

export const RUN_SHARDS = 64;

const ERROR_PREFIX = 'xstate.error.actor.';

export type ShardEvent =
  | { type: 'shard.spawn'; run: RunInput }
  | RunReport
  /** A run actor threw (say, its store write failed): contained here, not the whole daemon. */
  | { type: `xstate.error.actor.${string}`; error: unknown };

/** A run whose actor threw: its id, and the error's message and code (e.g. SQLITE_FULL). */
export interface CrashedRun {
  readonly runId: string;
  readonly message: string;
  readonly code?: string;
}

/** Which shard holds a run (FNV-1a of its id). */
export function shardOf(runId: string, shards: number = RUN_SHARDS): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < runId.length; i++) {
    hash ^= runId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

export const runShardMachine = setup({
  types: {
    events: {} as ShardEvent,
  },
  actors: {
    // Provided with its real step runner and checkpoints by the wiring.
    run: runMachine,
  },
  actions: {
    /** Records (best effort) and logs a run whose actor crashed; provided by the wiring. */
    recordCrash: (_args, _params: CrashedRun) => undefined,
  },
}).createMachine({
  id: 'runShard',
  description: 'Parent of a slice of the run actors; passes their reports up to the root.',
  on: {
    'shard.spawn': {
      actions: enqueueActions(({ enqueue, event }) => {
        enqueue.spawnChild('run', {
          id: event.run.runId,
          systemId: `run:${event.run.runId}`,
          input: event.run,
        });
      }),
    },
    'xstate.error.actor.*': {
      actions: enqueueActions(({ enqueue, event }) => {
        if (!('error' in event)) return;
        const runId = event.type.slice(ERROR_PREFIX.length);
        const message = errorMessage(event.error);
        const code = (event.error as { code?: unknown } | null)?.code;
        enqueue({
          type: 'recordCrash',
          params: { runId, message, ...(typeof code === 'string' ? { code } : {}) },
        });
        // The root frees the run's slot and counts it failed, like any failed run.
        enqueue.sendParent({
          type: 'run.state',
          runId,
          state: 'failed',
          waitingFor: null,
        } satisfies RunStateReport);
      }),
    },
    // In order with the run's state reports: an answer reaches the root before the final state.
    'run.answer': { actions: sendParent(({ event }) => event) },
    'run.state': {
      actions: [
        enqueueActions(({ enqueue, event }) => {
          // A finished run's actor is released here; its record lives on in the store.
          if (isFinalRunState(event.state)) enqueue.stopChild(event.runId);
        }),
        sendParent(({ event }) => event),
      ],
    },
  },
});
