/**
 * DestinationRule traffic policy, resolved once per cluster at load time (docs/routing.md#policy-resolution)
 * into plain numbers and enums with Istio's defaults applied, so that the hot path never reads YAML.
 *
 * Resolution per host + port + subset: the DR-level policy; a `portLevelSettings` entry for the port
 * REPLACES it (omitted fields fall back to defaults); a subset policy then overrides per top-level
 * field (its own port entry, if any, wins outright). Subset policies exist only on subset clusters.
 */
import { parseDuration } from '../config/duration.js';
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  LoadBalancerSettings,
  OutlierDetection,
  PortTrafficPolicy,
  TrafficPolicy,
} from '../config/kinds/destination-rule.js';

/** Envoy's "unlimited" as Istio writes it (2³²−1). */
export const UNLIMITED = 4_294_967_295;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;
export const DEFAULT_RING_SIZE = 1024;
/**
 * Envoy's circuit-breaker thresholds, applied when no DestinationRule sets a limit. Istio writes 2³²−1
 * instead (no limit); at the edge that let 2 000 concurrent requests open ~1 800 upstream connections.
 * Set the field to 4294967295 in a DestinationRule for Istio's behaviour.
 */
export const ENVOY_DEFAULT_CONNECTION_LIMIT = 1024;
export const ENVOY_DEFAULT_MAX_RETRIES = 3;

export type LbAlgorithm = 'LEAST_REQUEST' | 'ROUND_ROBIN' | 'RANDOM' | 'PASSTHROUGH' | 'RING_HASH';

export type HashKeySource =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string; readonly path: string; readonly ttlMs: number | null; readonly attributes: readonly string[] }
  | { readonly kind: 'source-ip' }
  | { readonly kind: 'query'; readonly name: string };

export interface ResolvedLoadBalancer {
  readonly algorithm: LbAlgorithm;
  /** Set only for RING_HASH. */
  readonly hashKey: HashKeySource | null;
  readonly ringSize: number;
}

export interface ResolvedConnectionPool {
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  /** 0 = never close idle connections. */
  readonly idleTimeoutMs: number;
  readonly http1MaxPendingRequests: number;
  readonly http2MaxRequests: number;
  /** 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  readonly maxRetries: number;
  /** Opaque TCP proxying (gateway/tcp/): idle timeout of a proxied connection, 0 = never. */
  readonly tcpIdleTimeoutMs: number;
  /** 0 = no limit. */
  readonly maxConnectionDurationMs: number;
  /** SO_KEEPALIVE on upstream connections when set: the idle time before the first probe (0 = the OS default). */
  readonly tcpKeepalive: { readonly timeMs: number } | null;
  /** `UPGRADE`: HTTP/1.1 service ports are served upstream over HTTP/2. */
  readonly h2UpgradePolicy: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  /** Istio's useClientProtocol: no upgrade (meshgate then keeps HTTP/1.1 for HTTP ports). */
  readonly useClientProtocol: boolean;
}

export interface ResolvedOutlierDetection {
  /** 0 = disabled. */
  readonly consecutive5xxErrors: number;
  /** 0 = disabled. */
  readonly consecutiveGatewayErrors: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  readonly minHealthPercent: number;
  /** Status codes counted as errors instead of "any 5xx"; empty = 5xx. */
  readonly errorStatusCodes: ReadonlySet<number>;
}

export type TlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

export interface ResolvedTls {
  readonly mode: TlsMode;
  /** False when the DR said nothing about TLS: auto-mTLS may then upgrade mesh endpoints to ISTIO_MUTUAL. */
  readonly explicit: boolean;
  readonly caCertificates: string;
  readonly clientCertificate: string;
  readonly privateKey: string;
  readonly sni: string;
  readonly subjectAltNames: readonly string[];
  readonly insecureSkipVerify: boolean;
}

export interface ResolvedPolicy {
  readonly loadBalancer: ResolvedLoadBalancer;
  readonly connectionPool: ResolvedConnectionPool;
  /** null when no `outlierDetection` block applies: endpoints are then never ejected. */
  readonly outlierDetection: ResolvedOutlierDetection | null;
  readonly tls: ResolvedTls;
  /** Canonical text of the whole policy: two clusters with equal keys behave identically. */
  readonly key: string;
}

