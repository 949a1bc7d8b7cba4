/**
 * Every method the daemon serves over the control socket: its params schema, the schema of its
 * result (of each item, for a stream) and whether it streams. `hello` is the transport's own and
 * is handled before these. The client (`src/client/`), the server and the published JSON Schema
 * (`docs/control.v1.schema.json`) all read these tables.
 */
import type * as z from 'zod/mini';
import {
  PruneReportSchema,
  StatusParamsSchema,
  StatusResultSchema,
  StopParamsSchema,
  StopResultSchema,
  StoreBackupParamsSchema,
  StoreBackupResultSchema,
  StorePruneParamsSchema,
} from './control.js';
import { MetricsParamsSchema, MetricsResultSchema, WatchParamsSchema, WatchUpdateSchema } from './observe.js';
import {
  GateDecideParamsSchema,
  InputSubmitParamsSchema,
  LogBatchSchema,
  RunAckSchema,
  RunCancelParamsSchema,
  RunDetailSchema,
  RunLogsParamsSchema,
  RunRefParamsSchema,
  RunSubmitParamsSchema,
  RunsListParamsSchema,
  RunsListResultSchema,
} from './runs.js';
import {
  WorkflowDetailSchema,
  WorkflowsListParamsSchema,
  WorkflowsListResultSchema,
  WorkflowsShowParamsSchema,
} from './workflows.js';

export const methodParams = {
  status: StatusParamsSchema,
  stop: StopParamsSchema,
  'run.submit': RunSubmitParamsSchema,
  'runs.list': RunsListParamsSchema,
  'runs.show': RunRefParamsSchema,
  'gate.decide': GateDecideParamsSchema,
  'input.submit': InputSubmitParamsSchema,
  'run.cancel': RunCancelParamsSchema,
  'run.logs': RunLogsParamsSchema,
  metrics: MetricsParamsSchema,
  watch: WatchParamsSchema,
  'store.prune': StorePruneParamsSchema,
  'store.backup': StoreBackupParamsSchema,
  'workflows.list': WorkflowsListParamsSchema,
  'workflows.show': WorkflowsShowParamsSchema,
} as const;

export type ControlMethod = keyof typeof methodParams;
/** What a caller may send: defaults (`limit`, `follow`, …) may be left out. */
export type ControlParamsInput<M extends ControlMethod> = z.input<(typeof methodParams)[M]>;
/** What the daemon works with, defaults filled in. */
export type ControlParams<M extends ControlMethod> = z.infer<(typeof methodParams)[M]>;

/** The result of each method; for a streaming method, of each item of its stream. */
export const methodResults = {
  status: StatusResultSchema,
  stop: StopResultSchema,
  'run.submit': RunAckSchema,
  'runs.list': RunsListResultSchema,
  'runs.show': RunDetailSchema,
  'gate.decide': RunAckSchema,
  'input.submit': RunAckSchema,
  'run.cancel': RunAckSchema,
  'run.logs': LogBatchSchema,
  metrics: MetricsResultSchema,
  watch: WatchUpdateSchema,
  'store.prune': PruneReportSchema,
  'store.backup': StoreBackupResultSchema,
  'workflows.list': WorkflowsListResultSchema,
  'workflows.show': WorkflowDetailSchema,
} as const satisfies Record<ControlMethod, z.ZodMiniType>;

export type ControlResult<M extends ControlMethod> = z.infer<(typeof methodResults)[M]>;

/**
 * Methods answered by a stream: every response but the last carries `more: true`. `run.logs`
 * sends the history in batches, then, with `follow: true`, new entries until the run ends (the
 * last batch has `done: true`); `watch` ends when the daemon stops or the client closes.
 */
export const streamingMethods: ReadonlySet<ControlMethod> = new Set(['run.logs', 'watch']);

export function isControlMethod(method: string): method is ControlMethod {
  return Object.hasOwn(methodParams, method);
}
