/**
 * What metrics, health and the live view read from the root actor's snapshot: plain reads of
 * figures the root keeps up to date anyway (counts, queue, link), O(1) whatever the number of runs.
 */
import { type DaemonContext, statusOf } from '../../machines/daemon.machine.js';
import type { StatusResult } from '../protocol/control.js';
import type { StoreFault } from '../store/store-health.js';
import type { Health } from './endpoint.js';
import type { MetricsSources } from './exposition.js';

/** The part of the root's snapshot read here. */
export interface RootSnapshot {
  readonly context: DaemonContext;
  matches(state: 'serving' | 'draining'): boolean;
}

export function daemonFigures(snapshot: RootSnapshot | undefined): ReturnType<MetricsSources['daemon']> {
  if (snapshot === undefined) {
    const none = { queued: 0, running: 0, waiting: 0, cancelling: 0, succeeded: 0, failed: 0, cancelled: 0 };
    return { runs: none, queueDepth: 0, slotsInUse: 0, linkState: 'offline' };
  }
  const { context } = snapshot;
  return {
    runs: { ...context.liveCounts, ...context.finished },
    queueDepth: context.queue.length,
    slotsInUse: context.liveCounts.running + context.liveCounts.cancelling,
    linkState: context.gateway.state,
  };
}

/** The daemon's status as `status` reports it (without the intake's store figures). */
export function statusOfSnapshot(snapshot: RootSnapshot | undefined): StatusResult | undefined {
  if (snapshot === undefined) return undefined;
  const state = snapshot.matches('serving')
    ? 'serving'
    : snapshot.matches('draining')
      ? 'draining'
      : 'booting';
  return statusOf(snapshot.context, state);
}

/** 200 while serving with a healthy store; 503 while starting, draining, or when writes fail. */
export function healthOf(snapshot: RootSnapshot | undefined, fault: StoreFault | null): Health {
  if (snapshot === undefined || (!snapshot.matches('serving') && !snapshot.matches('draining'))) {
    return { ok: false, reason: 'not serving: starting or stopped' };
  }
  if (snapshot.matches('draining')) return { ok: false, reason: 'draining: the daemon is stopping' };
  if (fault !== null) return { ok: false, reason: `store failing (${fault.code}): ${fault.message}` };
  return { ok: true, reason: 'ok' };
}
