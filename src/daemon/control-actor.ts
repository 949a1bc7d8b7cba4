/**
 * The callback actor that owns the control socket for the root machine. Every call goes through
 * the intake, which answers reads itself and turns changes into root events; the root's replies
 * come back down as `control.reply`. Bind failures are reported, never thrown, so the machine
 * decides what they mean.
 */
import { fromCallback } from 'xstate';
import type { ControlActorEvent } from '../../machines/daemon.machine.js';
import { ControlServer, type ControlServerLogger } from '../control/server.js';
import type { Intake } from './intake.js';

export interface ControlActorDeps {
  readonly socketPath: string;
  readonly daemonVersion: string;
  readonly idleTimeoutMs: number;
  readonly logger: ControlServerLogger;
  readonly intake: Intake;
}

export function controlServerLogic(deps: ControlActorDeps) {
  return fromCallback<ControlActorEvent, undefined>(({ sendBack, receive }) => {
    const server: ControlServer = new ControlServer({
      socketPath: deps.socketPath,
      daemonVersion: deps.daemonVersion,
      pid: process.pid,
      idleTimeoutMs: deps.idleTimeoutMs,
      logger: deps.logger,
      abandon: (key) => deps.intake.abandon(key),
      // The server validated method and params against the protocol schemas.
      dispatch: (call) =>
        deps.intake.handle(call, {
          reply: (reply) => server.reply(call.key, reply),
          toRoot: (event) => sendBack(event),
        }),
    });
    server.listen().then(
      () => sendBack({ type: 'control.listening' }),
      (error: unknown) => sendBack({ type: 'control.failed', message: (error as Error).message }),
    );
    receive((event) => {
      if (event.type === 'control.reply') {
        deps.intake.deliver(event.key, event.reply, (reply) => server.reply(event.key, reply));
      }
    });
    return () => {
      void server.close();
    };
  });
}
