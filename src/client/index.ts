/**
 * `charter-daemon/client`: the typed client of a project daemon's control socket.
 *
 *   import { connect } from 'charter-daemon/client';
 *   const client = await connect({ projectPath: '.' });
 *   const { run_id } = await client.submitRun({ workflow_id: 'greet', inputs: { name: 'Ana' } });
 *
 * See docs/client.md. Loads neither the daemon, nor its store, nor its state machines.
 */
export type { ErrorCode } from '../errors/catalogue.js';
export { CharterError, hasCode, isCharterError } from '../errors/charter-error.js';
export type {
  DaemonState,
  GatewayLinkStatus,
  HelloResult,
  PruneReportResult,
  RunCounts,
  RunState,
  StatusResult,
  StopResult,
  StoreBackupResult,
} from '../protocol/control.js';
export { CONTROL_PROTOCOL_VERSION } from '../protocol/control.js';
export type {
  ControlMethod,
  ControlParams,
  ControlParamsInput,
  ControlResult,
} from '../protocol/methods.js';
export type { MetricsResult, WatchRun, WatchUpdate } from '../protocol/observe.js';
export type {
  GateDecideParams,
  InputSubmitParams,
  LogBatch,
  LogEntry,
  RunAck,
  RunCancelParams,
  RunDetail,
  RunSubmitParams,
  RunSummary,
  RunsListResult,
  StepRecord,
  Waiting,
} from '../protocol/runs.js';
export type {
  WorkflowDetail,
  WorkflowStep,
  WorkflowSummary,
  WorkflowsListResult,
} from '../protocol/workflows.js';
export {
  type CallOptions,
  CharterClient,
  type ConnectOptions,
  connect,
  type StreamMethod,
  type UnaryMethod,
} from './client.js';
