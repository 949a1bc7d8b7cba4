/**
 * Control-protocol methods for watching the daemon: `metrics` (the Prometheus exposition over
 * the socket) and `watch` (the stream behind `charter-daemon top`). zod/mini, like the rest of
 * the control protocol.
 */
import * as z from 'zod/mini';
import { DaemonStateSchema, RunCountsSchema } from './control.js';
import { RunSummarySchema, WaitingSchema } from './runs.js';

export const MetricsParamsSchema = z.strictObject({});

export const MetricsResultSchema = z.object({
  /** The Prometheus text exposition format (version 0.0.4), as `GET /metrics` serves it. */
  text: z.string(),
});
export type MetricsResult = z.infer<typeof MetricsResultSchema>;

/** The most recent finished runs a `watch` stream carries at most. */
export const MAX_WATCH_RECENT = 100;

export const WatchParamsSchema = z.strictObject({
  /** How many of the most recent finished runs to carry (default 20). */
  recent: z._default(z.int().check(z.gte(0), z.lte(MAX_WATCH_RECENT)), 20),
});
export type WatchParams = z.infer<typeof WatchParamsSchema>;

/** A run as the live view shows it. */
export const WatchRunSchema = z.object({
  ...RunSummarySchema.shape,
  finished_at: z.nullable(z.string()),
  /** The gate or input step the run waits at (with the input's fields), else null. */
  waiting: z.nullable(WaitingSchema),
});
export type WatchRun = z.infer<typeof WatchRunSchema>;

export const WatchHeaderSchema = z.object({
  pid: z.int(),
  version: z.string(),
  state: DaemonStateSchema,
  started_at: z.string(),
  project_root: z.string(),
  gateway: z.object({ state: z.string(), url: z.nullable(z.string()), since: z.nullable(z.string()) }),
  /** Events the gateway has not acknowledged, and the age of the oldest (null: none). */
  backlog: z.int().check(z.nonnegative()),
  oldest_unacked_age_seconds: z.nullable(z.number()),
  /** Journal entries per second over the last minute, oldest first (one number a second). */
  events_per_second: z.array(z.number()),
  runs: RunCountsSchema,
  store_fault: z.nullable(z.object({ code: z.string(), message: z.string() })),
});
export type WatchHeader = z.infer<typeof WatchHeaderSchema>;

/**
 * One message of a `watch` stream. The first has `reset: true`: the client forgets what it had;
 * the live runs then arrive in batches (of at most 500). Later messages carry the runs that
 * changed (`runs`), the live runs that finished (`removed`), and the recent finished runs when
 * they changed. The header comes with every message. The stream ends when the daemon stops.
 */
export const WatchUpdateSchema = z.object({
  header: WatchHeaderSchema,
  reset: z.boolean(),
  /** Live runs (queued, running, waiting, cancelling) added or changed. */
  runs: z.array(WatchRunSchema),
  /** Ids of runs no longer live (they finished). */
  removed: z.array(z.string()),
  /** The most recent finished runs, newest first; absent when unchanged. */
  recent: z.optional(z.array(WatchRunSchema)),
});
export type WatchUpdate = z.infer<typeof WatchUpdateSchema>;
