/**
 * The runtime state of one endpoint of one cluster: its connection pool, the live counters the load
 * balancer reads (active requests, ejection), outlier-detection counters and admin statistics.
 * Plain mutable fields on purpose: they are read and written on every request.
 */
import type { RegistryEndpoint } from './registry.js';
import type { Connector, Pool } from './undici-core.js';

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
    readonly pool: Pool,
    readonly transport: EndpointTransport | null = null,
  ) {
    this.key = metadata.address.includes(':') ? `[${metadata.address}]:${metadata.port}` : `${metadata.address}:${metadata.port}`;
  }

  get weight(): number {
    return this.metadata.weight;
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
