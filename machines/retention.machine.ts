/**
 * Retention: when the store is pruned. Spawned by the root on entry to `serving` (systemId
 * `retention`); prunes shortly after start (`firstPrune`), then every `pruneInterval`, and at
 * once when asked (`store prune`). One prune at a time: requests that arrive meanwhile wait and
 * are served by the next one (a dry run never changes anything, so it runs on its own).
 *
 *   idle ──firstPrune / pruneInterval / retention.request──▶ pruning ──done / error──▶ idle
 *
 * The machine decides; the pruning itself is the provided `prune` promise actor (the wiring runs
 * src/store/retention.ts in slices that leave the event loop free). Results go to the root as
 * `store.pruned` / `store.pruneFailed`, which answers the caller and keeps the last report for
 * `status`.
 */

import { assign, enqueueActions, fromPromise, setup } from 'xstate';
import { errorMessage } from '../src/errors/error-message.js';

/** What a prune reports; the shape of src/store/retention.ts PruneReport, kept opaque here. */
export type PruneResult = Readonly<Record<string, unknown>>;

export interface RetentionInput {
  /** Between automatic prunes. */
  readonly intervalMs: number;
  /** After start, before the first automatic prune. */
  readonly firstDelayMs: number;
}

export interface PruneRequest {
  /** The control call to answer, or null for an automatic prune. */
  readonly key: string | null;
  readonly dryRun: boolean;
}

export interface RetentionContext {
  readonly intervalMs: number;
  readonly firstDelayMs: number;
  /** The prune in progress, and the callers it answers. */
  current: { dryRun: boolean; keys: string[] } | null;
  /** Requests that arrived while pruning. */
  waiting: PruneRequest[];
}

export type RetentionEvent = { type: 'retention.request'; key: string; dryRun: boolean };

/** What the root hears. */
export type RetentionReport =
  | { type: 'store.pruned'; keys: string[]; report: PruneResult }
  | { type: 'store.pruneFailed'; keys: string[]; message: string };

export const retentionMachine = setup({
  types: {
    context: {} as RetentionContext,
    events: {} as RetentionEvent,
    input: {} as RetentionInput,
  },
  actors: {
    // Provided by the wiring (src/daemon/run-daemon.ts) or by tests.
    prune: fromPromise<PruneResult, { dryRun: boolean }>(async () => ({})),
  },
  actions: {
    begin: assign(({ context }, params: PruneRequest) => {
      // Requests of the same kind that were waiting are answered by this prune too.
      const same = context.waiting.filter((request) => request.dryRun === params.dryRun);
      const keys = [
        ...new Set([params.key, ...same.map((request) => request.key)].filter((key) => key !== null)),
      ];
      return {
        current: { dryRun: params.dryRun, keys },
        waiting: context.waiting.filter((request) => request.dryRun !== params.dryRun),
      };
    }),
    queue: assign({
      waiting: ({ context, event }) => [...context.waiting, { key: event.key, dryRun: event.dryRun }],
    }),
    reportDone: enqueueActions(({ context, enqueue }, params: { report: PruneResult }) => {
      enqueue.sendParent({ type: 'store.pruned', keys: context.current?.keys ?? [], report: params.report });
    }),
    reportFailed: enqueueActions(({ context, enqueue }, params: { message: string }) => {
      enqueue.sendParent({
        type: 'store.pruneFailed',
        keys: context.current?.keys ?? [],
        message: params.message,
      });
    }),
    finish: assign({ current: null }),
  },
  guards: {
    requestWaiting: ({ context }) => context.waiting.length > 0,
  },
  delays: {
    firstPrune: ({ context }) => context.firstDelayMs,
    pruneInterval: ({ context }) => context.intervalMs,
  },
}).createMachine({
  id: 'retention',
  description: 'Prunes the store by its retention policy: periodically, after start, and on request.',
  context: ({ input }) => ({
    intervalMs: input.intervalMs,
    firstDelayMs: input.firstDelayMs,
    current: null,
    waiting: [],
  }),
  initial: 'starting',
  states: {
    starting: {
      description: 'Waiting a little after start before the first automatic prune.',
      after: {
        firstPrune: { target: 'pruning', actions: { type: 'begin', params: { key: null, dryRun: false } } },
      },
      on: {
        'retention.request': {
          target: 'pruning',
          actions: { type: 'begin', params: ({ event }) => ({ key: event.key, dryRun: event.dryRun }) },
        },
      },
    },
    idle: {
      always: {
        guard: 'requestWaiting',
        target: 'pruning',
        actions: {
          type: 'begin',
          params: ({ context }) => context.waiting[0] ?? { key: null, dryRun: false },
        },
      },
      after: {
        pruneInterval: {
          target: 'pruning',
          actions: { type: 'begin', params: { key: null, dryRun: false } },
        },
      },
      on: {
        'retention.request': {
          target: 'pruning',
          actions: { type: 'begin', params: ({ event }) => ({ key: event.key, dryRun: event.dryRun }) },
        },
      },
    },
    pruning: {
      description: 'The prune actor works in slices; the event loop stays free.',
      invoke: {
        src: 'prune',
        input: ({ context }) => ({ dryRun: context.current?.dryRun ?? false }),
        onDone: {
          target: 'idle',
          actions: [{ type: 'reportDone', params: ({ event }) => ({ report: event.output }) }, 'finish'],
        },
        onError: {
          target: 'idle',
          actions: [
            {
              type: 'reportFailed',
              params: ({ event }) => ({
                message: errorMessage(event.error),
              }),
            },
            'finish',
          ],
        },
      },
      on: {
        'retention.request': { actions: 'queue' },
      },
    },
  },
});
