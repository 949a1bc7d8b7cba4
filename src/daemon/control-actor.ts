/**
 * The callback actor that owns the control socket for the root machine. Every call goes through
 * the intake, which answers reads itself and turns changes into root events; the root's replies
 * come back down as `control.reply`. Bind failures are reported, never thrown, so the machine
 * decides what they mean.
 *
 * The socket is bound under a private name beside its final path and then renamed into place,
 * because closing a listening Unix socket unlinks the path it was bound at, whatever is there by
 * then: if the state directory was removed and a second daemon now serves at the same path, our
 * close must not remove its socket. On the way out we remove the socket path only while it is
 * still our socket.
 */
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fromCallback } from 'xstate';
import type { ControlActorEvent } from '../../machines/daemon.machine.js';
import { ControlServer, type ControlServerLogger } from '../control/server.js';
import { errorMessage } from '../errors/error-message.js';
import type { Intake } from '../intake/intake.js';
import type { ControlSocketStatus } from '../protocol/control.js';
import { type FileIdentity, fileIdentity, removeIfSame } from './state-watch.js';

export interface ControlActorDeps {
  readonly socketPath: string;
  readonly daemonVersion: string;
  readonly idleTimeoutMs: number;
  /** All clients together (`daemon.control_max_buffered_mb`). */
  readonly maxTotalBufferedBytes: number;
  readonly logger: ControlServerLogger;
  readonly intake: Intake;
  /** Told how to read the server's figures once it exists (for `status`). */
  readonly publishFigures?: (read: () => ControlSocketStatus) => void;
}

export function controlServerLogic(deps: ControlActorDeps) {
  return fromCallback<ControlActorEvent, undefined>(({ sendBack, receive }) => {
    const bindPath = privateBindPath(deps.socketPath);
    let bound: FileIdentity | null = null;
    let stopped = false;
    const server: ControlServer = new ControlServer({
      socketPath: bindPath,
      daemonVersion: deps.daemonVersion,
      pid: process.pid,
      idleTimeoutMs: deps.idleTimeoutMs,
      maxTotalBufferedBytes: deps.maxTotalBufferedBytes,
      logger: deps.logger,
      abandon: (key) => deps.intake.abandon(key),
      // The server validated method and params against the protocol schemas.
      dispatch: (call) =>
        deps.intake.handle(call, {
          reply: (reply) => server.reply(call.key, reply),
          waitForRoom: (resume) => server.waitForRoom(call.key, resume),
          toRoot: (event) => sendBack(event),
        }),
    });
    deps.publishFigures?.(() => server.figures);
    // Left by a killed process that had our pid: nobody else binds under this name.
    rmSync(bindPath, { force: true });
    server
      .listen()
      .then(() => {
        if (stopped) return; // closed before it was bound: publish nothing
        renameSync(bindPath, deps.socketPath);
        bound = fileIdentity(deps.socketPath);
      })
      .then(
        () => sendBack({ type: 'control.listening' }),
        (error: unknown) => sendBack({ type: 'control.failed', message: errorMessage(error) }),
      );
    receive((event) => {
      if (event.type === 'control.reply') {
        deps.intake.deliver(event.key, event.reply, (reply) => server.reply(event.key, reply));
      }
    });
    return () => {
      stopped = true;
      if (bound !== null) removeIfSame(deps.socketPath, bound);
      void server.close();
    };
  });
}

/**
 * A name in the socket's directory that only this process uses, and no longer than the socket's
 * own (socket paths are bounded: see MAX_SOCKET_PATH_BYTES): a pid is at most 5 base-36 digits.
 */
function privateBindPath(socketPath: string): string {
  return join(dirname(socketPath), `.${process.pid.toString(36)}.s`);
}
