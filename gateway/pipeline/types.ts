/**
 * The contract between the core and the request-path plugins (plugins/<name>/).
 *
 * A plugin compiles its part of the config ONCE per snapshot (`compile`), and its fastify hooks read
 * that compiled state from the snapshot pinned on the request (`request.mesh.snapshot`), so a reload
 * never changes the rules under a request in flight. Plugins never parse raw config per request.
 */
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply } from 'fastify';
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http';
import type { DiagnosticDefinition } from '../config/diagnostics.js';
import type { PluginKind } from '../config/kinds/index.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { DescribedRequest, Explanation, MetricsExposition, ProxyEventHooks } from './capabilities.js';
import type { CompiledRoute } from '../router/types.js';

/** The proxy instance this process is: the ingress gateway or one sidecar's workload. */
export interface WorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** `<trustDomain>/ns/<ns>/sa/<sa>` (Istio principal form, no `spiffe://`). */
  readonly principal: string;
}

export type ProxyMode = 'ingress' | 'sidecar';

export type ListenerDirection =
  /** Ingress gateway server: the public edge. */
  | 'gateway'
  /** Sidecar inbound: mTLS from the mesh, forwarded to the local app. */
  | 'inbound'
  /** Sidecar outbound: the local app calls its sidecar (plain HTTP on loopback). */
  | 'outbound';

/** What a plugin sees of a listener (the core's ListenerSpec, gateway/listeners/listener-spec.ts, is one). */
export interface ListenerView {
  /** Stable identity across reloads: `<direction>:<bind>:<port>:<protocol>`. */
  readonly key: string;
  readonly name: string;
  readonly direction: ListenerDirection;
  readonly port: number;
}

export interface CompileInput {
  readonly resources: readonly Resource[];
  readonly mode: ProxyMode;
  readonly workload: WorkloadInfo;
  readonly rootNamespace: string;
  readonly trustDomain: string;
  /** Push load-time problems here; an `error` rejects the whole snapshot. */
  readonly diagnostics: Diagnostic[];
}

/** What `prepare` sees: the validated resources and where relative paths in them start. */
export interface PrepareInput {
  readonly resources: readonly Resource[];
  readonly mode: ProxyMode;
  readonly workload: WorkloadInfo;
  readonly rootNamespace: string;
  /** Directory of the config file (or the config directory): relative paths in resources start here. */
  readonly configDirectory: string;
  /** The process logger; a silent one when compiling for `validate`. */
  readonly logger: FastifyBaseLogger;
  /** Push load-time problems here; an `error` rejects the whole snapshot. */
  readonly diagnostics: Diagnostic[];
}

/** The result of the asynchronous stage before `compile`. */
export interface Prepared<Value> {
  readonly value: Value;
  /**
   * Folded into the snapshot's hash, so that a reload picks up a change outside the config files
   * (a plugin module's file); '' when nothing outside the config was read.
   */
  readonly fingerprint: string;
}

export interface MeshPlugin<Compiled = unknown, PreparedValue = unknown> {
  readonly name: string;
  readonly kinds?: readonly PluginKind[];
  /** The diagnostic codes this plugin's `compile` reports; they join the core catalogue (docs/diagnostics.md). */
  readonly diagnostics?: readonly DiagnosticDefinition[];
  /**
   * Optional asynchronous stage per snapshot, before the synchronous `compile` (loading modules,
   * reading files). Runs for `run`, every reload and `validate` alike.
   */
  prepare?(input: PrepareInput): Promise<Prepared<PreparedValue>>;
  compile(input: CompileInput, prepared: PreparedValue): Compiled;
  /** What config_dump shows of this plugin per listener (e.g. an effective order); absent: nothing. */
  describe?(compiled: unknown, listeners: readonly ListenerView[]): unknown;
  /** Called with the compiled state of a snapshot that will never become active (rejected config, `validate`). */
  discard?(compiled: unknown): void;
  readonly register: FastifyPluginAsync;
  /**
   * Registered only where a workload receives traffic (gateway and inbound listeners), not on a
   * sidecar's outbound listener: Istio applies AuthorizationPolicy and RequestAuthentication to what a
   * workload receives, never to the calls its app makes.
   */
  readonly inboundOnly?: boolean;
  /**
   * Its hooks see every request of a listener, including the calls a sidecar's Dapr API answers itself
   * (the observers: tracing, metrics, access log). Without it they see only traffic the proxy forwards:
   * a state read never pays for routing, rate limits, faults or users' plugins. These plugins come first
   * in the pipeline table, so the order holds.
   */
  readonly everyRequest?: boolean;
  /** What the plugin does for TCP connections (gateway/tcp/); absent: nothing. `inboundOnly` applies as for HTTP. */
  readonly connections?: ConnectionHooks;
  /** What the plugin does for the messages a sidecar delivers to its app (Dapr pub/sub); absent: nothing. */
  readonly deliveries?: DeliveryHooks;
  /** What the plugin does with the proxy's own events (reloads, certificates, upstream trouble, workers); absent: nothing. */
  readonly proxyEvents?: ProxyEventHooks;
  /** The proxy's metrics, served on the admin and metrics ports; at most one plugin of a table has them. */
  readonly exposition?: MetricsExposition;
  /**
   * Why the plugin would decide as it does for a described request, from its compiled state
   * (`meshgate explain`, admin `POST /explain`); at most one plugin of a table explains.
   */
  explain?(compiled: unknown, request: DescribedRequest): Explanation;
  /** Called when a snapshot holding `compiled` becomes the active one (compile may run for a config that is then rejected). */
  activated?(compiled: unknown): void;
  /** Flush and release process-wide resources on shutdown (exporters, files, connections). */
  shutdown?(): Promise<void>;
}

