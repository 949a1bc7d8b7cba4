/**
 * The address the metrics endpoint listens on (`--metrics ADDR`, `daemon.metrics.listen`):
 * `HOST:PORT`, `[IPV6]:PORT`, or a bare `PORT` (loopback). The endpoint has no authentication,
 * so only loopback addresses are accepted unless the operator says otherwise.
 */
import { isIP } from 'node:net';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export type ParsedAddress = { ok: true; address: ListenAddress } | { ok: false; message: string };

const DEFAULT_HOST = '127.0.0.1';

/** Reads `HOST:PORT`, `[IPV6]:PORT` or `PORT`; port 0 asks the system for a free port. */
export function parseListenAddress(text: string): ParsedAddress {
  const trimmed = text.trim();
  let host = DEFAULT_HOST;
  let portText = trimmed;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (isIP(host) !== 6) return { ok: false, message: `"${text}": ${host} is not an IPv6 address` };
  } else if (trimmed.includes(':')) {
    const at = trimmed.lastIndexOf(':');
    host = trimmed.slice(0, at);
    portText = trimmed.slice(at + 1);
    if (host.includes(':')) {
      return { ok: false, message: `"${text}": write an IPv6 address in brackets, e.g. [::1]:9464` };
    }
    if (host === '') return { ok: false, message: `"${text}": the host is missing, e.g. 127.0.0.1:9464` };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) {
    return { ok: false, message: `"${text}": expected HOST:PORT with a port from 0 to 65535` };
  }
  return { ok: true, address: { host, port: Number(portText) } };
}

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and `localhost`: reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === 'localhost') return true;
  if (isIP(lower) === 4) return lower.startsWith('127.');
  if (isIP(lower) === 6) {
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && (mapped[1] ?? '').startsWith('127.');
  }
  return false;
}

/** The endpoint's URL for a bound address (IPv6 in brackets). */
export function metricsUrl(host: string, port: number, path = '/metrics'): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}${path}`;
}
