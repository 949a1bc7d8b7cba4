/**
 * The control protocol between the charter-daemon CLI and the daemon: newline-delimited JSON over
 * a Unix-domain socket. One request `{id, method, params}` gets one or more responses with the
 * same id; every response but the last carries `more: true` (streams, e.g. log follow). The first
 * request on a connection is `hello`, which exchanges protocol versions. See docs/control-protocol.md.
 *
 * Pure schemas: no I/O, nothing of ours imported. Written with `zod/mini`, the tree-shakable
 * form of zod: the CLI bundles these schemas, and a CLI call's time is mostly loading code.
 */
import * as z from 'zod/mini';

/** Bumped on any incompatible change to the requests or responses below. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** A request or response line longer than this is refused and the connection closed. */
export const MAX_CONTROL_LINE_BYTES = 1024 * 1024;

export const RequestIdSchema = z.union([
  z.int().check(z.nonnegative(), z.lte(Number.MAX_SAFE_INTEGER)),
  z.string().check(z.minLength(1), z.maxLength(64)),
]);
export type RequestId = z.infer<typeof RequestIdSchema>;

export const RequestSchema = z.object({
  id: RequestIdSchema,
  method: z.string().check(z.minLength(1), z.maxLength(64)),
  params: z.optional(z.unknown()),
});
export type Request = z.infer<typeof RequestSchema>;

export const WireErrorSchema = z.object({
  code: z.string().check(z.minLength(1), z.maxLength(64)),
  message: z.string().check(z.maxLength(64 * 1024)),
  hint: z.optional(z.string().check(z.maxLength(4096))),
});
export type WireError = z.infer<typeof WireErrorSchema>;

/** What a handler answers to one call: a result (with `more` for all but the last of a stream) or an error. */
export type ControlReply = { result: unknown; more?: boolean } | { error: WireError };

export const SuccessResponseSchema = z.object({
  id: RequestIdSchema,
  ok: z.literal(true),
  result: z.unknown(),
  more: z.optional(z.boolean()),
});
export const ErrorResponseSchema = z.object({
  // null when the request could not be read far enough to know its id.
  id: z.nullable(RequestIdSchema),
  ok: z.literal(false),
  error: WireErrorSchema,
});
export const ResponseSchema = z.discriminatedUnion('ok', [SuccessResponseSchema, ErrorResponseSchema]);
export type Response = z.infer<typeof ResponseSchema>;

// ---- methods ---------------------------------------------------------------------------------

export const HelloParamsSchema = z.object({
  protocol: z.int().check(z.positive()),
  client_version: z.string().check(z.minLength(1), z.maxLength(64)),
});
export type HelloParams = z.infer<typeof HelloParamsSchema>;

export const HelloResultSchema = z.object({
  protocol: z.int().check(z.positive()),
  daemon_version: z.string(),
  pid: z.int().check(z.positive()),
});
export type HelloResult = z.infer<typeof HelloResultSchema>;

export const StatusParamsSchema = z.strictObject({});

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
  queued: z.int().check(z.nonnegative()),
  running: z.int().check(z.nonnegative()),
  waiting: z.int().check(z.nonnegative()),
  cancelling: z.int().check(z.nonnegative()),
  succeeded: z.int().check(z.nonnegative()),
  failed: z.int().check(z.nonnegative()),
  cancelled: z.int().check(z.nonnegative()),
});
export type RunCounts = z.infer<typeof RunCountsSchema>;

export const GatewayLinkStatusSchema = z.object({
  /** offline | connecting | handshaking | authed | backoff | rejected | superseded | closed */
  /** `offline` means no gateway is configured: events stay in the local store. */
  state: z.string(),
  url: z.nullable(z.string()),
  since: z.nullable(z.string()),
  detail: z.nullable(z.string()),
  /** The last error of the link (never contains the token). */
  last_error: z.optional(z.nullable(z.string())),
  next_retry_at: z.optional(z.nullable(z.string())),
  conn_id: z.optional(z.nullable(z.string())),
  /** Events stored but not yet acknowledged by the gateway. */
  backlog: z.optional(z.int().check(z.nonnegative())),
  oldest_unacked_age_seconds: z.optional(z.nullable(z.number())),
});
export type GatewayLinkStatus = z.infer<typeof GatewayLinkStatusSchema>;

/** The daemon's log file: whether it takes lines, and what was lost while it did not. */
export const LogFileStatusSchema = z.object({
  path: z.string(),
  /** Lines dropped because the log file could not be written, since the daemon started. */
  dropped_lines: z.int().check(z.nonnegative()),
  /** The last write failure (`CODE: message`), null when there was none. */
  last_error: z.nullable(z.string()),
  last_error_at: z.nullable(z.string()),
  /** True while writes fail: lines are dropped until a retry (about once a second) succeeds. */
  failing: z.boolean(),
});
export type LogFileStatus = z.infer<typeof LogFileStatusSchema>;

