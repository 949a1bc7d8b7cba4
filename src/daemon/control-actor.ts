/**
 * The callback actor that owns the control socket for the root machine: requests go up as
 * `control.request` events, replies come down as `control.reply`. Bind failures and the end of
 * listening are reported, never thrown, so the machine decides what they mean.
 */
import { fromCallback } from 'xstate';
import type { ControlActorEvent, ControlRequestEvent } from '../../machines/daemon.machine.js';
import { ControlServer, type ControlServerLogger } from '../control/server.js';

export interface ControlActorDeps {
  readonly socketPath: string;
  readonly daemonVersion: string;
  readonly idleTimeoutMs: number;
  readonly logger: ControlServerLogger;
}

export function controlServerLogic(deps: ControlActorDeps) {
  return fromCallback<ControlActorEvent, undefined>(({ sendBack, receive }) => {
    const server = new ControlServer({
      socketPath: deps.socketPath,
      daemonVersion: deps.daemonVersion,
      pid: process.pid,
      idleTimeoutMs: deps.idleTimeoutMs,
      logger: deps.logger,
      // The server validated method and params against the protocol schemas.
      dispatch: (call) => sendBack({ type: 'control.request', ...call } as ControlRequestEvent),
    });
    server.listen().then(
      () => sendBack({ type: 'control.listening' }),
      (error: unknown) => sendBack({ type: 'control.failed', message: (error as Error).message }),
    );
    receive((event) => {
      if (event.type === 'control.reply') server.reply(event.key, event.reply);
    });
    return () => {
      void server.close();
    };
  });
}
