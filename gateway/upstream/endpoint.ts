/**
 * The runtime state of one endpoint of one cluster: its connection pool, the live counters the load
 * balancer reads (active requests, ejection), outlier-detection counters and admin statistics.
 * Plain mutable fields on purpose: they are read and written on every request.
 */
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { ConnectionReadiness } from './circuit-breaker.js';
import type { RegistryEndpoint } from './registry.js';
import { buildConnector } from './undici-core.js';
import type { Connector } from './undici-core.js';

/** An endpoint's connections: undici's Pool (HTTP/1.1) or meshgate's HTTP/2 pool, both on undici's dispatch API. */
export interface EndpointPool {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  /** A multiplexing pool knows whether a request could start now; for HTTP/1.1 (undefined, or null) the endpoint's counters tell. */
  readiness?(): ConnectionReadiness | null;
}

/** What a pool's endpoint knows of its registry entry (whether it runs a sidecar is decided per cluster). */
export type EndpointMetadata = Omit<RegistryEndpoint, 'meshWorkload'>;

/** How the endpoint's pool opens connections (TLS origination included), for connections that leave HTTP after an upgrade. */
export interface EndpointTransport {
  readonly connect: Connector;
  readonly secure: boolean;
}

export class UpstreamEndpoint {
  /** `address:port` as written in access logs (`%UPSTREAM_HOST%`). */
  readonly key: string;
  /** Requests sent and not finished (response body not fully read). */
  active = 0;
  ejected = false;
  ejectedUntil = 0;
  timesEjected = 0;
  consecutive5xx = 0;
  consecutiveGatewayErrors = 0;
  totalRequests = 0;
  totalFailures = 0;
  /** Smooth weighted round-robin state (ROUND_ROBIN with unequal weights). */
  roundRobinCurrent = 0;
  /** True once the endpoint left the cluster: its pool is draining. */
  removed = false;

  constructor(
    public metadata: EndpointMetadata,
    readonly pool: EndpointPool,
    readonly transport: EndpointTransport | null = null,
    /** Open connections, kept by the pool's connector. */
    private readonly counters: { readonly connections: number } = { connections: 0 },
  ) {
    this.key = metadata.address.includes(':') ? `[${metadata.address}]:${metadata.port}` : `${metadata.address}:${metadata.port}`;
  }

  get weight(): number {
    return this.metadata.weight;
  }

  /** HTTP/1.1 carries one request per connection: a connection is ready when more are open than in use. */
  readiness(): ConnectionReadiness {
    const multiplexed = this.pool.readiness?.() ?? null;
    if (multiplexed !== null) return multiplexed;
    return this.counters.connections > this.active ? 'ready' : 'none';
  }

  /** Close after in-flight requests complete. */
  drain(): Promise<void> {
    this.removed = true;
    return this.pool.close();
  }
}

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A raw connection to the endpoint, opened the way its pool would (TLS origination included): for upgrades and TCP proxying. */
export function openRawConnection(endpoint: UpstreamEndpoint): Promise<Socket> {
  const transport = endpoint.transport;
  if (transport === null) return Promise.reject(new Error(`endpoint ${endpoint.key} cannot open raw connections`));
  const { address, port } = endpoint.metadata;
  return new Promise((resolve, reject) => {
    transport.connect(
      { hostname: address, host: address, protocol: transport.secure ? 'https:' : 'http:', port: String(port), localAddress: null, httpSocket: undefined },
      (error, socket) => (error === null ? resolve(socket as Socket) : reject(error)),
    );
  });
}

/** A plain TCP connection to the endpoint, whatever TLS its pool would originate: for bytes already encrypted end to end (AUTO_PASSTHROUGH). */
export function openPlainConnection(endpoint: UpstreamEndpoint, connectTimeoutMs: number): Promise<Socket> {
  const { address, port } = endpoint.metadata;
  const connect = buildConnector({ timeout: connectTimeoutMs });
  return new Promise((resolve, reject) => {
    connect({ hostname: address, host: address, protocol: 'http:', port: String(port), localAddress: null, httpSocket: undefined }, (error, socket) =>
      error === null ? resolve(socket as Socket) : reject(error),
    );
  });
}