/** One TCP connection as the connection hooks see it. */
export interface ConnectionAttributes {
  readonly direction: ListenerDirection;
  /** Direct peer address of the connection. */
  readonly sourceIp: string;
  readonly sourcePort: number;
  /** The address and port the client connected to. */
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** SNI of the ClientHello (passthrough ports, mesh mTLS); '' when none. */
  readonly sni: string;
  /** Present only for mesh mTLS connections with a valid mesh certificate. */
  readonly peer: PeerIdentity | null;
}

/** What became of one TCP connection; filled in as it goes and final when `closed` is called. */
export interface ConnectionRecord {
  readonly attrs: ConnectionAttributes;
  /** Epoch ms when the connection was accepted. */
  readonly startEpochMs: number;
  /** performance.now() when the connection was accepted, and when it closed (NaN before). */
  readonly startMs: number;
  readonly endMs: number;
  /** `<ns>/<vs>.tcp[<i>]`, `.tls[<i>]`, or the service a port's default rule forwards to; '' before routing. */
  readonly routeName: string;
  readonly upstreamCluster: string;
  readonly upstreamHost: string;
  /** Envoy response flags (UF, UO, UH, NR, NC, DT…). */
  readonly responseFlags: readonly string[];
  /** Why the proxy closed the connection itself (e.g. `rbac_access_denied_matched_policy[ns/name]`), '' otherwise. */
  readonly details: string;
  /** Bytes received from the client, and sent to it (so far, in `progress`). */
  readonly receivedBytes: number;
  readonly sentBytes: number;
}

/** A connection a plugin refuses: it is closed before anything is forwarded. */
export interface ConnectionDenial {
  /** e.g. `rbac_access_denied_matched_policy[ns/name]`. */
  readonly details: string;
}

/** A plugin's part in TCP connections. Each hook gets the plugin's compiled state of the snapshot the connection started on. */
export interface ConnectionHooks {
  /** Whether an accepted connection may go on; a denial closes it. */
  admit?(compiled: unknown, connection: ConnectionAttributes): ConnectionDenial | null;
  /** Once per connection, when it has been routed (or refused before that). */
  opened?(compiled: unknown, record: ConnectionRecord): void;
  /** Every MeshConfig `metrics.tcpReportingInterval` while the connection is open, with the bytes so far. */
  progress?(compiled: unknown, record: ConnectionRecord): void;
  /** Once per connection, when both sides are closed. */
  closed?(compiled: unknown, record: ConnectionRecord): void;
}

export type DeliveryResult = 'delivered' | 'dropped' | 'dead-lettered' | 'expired' | 'returned-to-broker';

/**
 * One broker message a sidecar handles for its app's subscription (gateway/dapr/pubsub/delivery.ts): the
 * sidecar posts the CloudEvent to the app, retrying as the app answers, until the message settles.
 * Filled in as it goes; final when `finished` is called.
 */
export interface DeliveryRecord {
  readonly pubsubName: string;
  readonly topic: string;
  /** The CloudEvent's id; '' for a message that is not a CloudEvent. */
  readonly eventId: string;
  /** `host:port` of the app. */
  readonly appAddress: string;
  /** The app path the event goes to; '' when no route took it. */
  readonly path: string;
  /** Epoch ms and performance.now() when the message was taken, and performance.now() when it settled (NaN before). */
  readonly startEpochMs: number;
  readonly startMs: number;
  readonly endMs: number;
  /** The publisher's `traceparent` from the CloudEvent; '' when it has none. */
  readonly publisherTraceparent: string;
  /**
   * The `traceparent` the app receives: the publisher's unless a `started` hook makes the delivery a
   * hop of its own (tracing sets its span's context here and in `trace`).
   */
  traceparent: string;
  trace: HopTrace | null;
  /** Posts made to the app. */
  readonly attempts: number;
  /** Status of the app's last answer; 0 when none came (not posted, connection failure, timeout). */
  readonly status: number;
  /** Bytes of the event posted, and of the app's last answer. */
  readonly sentBytes: number;
  readonly receivedBytes: number;
  /** What became of the message; null until it settled. */
  readonly result: DeliveryResult | null;
}

