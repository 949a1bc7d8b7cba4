/**
 * Every method the daemon serves over the control socket, with its params schema (`hello` is
 * the transport's own and is handled before these).
 */
import type * as z from 'zod/mini';
import {
  StatusParamsSchema,
  StopParamsSchema,
  StoreBackupParamsSchema,
  StorePruneParamsSchema,
} from './control.js';
import { MetricsParamsSchema, WatchParamsSchema } from './observe.js';
import {
  GateDecideParamsSchema,
  InputSubmitParamsSchema,
  RunCancelParamsSchema,
  RunLogsParamsSchema,
  RunRefParamsSchema,
  RunSubmitParamsSchema,
  RunsListParamsSchema,
} from './runs.js';

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
} as const;

export type ControlMethod = keyof typeof methodParams;
export type ControlParams<M extends ControlMethod> = z.infer<(typeof methodParams)[M]>;

export function isControlMethod(method: string): method is ControlMethod {
  return Object.hasOwn(methodParams, method);
}
