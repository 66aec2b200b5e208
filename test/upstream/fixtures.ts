/** Shared pieces of the upstream tests: loopback servers, cluster definitions, seeded randomness. */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import type { TrafficPolicy } from '../../gateway/config/kinds/destination-rule.js';
import { clusterName } from '../../gateway/upstream/cluster.js';
import type { ClusterDefinition } from '../../gateway/upstream/cluster.js';
import { resolvePolicy } from '../../gateway/upstream/policy.js';
import type { RegistryEndpoint } from '../../gateway/upstream/registry.js';
import { ISTIO_DEFAULT_RETRY_POLICY } from '../../gateway/router/retry-policy.js';
import type { RetryPolicy } from '../../gateway/router/retry-policy.js';
import type { UpstreamRequest } from '../../gateway/upstream/forward.js';

export interface TestUpstream {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on which nothing listens (bound then released). */
export async function closedPort(): Promise<number> {
  const upstream = await startUpstream(() => undefined);
  await upstream.close();
  return upstream.port;
}

export function endpoint(port: number, extra: Partial<RegistryEndpoint> = {}): RegistryEndpoint {
  return {
    address: '127.0.0.1',
    port,
    labels: {},
    weight: 1,
    serviceAccount: '',
    locality: '',
    namespace: 'default',
    meshWorkload: false,
    ...extra,
  };
}

export function definition(
  endpoints: readonly RegistryEndpoint[],
  trafficPolicy?: TrafficPolicy,
  options: { host?: string; port?: number; subset?: string } = {},
): ClusterDefinition {
  const host = options.host ?? 'svc.test';
  const port = options.port ?? 80;
  const subset = options.subset ?? '';
  return {
    name: clusterName(host, port, subset),
    host,
    port,
    subset,
    resolution: 'STATIC',
    endpoints,
    policy: resolvePolicy(trafficPolicy, undefined, port),
    subjectAltNames: [],
  };
}

/** mulberry32: deterministic randomness so that distribution tests cannot flake. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function retryPolicy(overrides: Partial<RetryPolicy> & { on?: string[] } = {}): RetryPolicy {
  const { on, ...rest } = overrides;
  return {
    ...ISTIO_DEFAULT_RETRY_POLICY,
    backoffBaseMs: 1,
    backoffMaxMs: 10,
    ...(on === undefined ? {} : { retryOn: new Set(on) }),
    ...rest,
  };
}

export function request(overrides: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    method: 'GET',
    path: '/',
    headers: { host: 'svc.test' },
    body: null,
    retry: retryPolicy(),
    timeoutMs: 0,
    sourceIp: '10.0.0.1',
    signal: null,
    ...overrides,
  };
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