/** The four fields a port-level entry can carry, after the layering of docs/routing.md#policy-resolution and before defaults. */
interface PolicyLayers {
  readonly loadBalancer: LoadBalancerSettings | undefined;
  readonly connectionPool: ConnectionPoolSettings | undefined;
  readonly outlierDetection: OutlierDetection | undefined;
  readonly tls: ClientTLSSettings | undefined;
}

function portEntry(policy: TrafficPolicy | undefined, port: number): PortTrafficPolicy | undefined {
  return policy?.portLevelSettings?.find((entry) => entry.port?.number === port);
}

function layersOf(policy: TrafficPolicy | PortTrafficPolicy | undefined): PolicyLayers {
  return {
    loadBalancer: policy?.loadBalancer,
    connectionPool: policy?.connectionPool,
    outlierDetection: policy?.outlierDetection,
    tls: policy?.tls,
  };
}

/** The steps of docs/routing.md#policy-resolution: which raw settings apply to traffic for `port` (and `subsetPolicy` when routed to a subset). */
export function selectPolicyLayers(
  hostPolicy: TrafficPolicy | undefined,
  subsetPolicy: TrafficPolicy | undefined,
  port: number,
): PolicyLayers {
  const hostPort = portEntry(hostPolicy, port);
  const base = hostPort === undefined ? layersOf(hostPolicy) : layersOf(hostPort);
  if (subsetPolicy === undefined) return base;
  const subsetPort = portEntry(subsetPolicy, port);
  if (subsetPort !== undefined) return layersOf(subsetPort);
  return {
    loadBalancer: subsetPolicy.loadBalancer ?? base.loadBalancer,
    connectionPool: subsetPolicy.connectionPool ?? base.connectionPool,
    outlierDetection: subsetPolicy.outlierDetection ?? base.outlierDetection,
    tls: subsetPolicy.tls ?? base.tls,
  };
}

/** Istio cannot tell unset from 0 for these limits: ≤ 0 means the default. */
function limit(value: number | undefined, fallback: number): number {
  return value === undefined || value <= 0 ? fallback : value;
}

function durationMs(value: string | undefined, fallback: number): number {
  return value === undefined ? fallback : parseDuration(value);
}

function resolveLoadBalancer(settings: LoadBalancerSettings | undefined): ResolvedLoadBalancer {
  const hash = settings?.consistentHash;
  if (hash !== undefined) {
    const ringSize = limit(hash.ringHash?.minimumRingSize ?? hash.minimumRingSize, DEFAULT_RING_SIZE);
    let hashKey: HashKeySource | null = null;
    if (hash.httpHeaderName !== undefined) hashKey = { kind: 'header', name: hash.httpHeaderName.toLowerCase() };
    else if (hash.httpCookie !== undefined) {
      const cookie = hash.httpCookie;
      hashKey = {
        kind: 'cookie',
        name: cookie.name,
        path: cookie.path ?? '',
        ttlMs: cookie.ttl === undefined ? null : parseDuration(cookie.ttl),
        attributes: (cookie.attributes ?? []).map((a) => (a.value === undefined || a.value === '' ? a.name : `${a.name}=${a.value}`)),
      };
    } else if (hash.useSourceIp === true) hashKey = { kind: 'source-ip' };
    else if (hash.httpQueryParameterName !== undefined) hashKey = { kind: 'query', name: hash.httpQueryParameterName };
    return { algorithm: 'RING_HASH', hashKey, ringSize };
  }
  const simple = settings?.simple ?? 'UNSPECIFIED';
  const algorithm: LbAlgorithm =
    simple === 'ROUND_ROBIN' || simple === 'RANDOM' || simple === 'PASSTHROUGH' ? simple : 'LEAST_REQUEST';
  return { algorithm, hashKey: null, ringSize: 0 };
}

