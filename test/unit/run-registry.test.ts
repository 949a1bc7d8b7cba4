/**
 * The root's run registry without actors: counts kept beside the map, the FIFO queue, slots.
 */
import { describe, expect, it } from 'vitest';
import {
  executing,
  freeSlotsFor,
  markAdmitted,
  type RunRegistry,
  register,
  track,
} from '../../machines/run-registry.js';
import { emptyRunCounts } from '../../src/protocol/run-counts.js';

const fresh = (): RunRegistry => ({ runs: {}, liveCounts: emptyRunCounts(), queue: [] });
const report = (
  runId: string,
  state: 'queued' | 'running' | 'waiting' | 'cancelling' | 'failed' | 'succeeded',
) => ({
  type: 'run.state' as const,
  runId,
  state,
  waitingFor: state === 'waiting' ? { kind: 'gate' as const, stepId: 'hold' } : null,
});

describe('run registry', () => {
  it('keeps the counts in step with the map, in place', () => {
    const registry = fresh();
    const { runs, liveCounts } = registry;
    register(registry, 'a', 'queued');
    register(registry, 'b', 'waiting');
    expect(registry.liveCounts).toMatchObject({ queued: 1, waiting: 1 });
    expect(registry.runs).toBe(runs); // the same objects: O(1) per event with 10,000 runs
    expect(registry.liveCounts).toBe(liveCounts);
    track(registry, report('b', 'queued'));
    expect(registry.liveCounts).toMatchObject({ queued: 2, waiting: 0 });
  });

  it('hands free slots to the queue first come first served, and counts executing runs', () => {
    const registry = fresh();
    for (const id of ['a', 'b', 'c']) register(registry, id, 'queued');
    const admitted = freeSlotsFor(registry, 2);
    expect(admitted).toEqual(['a', 'b']);
    markAdmitted(registry, admitted);
    expect(registry.queue).toEqual(['c']);
    expect(executing(registry)).toBe(2);
    expect(freeSlotsFor(registry, 2)).toEqual([]);
    track(registry, report('a', 'cancelling'));
    expect(executing(registry)).toBe(2); // a cancelling run still holds its slot
    expect(track(registry, report('a', 'failed'))).toBe('failed');
    expect(freeSlotsFor(registry, 2)).toEqual(['c']);
  });

  it('puts a run back at the end of the queue when it leaves a gate, and forgets ended runs', () => {
    const registry = fresh();
    register(registry, 'gated', 'waiting');
    register(registry, 'q', 'queued');
    track(registry, report('gated', 'queued'));
    expect(registry.queue).toEqual(['q', 'gated']);
    expect(track(registry, report('q', 'succeeded'))).toBe('succeeded'); // ended while queued
    expect(registry.queue).toEqual(['gated']);
    expect(registry.runs.q).toBeUndefined();
    expect(track(registry, report('unknown', 'running'))).toBeNull();
    expect(registry.liveCounts).toMatchObject({ queued: 1, running: 0, succeeded: 0 });
  });
});
