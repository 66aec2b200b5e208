/**
 * What Node.js itself costs a proxy on this machine: node:https (TLS 1.3 keep-alive, HTTP/1.1) — or
 * node:http without `--cert` — in front of an undici Pool, the libraries meshgate's ingress is built on,
 * and nothing else — no framework, no routing, no policy, no metrics. It drops hop-by-hop headers both
 * ways, relays the response as it streams with backpressure, and answers 502 when the upstream fails:
 * the least a correct proxy does. The `node-floor-https` and `node-floor-http` targets
 * (bench/README.md#what-runs); the full chain and one HTTP hop are read against them.
 *
 * Mutual TLS, for `node-floor-pair` (two of these in a sidecar pair's places): with `--ca`, the HTTPS
 * listener requires a client certificate signed by that CA; an `https://` upstream is reached with
 * `--client-cert`/`--client-key`, its certificate verified against `--ca` and its URI SAN against
 * `--upstream-identity` (a mesh identity names a workload, not a host).
 * Prints the ready line (contract.ts) once listening on an ephemeral loopback port.
 */
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { createServer as createPlainServer } from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { announceAndStopOnSignal } from './contract.js';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);
/** As the bench upstream's: longer than any measured run. */
const KEEP_ALIVE_TIMEOUT_MS = 120_000;

function forwardedHeaders(raw: readonly string[], authority: string): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (!HOP_BY_HOP.has(name)) headers.push(name, raw[i + 1] as string);
  }
  headers.push('host', authority);
  return headers;
}

function relayHandler(response: ServerResponse): Dispatcher.DispatchHandler {
  return {
    // Nothing to do when the request starts, but undici tells its controller API from the legacy one by this method.
    onRequestStart() {},
    onResponseStart(_controller, statusCode, headers) {
      const relayed: OutgoingHttpHeaders = {};
      for (const name in headers) if (!HOP_BY_HOP.has(name)) relayed[name] = headers[name];
      response.writeHead(statusCode, relayed);
    },
    onResponseData(controller, chunk) {
      if (!response.write(chunk)) {
        controller.pause();
        response.once('drain', () => controller.resume());
      }
    },
    onResponseEnd() {
      response.end();
    },
    onResponseError(_controller, error) {
      if (response.headersSent) response.destroy(error);
      else response.writeHead(502).end();
    },
  };
}

/** node:tls's `subjectaltname` lists URIs as `URI:spiffe://…`, comma separated. */
function identityMismatch(expected: string): (host: string, certificate: PeerCertificate) => Error | undefined {
  return (_host, certificate) => {
    const names = (certificate.subjectaltname ?? '').split(', ');
    return names.includes(`URI:${expected}`) ? undefined : new Error(`upstream identity is not ${expected}`);
  };
}

const OPTIONS = {
  upstream: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
  'client-cert': { type: 'string' },
  'client-key': { type: 'string' },
  'upstream-identity': { type: 'string' },
} as const;

function upstreamPool(upstream: URL, values: { 'client-cert'?: string; 'client-key'?: string; ca?: string; 'upstream-identity'?: string }): Pool {
  if (upstream.protocol !== 'https:') return new Pool(upstream.origin);
  const clientCert = values['client-cert'];
  const clientKey = values['client-key'];
  const identity = values['upstream-identity'];
  if (clientCert === undefined || clientKey === undefined || values.ca === undefined || identity === undefined) {
    throw new Error('an https:// upstream needs --client-cert, --client-key, --ca and --upstream-identity');
  }
  return new Pool(upstream.origin, {
    connect: {
      cert: readFileSync(clientCert),
      key: readFileSync(clientKey),
      ca: readFileSync(values.ca),
      minVersion: 'TLSv1.3',
      checkServerIdentity: identityMismatch(identity),
    },
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: OPTIONS });
  if (values.upstream === undefined || (values.cert === undefined) !== (values.key === undefined)) throw new Error('--upstream <url> is required, and --cert <pem> --key <pem> go together');
  const upstream = new URL(values.upstream);
  const pool = upstreamPool(upstream, values);
  const relay: RequestListener = (request: IncomingMessage, response: ServerResponse) => {
    const hasBody = request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined;
    pool.dispatch(
      { method: request.method as Dispatcher.HttpMethod, path: request.url ?? '/', headers: forwardedHeaders(request.rawHeaders, upstream.host), body: hasBody ? request : null },
      relayHandler(response),
    );
  };
  const server =
    values.cert === undefined || values.key === undefined
      ? createPlainServer(relay)
      : createTlsServer(
          {
            cert: readFileSync(values.cert),
            key: readFileSync(values.key),
            minVersion: 'TLSv1.3',
            ...(values.ca === undefined ? {} : { ca: readFileSync(values.ca), requestCert: true, rejectUnauthorized: true }),
          },
          relay,
        );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  announceAndStopOnSignal(server, async () => {
    server.close();
    await pool.close();
  });
}

await main();
