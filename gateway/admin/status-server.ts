/**
 * The two ports a platform reaches from outside the pod, as in Istio's data plane: the status port
 * (`GET /healthz/ready`, for kubelet probes and load balancers) and the metrics port
 * (`GET /stats/prometheus`, for scrapers, optionally followed by the application's own metrics).
 * They answer nothing else, so they can listen on every interface while the admin API, which can
 * dump the config and reload, stays on loopback. Plain node:http: two routes need no framework.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RenderedMetrics } from '../pipeline/capabilities.js';

export const READY_PATH = '/healthz/ready';
export const PROMETHEUS_PATH = '/stats/prometheus';
/** A scrape waits at most this long for the application's metrics. */
export const APP_METRICS_TIMEOUT_MS = 2000;

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

export interface MetricsSource {
  render(): Promise<RenderedMetrics>;
  /** Istio's metrics merge: scraped on each request and appended. */
  readonly appMetricsUrl?: string;
}

const TEXT = 'text/plain; charset=utf-8';

function answer(response: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...extra });
  response.end(body);
}

/** GET/HEAD on the one path, 405 for other methods there, 404 anywhere else. */
function onlyPath(path: string, handle: (request: IncomingMessage, response: ServerResponse) => Promise<void> | void) {
  return (request: IncomingMessage, response: ServerResponse): void => {
    const url = request.url ?? '';
    const pathOnly = url.split('?', 1)[0];
    if (pathOnly !== path) return answer(response, 404, TEXT, 'not found\n');
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(response, 405, TEXT, 'method not allowed\n', { allow: 'GET, HEAD' });
    Promise.resolve(handle(request, response)).catch((error: unknown) => {
      if (!response.headersSent) answer(response, 500, TEXT, `${(error as Error).message}\n`);
      else response.destroy();
    });
  };
}

export function createStatusServer(readiness: () => Readiness): http.Server {
  return http.createServer(
    onlyPath(READY_PATH, (_request, response) => {
      const state = readiness();
      if (state.ready) answer(response, 200, TEXT, 'ready\n');
      else answer(response, 503, TEXT, `not ready: ${state.reason}\n`);
    }),
  );
}

async function appMetrics(url: string): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(APP_METRICS_TIMEOUT_MS), headers: { accept: 'text/plain;version=0.0.4' } });
    if (response.status !== 200) {
      await response.body?.cancel();
      return `# meshgate: application metrics at ${url} answered ${response.status}\n`;
    }
    const text = await response.text();
    return text.endsWith('\n') || text === '' ? text : `${text}\n`;
  } catch (error) {
    // A slow or down application must not turn the proxy's own scrape into a failure.
    return `# meshgate: application metrics at ${url} unavailable: ${(error as Error).message}\n`;
  }
}

export function createMetricsServer(source: MetricsSource): http.Server {
  return http.createServer(
    onlyPath(PROMETHEUS_PATH, async (_request, response) => {
      const own = await source.render();
      const body = source.appMetricsUrl === undefined ? own.body : `${own.body}${own.body.endsWith('\n') ? '' : '\n'}${await appMetrics(source.appMetricsUrl)}`;
      answer(response, 200, own.contentType, body);
    }),
  );
}

export function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}

/** Binds `server` to `host:port`; rejects (EADDRINUSE…) instead of emitting an unhandled error. */
export function listenOn(server: http.Server, address: string): Promise<AddressInfo> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(new Error(`cannot listen on ${address}: ${error.message}`));
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