/** A delivery as `finished` sees it: settled. */
export interface SettledDelivery extends DeliveryRecord {
  readonly result: DeliveryResult;
}

/** A plugin's part in deliveries. Each hook gets the plugin's compiled state of the snapshot active when the message was taken. */
export interface DeliveryHooks {
  /** Before the first post to the app. */
  started?(compiled: unknown, delivery: DeliveryRecord): void;
  /** Once, when the message settled. */
  finished?(compiled: unknown, delivery: SettledDelivery): void;
}

/** Why the proxy itself answered, for the access log, metrics and the `x-meshgate-reason` header. */
export interface LocalReply {
  readonly status: number;
  /** Envoy response flag (NR, UF, UO, UT, URX, UH, NC, FI, DI, RL, UAEX, …) or '' when none applies (RBAC denials). */
  readonly flag: string;
  /** Machine-readable detail, e.g. `rbac_access_denied_matched_policy[ns/name]`. */
  readonly details: string;
  /** Plain words for the body. */
  readonly message: string;
  /** Appended to `details` in the debug header only (never in logs or metrics): e.g. which policies were tried. */
  readonly debugNote?: string;
}

/** Identity of the TLS peer, parsed from its certificate (never from a printed subject). */
export interface PeerIdentity {
  /** `<trustDomain>/ns/<ns>/sa/<sa>` */
  readonly principal: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Full URI SAN, `spiffe://…` */
  readonly uri: string;
  /** Hex SHA-256 of the DER certificate (for XFCC `Hash`). */
  readonly certHash: string;
}

export interface JwtAuthResult {
  /** `<iss>/<sub>` */
  readonly principal: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Normalised request attributes: what policies see and what is forwarded (one normaliser, see gateway/http/normalize.ts). */
export interface RequestAttributes {
  readonly method: string;
  /** Host/:authority as received (port included if sent), lower-cased. */
  readonly authority: string;
  /** Authority without port. */
  readonly host: string;
  /** Normalised path, no query string. */
  readonly path: string;
  /** Raw query string without `?`, or ''. */
  readonly query: string;
  readonly scheme: 'http' | 'https';
  /** Direct peer IP of the connection. */
  readonly sourceIp: string;
  /** Client IP after trusted-hop X-Forwarded-For handling. */
  readonly remoteIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  readonly sni: string;
  /** Present only for mTLS connections with a valid mesh certificate. */
  readonly peer: PeerIdentity | null;
}

export interface RequestContext {
  readonly snapshotGeneration: number;
  /** MeshConfig.debugHeaders: local replies also say why in `x-meshgate-reason`. */
  readonly debugHeaders: boolean;
  /** performance.now() when the request arrived. */
  readonly startMs: number;
  /** performance.now() when the response was complete; NaN before, or when no plugin asked (after-response.ts). */
  responseEndMs: number;
  readonly attrs: RequestAttributes;
  requestId: string;
  /** Name of the route that matched (`<ns>/<vs>.<rule>`), once routing ran. */
  routeName: string;
  /** The matched route (routing runs before the plugins, as its result feeds faults, rate-limit keys and logs). */
  route: CompiledRoute | null;
  auth: JwtAuthResult | null;
  localReply: LocalReply | null;
  /** Envoy response flags collected along the way (joined with ',' in logs; '-' when empty). */
  readonly responseFlags: string[];
  upstreamCluster: string;
  upstreamHost: string;
  /** `x-envoy-upstream-service-time` of a relayed upstream response (ms); null for local replies. */
  upstreamServiceTimeMs: number | null;
  /** Compiled per-plugin state of the snapshot this request started on. */
  pluginState<T>(pluginName: string): T;
  /**
   * A header of the response sent (lowercase name), for onResponse hooks. A relayed upstream response
   * is written straight to the socket, so its headers are kept here rather than on the fastify reply.
   */
  responseHeader(reply: FastifyReply, name: string): OutgoingHttpHeader | undefined;
  /**
   * Response headers a step set for whatever answers (user plugins): a relayed upstream response gets
   * them last, over the upstream's own; null when none.
   */
  responseHeaderEdits: Record<string, string> | null;
  /** Set by the proxy step when it relays an upstream response. */
  relayedHeaders: Readonly<OutgoingHttpHeaders> | null;
  /** This hop's trace, set by the tracing plugin (which keeps more in it); null when tracing is off. */
  trace: HopTrace | null;
  /** Bytes the exchange took on the downstream connection, once measured at response end (metrics, access log). */
  downstreamBytes: DownstreamBytes | null;
}

export interface HopTrace {
  readonly traceId: string;
}

export interface DownstreamBytes {
  readonly received: number;
  readonly sent: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    mesh: RequestContext;
  }
}
