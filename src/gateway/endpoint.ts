/**
 * Where a daemon connects for a configured gateway address (docs/protocol.md, "Address"). A
 * module of its own, with no imports, so that `gateway-check` can share it without loading the
 * transport (the store, the link machine).
 */

/** `http://h:p/base` → `ws://h:p/base/v1/daemon` (https → wss). */
export function daemonEndpoint(gatewayUrl: string): string {
  const url = new URL(gatewayUrl);
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/daemon`;
  return url.toString();
}
