/**
 * The wire values of `charter.v1` that more than one module needs: the subprotocol, the close
 * codes and the timeouts. Plain constants (no zod), so the link machine can use them too.
 * See docs/protocol.md.
 */

export const GATEWAY_PROTOCOL_VERSION = 1;
export const GATEWAY_SUBPROTOCOL = 'charter.v1';
/** Default largest frame either side accepts (the gateway's `welcome.max_frame` may lower it). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** From the start of a connection attempt to `welcome`, at most (the upgrade included). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** WebSocket close codes of charter.v1 (1000/1001 as usual). */
export const CloseCode = {
  unknown: 4000,
  invalidFrame: 4002,
  frameTooLarge: 4003,
  credentialsRevoked: 4004,
  superseded: 4005,
  cursorInvalid: 4006,
  flowControl: 4008,
  heartbeatTimeout: 4009,
  unsupportedProtocol: 4012,
  draining: 4013,
} as const;
