/**
 * What a plugin may offer the core beyond its request, connection and delivery hooks: hearing the
 * proxy's own events (reloads, certificates, upstream trouble, workers), serving the metrics of the
 * admin and metrics ports, and explaining a policy decision. They are optional members of `MeshPlugin`
 * (types.ts), so the core reaches metrics and authorization only through the plugins the composition
 * root hands it (gateway/composition/) and never imports a plugin.
 */
import type { Diagnostic } from '../config/resource.js';

export type ReloadResult = 'applied' | 'rejected' | 'failed';

export type PubSubPublishResult = 'published' | 'forbidden' | 'invalid' | 'broker_error';

/** What the upstream layer keeps per cluster; read at scrape time, never counted per request. */
export interface UpstreamClusterSample {
  readonly name: string;
  readonly active: number;
  /** Cumulative ejections of the cluster's hosts. */
  readonly ejections: number;
  /** Cumulative failed connection attempts, retried ones included. */
  readonly connectFailures: number;
}

/**
 * Events of the proxy itself, not of one request. The core calls them synchronously; a hook must
 * not throw. `upstreamRetry` and `upstreamOverflow` run on the request path (rare outcomes only).
 */
export interface ProxyEventHooks {
  /** At start: the meshgate version this process runs. */
  buildInfo?(version: string): void;
  /** The generation of the snapshot now serving. */
  configGeneration?(generation: number): void;
  /** The diagnostics of the last config load. */
  configDiagnostics?(diagnostics: readonly Diagnostic[]): void;
  /** The config files were read, validated and compiled (a start, a reload): once however many workers serve. */
  configCompiled?(): void;
  reload?(result: ReloadResult): void;
  /** A certificate this proxy presents (its mesh identity, a Gateway server's), by identity or server name. */
  certificateExpiry?(identity: string, notAfter: Date): void;
  certificateGone?(identity: string): void;
  /** A running proxy's clusters, to be read at each scrape; the result stops reading them. */
  observeUpstreams?(source: () => readonly UpstreamClusterSample[]): () => void;
  /** Once per retry (each attempt after the first) to `cluster`. */
  upstreamRetry?(cluster: string): void;
  /** A request refused by `cluster`'s circuit breaker (response flag UO). */
  upstreamOverflow?(cluster: string): void;
  /** An HTTP/2 session of `listener` closed for abuse (too many premature stream resets). */
  abusiveSession?(listener: string): void;
  pubsubPublish?(pubsub: string, topic: string, result: PubSubPublishResult): void;
  /** The supervisor's worker threads: how many serve, and one replaced after stopping unasked. */
  workersRunning?(count: number): void;
  workerRestarted?(): void;
  /** In worker `index`: the function each accepted client connection calls, prepared once. */
  workerConnectionCounter?(index: number): () => void;
}

/** Every hook of every plugin that has it, in table order: what the core calls. */
export type ProxyEvents = Required<ProxyEventHooks>;

export interface RenderedMetrics {
  readonly contentType: string;
  readonly body: string;
}

/**
 * The proxy's metrics as the operator ports serve them. With several worker threads each worker hands
 * its series to the supervisor (structured-clonable; only the exposition that made them reads them),
 * which serves their merge.
 */
export interface MetricsExposition {
  /** Prometheus text exposition of this thread's series (`/stats/prometheus`, `/metrics`, the metrics port). */
  prometheus(): Promise<RenderedMetrics>;
  /** `/stats`: one readable line per series. */
  statsText(): Promise<string>;
  /** In a worker thread: its series, for the supervisor. */
  workerSeries(): Promise<unknown>;
  mergedPrometheus(workers: readonly unknown[]): Promise<RenderedMetrics>;
  mergedStatsText(workers: readonly unknown[]): Promise<string>;
}

/** A request described by hand (`meshgate explain` options, admin `POST /explain` JSON); absent fields are not part of it. */
export interface DescribedRequest {
  readonly method?: string;
  readonly host?: string;
  readonly path?: string;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  readonly sourceIp?: string;
  readonly remoteIp?: string;
  readonly destinationIp?: string;
  readonly destinationPort?: number;
  readonly sni?: string;
  /** Peer principal `<trustDomain>/ns/<ns>/sa/<sa>` (or with `spiffe://`); absent = plaintext. */
  readonly peerPrincipal?: string;
  /** Verified JWT claims (at least `iss`/`sub` for request principals); absent = no token. */
  readonly jwtClaims?: Readonly<Record<string, unknown>>;
}

export interface Explanation {
  readonly decision: 'ALLOW' | 'DENY';
  /** `<ns>/<name>` of the deciding policy, or null (no ALLOW policy at all / none matched). */
  readonly policy: string | null;
  readonly ruleIndex: number;
  /** Envoy-style details of a denial (`rbac_access_denied_matched_policy[…]`), '' when allowed. */
  readonly details: string;
  /** CUSTOM policy whose external authorizer would be asked first, or null. */
  readonly customPolicy: string | null;
  readonly trace: string[];
}
