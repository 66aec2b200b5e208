/**
 * One upstream cluster at runtime (`outbound|<port>|<subset>|<host>`): its endpoints with their pools,
 * load balancer, circuit breaker and outlier detector. It outlives config snapshots while its identity
 * and policy are unchanged; `setEndpoints` applies a new endpoint list by keeping the state of
 * endpoints that stay and draining (never cutting) those that leave.
 */
import { CircuitBreaker } from './circuit-breaker.js';
import { UpstreamEndpoint, endpointKey } from './endpoint.js';
import type { EndpointMetadata } from './endpoint.js';
import { createLoadBalancer } from './lb.js';
import type { LoadBalancer } from './lb.js';
import { OutlierDetector } from './outlier.js';
import type { ResolvedPolicy, ResolvedTls } from './policy.js';
import { H2Pool } from './h2-pool.js';
import { createEndpointPool, endpointOrigin } from './pool.js';
import type { RegistryEndpoint, Resolution } from './registry.js';
import { buildUpstreamConnector } from './tls-origination.js';
import type { MeshIdentityProvider } from './tls-origination.js';
import type { Connector } from './undici-core.js';

export interface ClusterDefinition {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** '' for the host's default cluster. */
  readonly subset: string;
  readonly resolution: Resolution;
  /** For DNS resolution `address` may be a name; the manager passes resolved IPs to `setEndpoints`. */
  readonly endpoints: readonly RegistryEndpoint[];
  readonly policy: ResolvedPolicy;
  /** ServiceEntry `subjectAltNames` (DR `tls.subjectAltNames` overrides them). */
  readonly subjectAltNames: readonly string[];
  /** Upstream connections speak HTTP/2 (a GRPC/HTTP2 port, or h2UpgradePolicy UPGRADE). */
  readonly http2?: boolean;
}

export interface ClusterRuntimeOptions {
  readonly identity: MeshIdentityProvider | null;
  readonly trustDomain: string;
  readonly random: () => number;
  /** Wall clock (ms) of ejection times; outlier detection reads it at every ejection and sweep. */
  readonly now: () => number;
}