export const RetentionPolicySchema = z.object({
  max_age_days: z.number(),
  max_finished_runs: z.int(),
  max_store_mb: z.number(),
  interval_minutes: z.number(),
});
export type RetentionPolicyStatus = z.infer<typeof RetentionPolicySchema>;

/** What a prune did (or, dry run, would do). */
export const PruneReportSchema = z.object({
  dry_run: z.boolean(),
  started_at: z.string(),
  duration_ms: z.number(),
  runs: z.int().check(z.nonnegative()),
  events: z.int().check(z.nonnegative()),
  bytes_before: z.number(),
  bytes_after: z.number(),
  bytes_freed: z.number(),
  kept_for_gateway: z.boolean(),
  over_budget: z.boolean(),
  over_budget_reason: z.nullable(z.string()),
  longest_slice_ms: z.number(),
  aborted: z.boolean(),
});
export type PruneReportResult = z.infer<typeof PruneReportSchema>;

/** The store's size, retention policy and what it keeps. */
export const StoreStatusSchema = z.object({
  /** database + WAL on disk */
  size_bytes: z.number(),
  /** pages in use (what max_store_mb bounds) */
  used_bytes: z.number(),
  policy: RetentionPolicySchema,
  oldest_kept_run: z.nullable(z.object({ run_id: z.string(), state: z.string(), finished_at: z.string() })),
  last_prune: z.nullable(PruneReportSchema),
  /** used_bytes is above max_store_mb; `over_budget_reason` says why (e.g. unacknowledged events). */
  over_budget: z.boolean(),
  over_budget_reason: z.nullable(z.string()),
});
export type StoreStatus = z.infer<typeof StoreStatusSchema>;

export const StorePruneParamsSchema = z.strictObject({
  dry_run: z.optional(z.boolean()),
});

export const StoreBackupParamsSchema = z.strictObject({
  /** Absolute path of the copy to write; must not exist yet. */
  path: z.string().check(z.minLength(2), z.maxLength(4096), z.startsWith('/')),
});

export const StoreBackupResultSchema = z.object({
  path: z.string(),
  bytes: z.number(),
  duration_ms: z.number(),
  daemon_id: z.string(),
  /** The newest journal seq in the copy. */
  last_seq: z.number(),
  /** true: made by the running daemon (online backup); false: read directly from a stopped store. */
  online: z.boolean(),
});
export type StoreBackupResult = z.infer<typeof StoreBackupResultSchema>;

/** The control socket's own health: what it buffers for clients, and whether it accepts. */
export const ControlSocketStatusSchema = z.object({
  connections: z.int().check(z.nonnegative()),
  /** Bytes written for clients that they have not read yet, all connections together. */
  buffered_bytes: z.number().check(z.nonnegative()),
  /** The cap on buffered_bytes (`daemon.control_max_buffered_mb`). */
  max_buffered_bytes: z.number().check(z.nonnegative()),
  /** Clients dropped with CLIENT_TOO_SLOW since the daemon started. */
  dropped_slow_clients: z.int().check(z.nonnegative()),
  /** False while new connections are refused for lack of file descriptors. */
  accepting: z.boolean(),
  /** Connections refused or failed for lack of file descriptors since start. */
  accept_errors: z.int().check(z.nonnegative()),
  last_accept_error: z.nullable(z.string()),
  last_accept_error_at: z.nullable(z.string()),
  /** While not accepting: when the daemon looks for free descriptors again. */
  next_accept_retry_at: z.nullable(z.string()),
});
export type ControlSocketStatus = z.infer<typeof ControlSocketStatusSchema>;

export const StatusResultSchema = z.object({
  pid: z.int().check(z.positive()),
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
  inspector: z.nullable(z.object({ url: z.string() })),
  /** The last store write that failed, until one succeeds again; absent or null when healthy. */
  store_fault: z.optional(z.nullable(z.object({ code: z.string(), message: z.string(), since: z.string() }))),
  /** Absent from daemons that do not report it. */
  log: z.optional(LogFileStatusSchema),
  /** The Prometheus endpoint while it listens (`--metrics`), else null; absent from older daemons. */
  metrics: z.optional(z.nullable(z.object({ url: z.string() }))),
  /** Absent from daemons that do not report it. */
  store: z.optional(StoreStatusSchema),
  /** The control socket's health; absent from daemons that do not report it. */
  control: z.optional(ControlSocketStatusSchema),
});
export type StatusResult = z.infer<typeof StatusResultSchema>;

export const StopParamsSchema = z.strictObject({
  /** How long in-flight work may take to reach a safe point before it is cut off. */
  timeout_ms: z.optional(z.int().check(z.positive(), z.lte(24 * 3600 * 1000))),
});
export type StopParams = z.infer<typeof StopParamsSchema>;

export const StopResultSchema = z.object({
  pid: z.int().check(z.positive()),
  /** true when the daemon was already draining before this request. */
  already_stopping: z.boolean(),
  /** How long the daemon lets in-flight work reach a safe point before it cuts it off. */
  drain_timeout_ms: z.int().check(z.positive()),
});
export type StopResult = z.infer<typeof StopResultSchema>;
