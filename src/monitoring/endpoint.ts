/**
 * The daemon's metrics, reachable two ways: `charter-daemon metrics` over the control socket
 * (always), and the opt-in HTTP endpoint (`GET /metrics`, `GET /healthz`) bound to the address
 * of `--metrics` / `daemon.metrics.listen`. prom-client is imported the first time an exposition
 * is needed, never before: with metrics off and nobody asking, it is never loaded.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CharterError } from '../errors/charter-error.js';
import { errorMessage } from '../errors/error-message.js';
import { type ListenAddress, metricsUrl } from '../project/metrics-address.js';
import type { Exposition, MetricsSources } from './exposition.js';

/** What /healthz answers: 200 with `ok`, or 503 with the reason. */
export interface Health {
  readonly ok: boolean;
  readonly reason: string;
}

export class MetricsEndpoint {
  readonly #sources: MetricsSources;
  #exposition: Promise<Exposition> | undefined;
  #server: Server | undefined;
  #url: string | null = null;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
  }

  /** `http://HOST:PORT/metrics` while the HTTP endpoint listens, else null. */
  get url(): string | null {
    return this.#url;
  }

  /** The Prometheus text exposition, right now. */
  async text(): Promise<string> {
    return (await this.#load()).text();
  }

  /** Binds the HTTP endpoint; a bind failure is METRICS_LISTEN_FAILED. */
  async listen(address: ListenAddress, health: () => Health): Promise<string> {
    const exposition = await this.#load();
    const server = createServer((request, response) => {
      void this.#serve(exposition, health, request, response);
    });
    // A scraper holds its connection open between scrapes; it must not keep a stop waiting.
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new CharterError(
            'METRICS_LISTEN_FAILED',
            `cannot listen on ${address.host}:${address.port} for metrics: ${error.code ?? error.message}`,
            { cause: error },
          ),
        );
      });
      server.listen(address.port, address.host, () => resolve());
    });
    this.#server = server;
    const bound = server.address() as AddressInfo;
    this.#url = metricsUrl(bound.address, bound.port);
    return this.#url;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#url = null;
    if (server === undefined) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  #load(): Promise<Exposition> {
    this.#exposition ??= import('./exposition.js').then(({ createExposition }) =>
      createExposition(this.#sources),
    );
    return this.#exposition;
  }

  async #serve(
    exposition: Exposition,
    health: () => Health,
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response
        .writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' })
        .end('method not allowed\n');
      return;
    }
    try {
      if (path === '/metrics') {
        const text = await exposition.text();
        response.writeHead(200, { 'Content-Type': exposition.contentType }).end(text);
        return;
      }
      if (path === '/healthz') {
        const now = health();
        response
          .writeHead(now.ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' })
          .end(`${now.reason}\n`);
        return;
      }
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    } catch (error) {
      response.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${errorMessage(error)}\n`);
    }
  }
}
