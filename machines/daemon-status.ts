/**
 * What `status` reports, projected from the root's context: pure, so the tests and the control
 * plane agree.
 */
import type { GatewayLinkStatus, StatusResult } from '../src/protocol/control.js';
import type { DaemonContext } from './daemon-types.js';

export function gatewayStatus(context: DaemonContext): GatewayLinkStatus {
  const { gateway, facts } = context;
  return {
    state: gateway.state,
    url: facts.gatewayUrl,
    since: gateway.since,
    detail:
      facts.gatewayUrl === null
        ? 'no gateway configured: events are kept in the local store'
        : gateway.state === 'superseded'
          ? 'a newer daemon process for this project holds the gateway link'
          : gateway.lastError,
    last_error: gateway.lastError,
    next_retry_at: gateway.retryAt === null ? null : new Date(gateway.retryAt).toISOString(),
    conn_id: gateway.connId,
  };
}

/** The status the daemon reports; pure so that tests and the control plane agree. */
export function statusOf(context: DaemonContext, state: 'booting' | 'serving' | 'draining'): StatusResult {
  const runs = { ...context.liveCounts, ...context.finished };
  const { facts } = context;
  return {
    pid: facts.pid,
    version: facts.version,
    state,
    started_at: facts.startedAt,
    daemon_id: facts.daemonId,
    project_root: facts.projectRoot,
    socket_path: facts.socketPath,
    store_path: facts.storePath,
    log_path: facts.logPath,
    gateway: gatewayStatus(context),
    runs,
    inspector: facts.inspectorUrl === null ? null : { url: facts.inspectorUrl },
  };
}
