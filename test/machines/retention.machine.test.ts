/**
 * The retention machine with a simulated clock: a first prune after start, then one per
 * interval; a request is served at once, or by the next prune when one is running; dry runs
 * and real prunes are never merged; results and failures go to the parent as events.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock, sendTo, setup } from 'xstate';
import { type RetentionReport, retentionMachine } from '../../machines/retention.machine.js';

function harness(fail = false) {
  const clock = new SimulatedClock();
  const prunes: {
    dryRun: boolean;
    resolve: (value: Record<string, unknown>) => void;
    reject: (e: Error) => void;
  }[] = [];
  const reports: RetentionReport[] = [];
  const child = retentionMachine.provide({
    actors: {
      prune: fromPromise<Record<string, unknown>, { dryRun: boolean }>(
        ({ input }) =>
          new Promise((resolve, reject) => {
            prunes.push({ dryRun: input.dryRun, resolve, reject });
            if (fail) reject(new Error('disk on fire'));
          }),
      ),
    },
  });
  const parent = setup({
    types: { events: {} as RetentionReport | { type: 'ask'; key: string; dryRun: boolean } },
    actors: { child },
  }).createMachine({
    invoke: { src: 'child', id: 'retention', input: { intervalMs: 60_000, firstDelayMs: 10_000 } },
    on: {
      'store.pruned': { actions: ({ event }) => reports.push(event) },
      'store.pruneFailed': { actions: ({ event }) => reports.push(event) },
      ask: {
        actions: sendTo('retention', ({ event }) => ({
          type: 'retention.request' as const,
          key: event.key,
          dryRun: event.dryRun,
        })),
      },
    },
  });
  const actor = createActor(parent, { clock }).start();
  const state = () => actor.getSnapshot().children.retention?.getSnapshot().value;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return { clock, prunes, reports, actor, state, settle };
}

describe('retention machine', () => {
  it('prunes once after start, then every interval', async () => {
    const h = harness();
    h.clock.increment(9_999);
    expect(h.prunes).toHaveLength(0);
    h.clock.increment(1);
    expect(h.prunes).toEqual([expect.objectContaining({ dryRun: false })]);
    h.prunes[0]?.resolve({ runs: 3 });
    await h.settle();
    expect(h.reports).toEqual([{ type: 'store.pruned', keys: [], report: { runs: 3 } }]);
    expect(h.state()).toBe('idle');
    h.clock.increment(59_999);
    expect(h.prunes).toHaveLength(1);
    h.clock.increment(1);
    expect(h.prunes).toHaveLength(2);
  });

  it('serves a request at once; requests during a prune wait for the next one, dry runs apart', async () => {
    const h = harness();
    h.actor.send({ type: 'ask', key: 'a', dryRun: false });
    expect(h.prunes).toHaveLength(1);
    h.actor.send({ type: 'ask', key: 'b', dryRun: true });
    h.actor.send({ type: 'ask', key: 'c', dryRun: false });
    h.actor.send({ type: 'ask', key: 'd', dryRun: true });
    // The first-prune timer is gone: the machine left `starting`.
    h.clock.increment(10_000);
    expect(h.prunes).toHaveLength(1);
    h.prunes[0]?.resolve({ n: 1 });
    await h.settle();
    expect(h.prunes.map((p) => p.dryRun)).toEqual([false, true]);
    h.prunes[1]?.resolve({ n: 2 });
    await h.settle();
    expect(h.prunes.map((p) => p.dryRun)).toEqual([false, true, false]);
    h.prunes[2]?.resolve({ n: 3 });
    await h.settle();
    expect(h.reports).toEqual([
      { type: 'store.pruned', keys: ['a'], report: { n: 1 } },
      { type: 'store.pruned', keys: ['b', 'd'], report: { n: 2 } },
      { type: 'store.pruned', keys: ['c'], report: { n: 3 } },
    ]);
    expect(h.state()).toBe('idle');
  });

  it('reports a failed prune to the callers and keeps going', async () => {
    const h = harness(true);
    h.actor.send({ type: 'ask', key: 'a', dryRun: false });
    await h.settle();
    expect(h.reports).toEqual([{ type: 'store.pruneFailed', keys: ['a'], message: 'disk on fire' }]);
    expect(h.state()).toBe('idle');
    h.clock.increment(60_000);
    expect(h.prunes).toHaveLength(2);
  });
});
