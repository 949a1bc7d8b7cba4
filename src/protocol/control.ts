/**
 * The control protocol between the charter-daemon CLI and the daemon: newline-delimited JSON over
 * a Unix-domain socket. One request `{id, method, params}` gets one or more responses with the
 * same id; every response but the last carries `more: true` (streams, e.g. log follow). The first
 * request on a connection is `hello`, which exchanges protocol versions. See docs/control-protocol.md.
 *
 * Pure schemas: no I/O, nothing of ours imported.
 */
import { z } from 'zod';

/** Bumped on any incompatible change to the requests or responses below. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** A request or response line longer than this is refused and the connection closed. */
export const MAX_CONTROL_LINE_BYTES = 1024 * 1024;

export const RequestIdSchema = z.union([
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  z.string().min(1).max(64),
]);
export type RequestId = z.infer<typeof RequestIdSchema>;

export const RequestSchema = z.object({
  id: RequestIdSchema,
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
});
export type Request = z.infer<typeof RequestSchema>;

export const WireErrorSchema = z.object({
  code: z.string().min(1).max(64),
  message: z.string().max(64 * 1024),
  hint: z.string().max(4096).optional(),
});
export type WireError = z.infer<typeof WireErrorSchema>;

export const SuccessResponseSchema = z.object({
  id: RequestIdSchema,
  ok: z.literal(true),
  result: z.unknown(),
  more: z.boolean().optional(),
});
export const ErrorResponseSchema = z.object({
  // null when the request could not be read far enough to know its id.
  id: RequestIdSchema.nullable(),
  ok: z.literal(false),
  error: WireErrorSchema,
});
export const ResponseSchema = z.discriminatedUnion('ok', [SuccessResponseSchema, ErrorResponseSchema]);
export type Response = z.infer<typeof ResponseSchema>;

// ---- methods ---------------------------------------------------------------------------------

export const HelloParamsSchema = z.object({
  protocol: z.number().int().positive(),
  client_version: z.string().min(1).max(64),
});
export type HelloParams = z.infer<typeof HelloParamsSchema>;

export const HelloResultSchema = z.object({
  protocol: z.number().int().positive(),
  daemon_version: z.string(),
  pid: z.number().int().positive(),
});
export type HelloResult = z.infer<typeof HelloResultSchema>;

export const StatusParamsSchema = z.object({}).strict();

export const DaemonStateSchema = z.enum(['booting', 'serving', 'draining', 'stopped']);
export type DaemonState = z.infer<typeof DaemonStateSchema>;

export const RunStateSchema = z.enum([
  'queued',
  'running',
  'waiting',
  'cancelling',
  'succeeded',
  'failed',
  'cancelled',
]);
export type RunState = z.infer<typeof RunStateSchema>;

export const RunCountsSchema = z.object({
  queued: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  waiting: z.number().int().nonnegative(),
  cancelling: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  cancelled: z.number().int().nonnegative(),
});
export type RunCounts = z.infer<typeof RunCountsSchema>;

export const GatewayLinkStatusSchema = z.object({
  /** `offline` = no gateway configured: a normal mode, events stay in the local store. */
  state: z.string(),
  url: z.string().nullable(),
  since: z.string().nullable(),
  detail: z.string().nullable(),
});
export type GatewayLinkStatus = z.infer<typeof GatewayLinkStatusSchema>;

export const StatusResultSchema = z.object({
  pid: z.number().int().positive(),
  version: z.string(),
  state: DaemonStateSchema,
  started_at: z.string(),
  daemon_id: z.string(),
  project_root: z.string(),
  socket_path: z.string(),
  store_path: z.string(),
  log_path: z.string(),
  gateway: GatewayLinkStatusSchema,
  runs: RunCountsSchema,
  inspector: z.object({ url: z.string() }).nullable(),
});
export type StatusResult = z.infer<typeof StatusResultSchema>;

export const StopParamsSchema = z
  .object({
    /** How long in-flight work may take to reach a safe point before it is cut off. */
    timeout_ms: z
      .number()
      .int()
      .positive()
      .max(24 * 3600 * 1000)
      .optional(),
  })
  .strict();
export type StopParams = z.infer<typeof StopParamsSchema>;

export const StopResultSchema = z.object({
  pid: z.number().int().positive(),
  /** true when the daemon was already draining before this request. */
  already_stopping: z.boolean(),
});
export type StopResult = z.infer<typeof StopResultSchema>;

/** The params schema of every method the daemon serves (hello is handled by the transport). */
export const methodParams = {
  status: StatusParamsSchema,
  stop: StopParamsSchema,
} as const;
export type ControlMethod = keyof typeof methodParams;
export type ControlParams<M extends ControlMethod> = z.infer<(typeof methodParams)[M]>;

export function isControlMethod(method: string): method is ControlMethod {
  return Object.hasOwn(methodParams, method);
}