export interface EndpointStats {
  readonly address: string;
  readonly healthy: boolean;
  /** Epoch ms while ejected, else null. */
  readonly ejectedUntil: number | null;
  readonly timesEjected: number;
  readonly active: number;
  readonly totalRequests: number;
  readonly totalFailures: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ClusterStats {
  readonly name: string;
  readonly active: number;
  readonly pending: number;
  readonly activeRetries: number;
  readonly overflows: number;
  readonly retryOverflows: number;
  readonly totalRequests: number;
  readonly ejections: number;
  /** Failed connection attempts, retried ones included. */
  readonly connectFailures: number;
  readonly endpoints: readonly EndpointStats[];
}

/** Passthrough clusters keep pools for this many distinct destinations at most. */
const MAX_PASSTHROUGH_DESTINATIONS = 256;

export function clusterName(host: string, port: number, subset: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

export class Cluster {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly subset: string;
  readonly policy: ResolvedPolicy;
  /** Forward to the requested destination instead of load balancing (resolution NONE, LB PASSTHROUGH). */
  readonly passthrough: boolean;
  readonly http2: boolean;
  readonly breaker: CircuitBreaker;
  readonly outlier: OutlierDetector | null;
  /** Identity + policy text: an update with an equal identity keeps this runtime. */
  readonly identity: string;
  totalRequests = 0;
  /** Every failed connection attempt, also those a retry then hid from the client. */
  connectFailures = 0;
  private current: readonly UpstreamEndpoint[] = [];
  private balancer: LoadBalancer;
  private readonly passthroughPools = new Map<string, UpstreamEndpoint>();
  private readonly expectedIdentities: readonly string[];
  private readonly serviceSans: readonly string[];
  /** Which endpoints were built with Istio mTLS (an endpoint changing TLS mode needs a new pool). */
  private readonly mutual = new WeakMap<UpstreamEndpoint, boolean>();

  constructor(
    definition: ClusterDefinition,
    private readonly runtime: ClusterRuntimeOptions,
  ) {
    this.name = definition.name;
    this.host = definition.host;
    this.port = definition.port;
    this.subset = definition.subset;
    this.policy = definition.policy;
    this.identity = clusterIdentity(definition);
    this.http2 = definition.http2 === true;
    this.passthrough = definition.resolution === 'NONE' || definition.policy.loadBalancer.algorithm === 'PASSTHROUGH';
    this.breaker = new CircuitBreaker(definition.policy.connectionPool);
    const outlier = definition.policy.outlierDetection;
    this.outlier = outlier === null ? null : new OutlierDetector(outlier, () => this.current, runtime.now);
    this.serviceSans = definition.subjectAltNames;
    const accounts = new Set<string>(definition.subjectAltNames);
    for (const e of definition.endpoints) {
      if (e.serviceAccount !== '') accounts.add(`spiffe://${runtime.trustDomain}/ns/${e.namespace}/sa/${e.serviceAccount}`);
    }
    const drSans = definition.policy.tls.subjectAltNames;
    this.expectedIdentities = drSans.length > 0 ? drSans : [...accounts];
    this.balancer = createLoadBalancer([], definition.policy.loadBalancer, this.outlier, runtime.random);
  }

  get endpoints(): readonly UpstreamEndpoint[] {
    return this.current;
  }

  pick(hash: number | null, tried: readonly UpstreamEndpoint[] | null): UpstreamEndpoint | null {
    return this.balancer.pick(hash, tried);
  }

  /** The endpoint for a passthrough destination, its pool created on first use. */
  passthroughEndpoint(host: string, port: number): UpstreamEndpoint {
    const key = endpointKey(host, port);
    const existing = this.passthroughPools.get(key);
    if (existing !== undefined) return existing;
    if (this.passthroughPools.size >= MAX_PASSTHROUGH_DESTINATIONS) {
      for (const [oldKey, endpoint] of this.passthroughPools) {
        if (endpoint.active > 0) continue;
        this.passthroughPools.delete(oldKey);
        void endpoint.drain();
        break;
      }
    }
    const meta = { address: host, port, labels: {}, weight: 1, serviceAccount: '', locality: '', namespace: '' };
    const endpoint = this.createEndpoint(meta, this.policy.tls);
    this.passthroughPools.set(key, endpoint);
    return endpoint;
  }

  private effectiveTls(endpoint: RegistryEndpoint): ResolvedTls {
    const tls = this.policy.tls;
    // Auto-mTLS: a mesh workload gets Istio mTLS when the DestinationRule says nothing about TLS.
    if (!tls.explicit && endpoint.meshWorkload && this.runtime.identity !== null) return { ...tls, mode: 'ISTIO_MUTUAL' };
    return tls;
  }

  private createEndpoint(meta: EndpointMetadata, tls: ResolvedTls): UpstreamEndpoint {
    const { connect, secure } = buildUpstreamConnector({
      tls,
      serviceSubjectAltNames: this.serviceSans,
      expectedIdentities: this.expectedIdentities,
      istioSni: `outbound_.${this.port}_.${this.subset}_.${this.host}`,
      identity: this.runtime.identity,
      connectTimeoutMs: this.policy.connectionPool.connectTimeoutMs,
      http2: this.http2,
    });
    const breaker = this.breaker;
    const counters = { connections: 0 };
    // Connections are counted per endpoint (is one idle?) and per cluster (maxConnections), until the socket closes.
    const countedConnect: Connector = (options, callback) =>
      connect(options, (...args) => {
        const socket = args[0] === null ? args[1] : null;
        if (socket !== null) {
          counters.connections += 1;
          breaker.connectionOpened();
          socket.once('close', () => {
            counters.connections -= 1;
            breaker.connectionClosed();
          });
        }
        callback(...args);
      });
    const limits = this.policy.connectionPool;
    const origin = endpointOrigin(meta.address, meta.port, secure);
    const pool = this.http2
      ? new H2Pool({
          address: meta.address,
          port: meta.port,
          secure,
          connect: countedConnect,
          idleTimeoutMs: limits.idleTimeoutMs,
          maxRequestsPerConnection: limits.maxRequestsPerConnection,
          http1Pool: (connectFirstOpened) => createEndpointPool(origin, limits, connectFirstOpened),
          mayOpenConnection: () => breaker.canOpen(),
        })
      : createEndpointPool(origin, limits, countedConnect);
    return new UpstreamEndpoint(meta, pool, { connect, secure }, counters);
  }

  /** Apply a new endpoint list (concrete IPs): state of staying endpoints is kept, leaving ones drain. */
  setEndpoints(next: readonly RegistryEndpoint[]): void {
    const previous = new Map<string, UpstreamEndpoint>();
    for (const e of this.current) previous.set(diffKey(e.key, this.isMutual(e)), e);
    const kept: UpstreamEndpoint[] = [];
    for (const definition of next) {
      const tls = this.effectiveTls(definition);
      const key = diffKey(endpointKey(definition.address, definition.port), tls.mode === 'ISTIO_MUTUAL');
      const existing = previous.get(key);
      if (existing !== undefined) {
        previous.delete(key);
        existing.metadata = definition;
        kept.push(existing);
      } else if (!kept.some((e) => diffKey(e.key, this.isMutual(e)) === key)) {
        const endpoint = this.createEndpoint(definition, tls);
        this.mutual.set(endpoint, tls.mode === 'ISTIO_MUTUAL');
        kept.push(endpoint);
      }
    }
    for (const leaving of previous.values()) void leaving.drain();
    this.current = kept;
    this.balancer = createLoadBalancer(kept, this.policy.loadBalancer, this.outlier, this.runtime.random);
  }

  private isMutual(endpoint: UpstreamEndpoint): boolean {
    return this.mutual.get(endpoint) === true;
  }

  stats(): ClusterStats {
    const endpoints = [...this.current, ...this.passthroughPools.values()];
    return {
      name: this.name,
      active: this.breaker.active,
      pending: this.breaker.pending,
      activeRetries: this.breaker.retriesActive,
      overflows: this.breaker.overflows,
      retryOverflows: this.breaker.retryOverflows,
      totalRequests: this.totalRequests,
      ejections: this.outlier?.ejections ?? 0,
      connectFailures: this.connectFailures,
      endpoints: endpoints.map((e) => ({
        address: e.key,
        healthy: !e.ejected,
        ejectedUntil: e.ejected ? e.ejectedUntil : null,
        timesEjected: e.timesEjected,
        active: e.active,
        totalRequests: e.totalRequests,
        totalFailures: e.totalFailures,
        weight: e.weight,
        labels: e.metadata.labels,
      })),
    };
  }

  /** Stop timers and drain every pool; resolves when in-flight requests have finished. */
  async close(): Promise<void> {
    this.outlier?.close();
    const all = [...this.current, ...this.passthroughPools.values()];
    this.current = [];
    this.passthroughPools.clear();
    await Promise.all(all.map((e) => e.drain()));
  }
}

function diffKey(key: string, mutual: boolean): string {
  return mutual ? `${key}|mtls` : key;
}

export function clusterIdentity(definition: ClusterDefinition): string {
  return JSON.stringify([
    definition.name,
    definition.resolution,
    definition.policy.key,
    definition.http2 === true,
    definition.subjectAltNames,
    definition.endpoints.map((e) => (e.serviceAccount === '' ? '' : `${e.namespace}/${e.serviceAccount}`)).sort(),
  ]);
}