function resolveConnectionPool(settings: ConnectionPoolSettings | undefined): ResolvedConnectionPool {
  const tcp = settings?.tcp;
  const http = settings?.http;
  // Envoy closes idle connections at the smaller of the TCP and HTTP idle timeouts; 0 disables one of them.
  const tcpIdle = durationMs(tcp?.idleTimeout, DEFAULT_IDLE_TIMEOUT_MS);
  const httpIdle = durationMs(http?.idleTimeout, DEFAULT_IDLE_TIMEOUT_MS);
  const idleTimeoutMs = tcpIdle === 0 ? httpIdle : httpIdle === 0 ? tcpIdle : Math.min(tcpIdle, httpIdle);
  return {
    maxConnections: limit(tcp?.maxConnections, ENVOY_DEFAULT_CONNECTION_LIMIT),
    connectTimeoutMs: durationMs(tcp?.connectTimeout, DEFAULT_CONNECT_TIMEOUT_MS) || DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMs,
    http1MaxPendingRequests: limit(http?.http1MaxPendingRequests, ENVOY_DEFAULT_CONNECTION_LIMIT),
    http2MaxRequests: limit(http?.http2MaxRequests, ENVOY_DEFAULT_CONNECTION_LIMIT),
    maxRequestsPerConnection: limit(http?.maxRequestsPerConnection, 0),
    maxRetries: limit(http?.maxRetries, ENVOY_DEFAULT_MAX_RETRIES),
    tcpIdleTimeoutMs: tcpIdle,
    maxConnectionDurationMs: durationMs(tcp?.maxConnectionDuration, 0),
    tcpKeepalive: tcp?.tcpKeepalive === undefined ? null : { timeMs: durationMs(tcp.tcpKeepalive.time, 0) },
    h2UpgradePolicy: http?.h2UpgradePolicy ?? 'DEFAULT',
    useClientProtocol: http?.useClientProtocol ?? false,
  };
}

function resolveOutlierDetection(settings: OutlierDetection | undefined): ResolvedOutlierDetection | null {
  if (settings === undefined) return null;
  return {
    consecutive5xxErrors: settings.consecutive5xxErrors ?? 5,
    consecutiveGatewayErrors: settings.consecutiveGatewayErrors ?? settings.consecutiveErrors ?? 0,
    intervalMs: durationMs(settings.interval, 10_000) || 10_000,
    baseEjectionTimeMs: durationMs(settings.baseEjectionTime, 30_000) || 30_000,
    maxEjectionPercent: settings.maxEjectionPercent ?? 10,
    minHealthPercent: settings.minHealthPercent ?? 0,
    errorStatusCodes: new Set(settings.outlierDetectionHttpErrorCodes ?? []),
  };
}

function resolveTls(settings: ClientTLSSettings | undefined): ResolvedTls {
  return {
    mode: settings?.mode ?? 'DISABLE',
    explicit: settings !== undefined,
    caCertificates: settings?.caCertificates ?? '',
    clientCertificate: settings?.clientCertificate ?? '',
    privateKey: settings?.privateKey ?? '',
    sni: settings?.sni ?? '',
    subjectAltNames: settings?.subjectAltNames ?? [],
    insecureSkipVerify: settings?.insecureSkipVerify ?? false,
  };
}

function policyKey(policy: Omit<ResolvedPolicy, 'key'>): string {
  return JSON.stringify(policy, (_name, value: unknown) => (value instanceof Set ? [...(value as Set<unknown>)] : value));
}

/** The fully-defaulted policy for one cluster. Throws `DurationError` on a bad duration (the loader validated them). */
export function resolvePolicy(
  hostPolicy: TrafficPolicy | undefined,
  subsetPolicy: TrafficPolicy | undefined,
  port: number,
): ResolvedPolicy {
  const layers = selectPolicyLayers(hostPolicy, subsetPolicy, port);
  const resolved = {
    loadBalancer: resolveLoadBalancer(layers.loadBalancer),
    connectionPool: resolveConnectionPool(layers.connectionPool),
    outlierDetection: resolveOutlierDetection(layers.outlierDetection),
    tls: resolveTls(layers.tls),
  };
  return { ...resolved, key: policyKey(resolved) };
}
