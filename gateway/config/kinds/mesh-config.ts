/**
 * meshgate's own `meshgate.dev/v1alpha1` MeshConfig: what Istio keeps in its mesh config / istiod flags
 * (trust domain, root namespace, path normalisation, trusted hops…) plus the process-level settings a
 * Kubernetes-less proxy needs (certificate files, admin address, Redis). At most one per config set;
 * every field has a default so the whole document is optional.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { defaultedObject, described, durationString, stringEnum, stringMap, strictObject } from './common.js';
import { HTTPRetry } from './virtual-service.js';

export const MESH_CONFIG_API_VERSION = 'meshgate.dev/v1alpha1';

/** `host:port`, `[v6]:port`, or empty (the listener is off). */
export const LISTEN_ADDRESS_PATTERN = '^$|^(\\[[0-9A-Fa-f:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$';

export const ExtensionProvider = strictObject(
  {
    name: Type.String({ minLength: 1, description: 'Name referenced by AuthorizationPolicy `provider.name`.' }),
    envoyExtAuthzHttp: Type.Optional(
      strictObject(
        {
          service: Type.String({ description: 'Host of the authorizer (registry host or IP).' }),
          port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Port of the authorizer.' }),
          timeout: Type.Optional(durationString('Check timeout (default 600s in Istio; keep it short).')),
          pathPrefix: Type.Optional(Type.String({ description: 'Prefix added to the checked path.' })),
          failOpen: Type.Optional(Type.Boolean({ description: 'Allow the request when the authorizer is unreachable.' })),
          statusOnError: Type.Optional(Type.String({ description: 'Status returned when the authorizer fails (default 403).' })),
          includeRequestHeadersInCheck: Type.Optional(Type.Array(Type.String(), { description: 'Request headers sent to the authorizer.' })),
          includeAdditionalHeadersInCheck: Type.Optional(stringMap('Extra headers sent to the authorizer.')),
          headersToUpstreamOnAllow: Type.Optional(Type.Array(Type.String(), { description: 'Authorizer headers copied upstream on allow.' })),
          headersToDownstreamOnDeny: Type.Optional(Type.Array(Type.String(), { description: 'Authorizer headers returned on deny.' })),
          headersToDownstreamOnAllow: Type.Optional(Type.Array(Type.String(), { description: 'Authorizer headers returned on allow.' })),
        },
        'HTTP external authorization service.',
      ),
    ),
  },
  'An extension provider (external authorizer for CUSTOM AuthorizationPolicies).',
);
export type ExtensionProvider = Static<typeof ExtensionProvider>;

export const MeshConfigSpec = strictObject(
  {
    trustDomain: Type.String({ default: 'cluster.local', description: 'SPIFFE trust domain of the mesh identities.' }),
    rootNamespace: Type.String({ default: 'istio-system', description: 'Namespace whose security policies apply mesh-wide.' }),
    clusterDomain: Type.String({
      default: 'cluster.local',
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
      description: 'DNS domain of the mesh\'s services: a short host `reviews` in a VirtualService or DestinationRule of namespace `foo` means `reviews.foo.svc.<clusterDomain>`.',
    }),
    adminAddress: Type.String({
      default: '127.0.0.1:15000',
      description: 'host:port of the admin listener (/live, /ready, /metrics, /config_dump). Keep it on loopback.',
    }),
    statusAddress: Type.String({
      default: '0.0.0.0:15021',
      pattern: LISTEN_ADDRESS_PATTERN,
      description: 'host:port of the status listener (`GET /healthz/ready` only) for kubelet probes and load balancers; empty ⇒ no status listener.',
    }),
    metricsAddress: Type.String({
      default: '0.0.0.0:15020',
      pattern: LISTEN_ADDRESS_PATTERN,
      description: 'host:port of the Prometheus listener (`GET /stats/prometheus` only); empty ⇒ no metrics listener (the admin port still serves them).',
    }),
    appMetricsUrl: Type.Optional(
      Type.String({
        pattern: '^http://[^\\s/]+(/\\S*)?$',
        description:
          "http:// URL of the application's own Prometheus metrics, appended to the metrics listener's answer (Istio's metrics merge); an unreachable app adds a comment, never a failed scrape.",
      }),
    ),
    outboundTrafficPolicy: defaultedObject(
      {
        mode: stringEnum(
          ['ALLOW_ANY', 'REGISTRY_ONLY'],
          'Sidecar outbound traffic to hosts not in the registry: forwarded (ALLOW_ANY) or 502 BlackHole (REGISTRY_ONLY).',
          'ALLOW_ANY',
        ),
      },
      'Default outbound policy (a Sidecar resource can override it).',
    ),
    pathNormalization: Type.Optional(
      stringEnum(
        ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'],
        "Path normalisation applied before routing, authorization and rate limiting (docs/normalisation.md#path-normalisation). Unset: MERGE_SLASHES at the ingress (Envoy Gateway's default), BASE in a sidecar (Istio's default).",
      ),
    ),
    pathParameters: Type.Optional(
      stringEnum(
        ['KEEP', 'STRIP', 'REJECT'],
        'Path parameters (`;` in a path segment, e.g. `/admin;x=1/`), which Java servlet containers ignore when they map a path: REJECT answers 400, STRIP removes them from every segment before routing and forwarding, KEEP passes them on (Istio). Unset: REJECT at the ingress, KEEP in a sidecar.',
      ),
    ),
    headersWithUnderscoresAction: Type.Optional(
      stringEnum(
        ['ALLOW', 'REJECT_REQUEST', 'DROP_HEADER'],
        "Request header names containing `_` (which some backends read as `-`, so `x_debug` could stand in for `x-debug`): Envoy's option. Unset: DROP_HEADER at the ingress (as nginx does), ALLOW in a sidecar (Istio).",
      ),
    ),
    stripOverrideHeaders: Type.Optional(
      Type.Boolean({
        description:
          'Remove request-override headers (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) before policies run and before forwarding. Unset: true at the ingress, false in a sidecar.',
      }),
    ),
    numTrustedProxies: Type.Integer({
      minimum: 0,
      default: 0,
      description: 'Trusted hops in front of the ingress; the client IP is the Nth-from-right X-Forwarded-For entry.',
    }),
    concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 256,
        description:
          "Worker threads serving the proxy listeners (Envoy's --concurrency); `meshgate run --concurrency` wins. Unset: the cores available to the process (cgroup-aware) at the ingress, 1 in a sidecar. Read at start only.",
      }),
    ),
    connectTimeout: durationString('Default upstream connect timeout.', '10s'),
    drainDuration: durationString('How long listeners drain in-flight requests on shutdown or reload.', '5s'),
    enableAutoMtls: Type.Boolean({
      default: true,
      description: 'Sidecars use mesh mTLS to destinations that have a sidecar unless a DestinationRule sets tls.',
    }),
    h2UpgradePolicy: stringEnum(['DO_NOT_UPGRADE', 'UPGRADE'], 'Mesh default for upgrading upstream HTTP/1.1 to HTTP/2.', 'DO_NOT_UPGRADE'),
    defaultHttpRetryPolicy: Type.Optional(
      described(HTTPRetry, "Retry policy for routes without `retries` (default: Istio's attempts 2, connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes)."),
    ),
    redis: Type.Optional(
      strictObject(
        {
          url: Type.String({ description: 'redis:// or rediss:// URL of the shared store (rate limiting).' }),
          keyPrefix: Type.String({ default: 'meshgate:', description: 'Prefix of every key written.' }),
          connectTimeout: durationString('Connect timeout.', '1s'),
          commandTimeout: durationString(
            'How long a rate-limit decision may wait for Redis; past it the policy\'s failureMode decides (open: insurance limit, closed: 503).',
            '250ms',
          ),
        },
        'Shared Redis store. Absent ⇒ local in-memory stores only.',
      ),
    ),
    certificates: Type.Optional(
      strictObject(
        {
          certChain: Type.Optional(Type.String({ description: 'PEM file: this proxy\'s workload certificate chain (SPIFFE URI SAN).' })),
          privateKey: Type.Optional(Type.String({ description: 'PEM file: private key of certChain.' })),
          rootCert: Type.Optional(Type.String({ description: 'PEM file: mesh root CA(s) used to verify peers.' })),
          caCert: Type.Optional(Type.String({ description: 'PEM file: CA certificate used to self-issue workload certificates (development).' })),
          caKey: Type.Optional(Type.String({ description: 'PEM file: private key of caCert (development).' })),
        },
        'Files of the mesh identity: certChain + privateKey + rootCert (rotated in place by SPIRE/cert-manager), or caCert + caKey to self-issue short-lived certificates (development). Absent ⇒ an in-memory CA (single process only).',
      ),
    ),
    credentialsDirectory: Type.String({
      default: './credentials',
      description: 'Directory holding Gateway `credentialName` secrets as <name>/{tls.crt,tls.key,ca.crt} (relative to the config file).',
    }),
    ingress: defaultedObject(
      {
        namespace: Type.String({ default: 'istio-system', description: 'Namespace of the ingress proxy.' }),
        serviceAccount: Type.String({ default: 'istio-ingressgateway', description: 'Service account (identity) of the ingress proxy.' }),
        labels: Type.Record(Type.String(), Type.String(), {
          default: { istio: 'ingressgateway' },
          description: 'Labels of the ingress proxy (matched by Gateway selectors and policy selectors).',
        }),
      },
      'Identity of the ingress proxy.',
    ),
    accessLog: defaultedObject(
      {
        enabled: Type.Boolean({ default: true, description: 'Write one access-log line per request/connection.' }),
        path: Type.String({ default: '/dev/stdout', description: 'File to append to (`/dev/stdout` = standard output).' }),
        format: stringEnum(['JSON', 'TEXT'], 'JSON lines, or the Istio default text format.', 'JSON'),
      },
      'Access log.',
    ),
    metrics: defaultedObject(
      {
        enabled: Type.Boolean({
          default: true,
          description: "Record Istio's standard per-request series (istio_requests_total and the three histograms); meshgate's own series are always kept.",
        }),
        tcpReportingInterval: durationString(
          "How often the bytes of open TCP connections are added to istio_tcp_*_bytes_total (Istio's tcpReportingDuration); the rest is added when the connection closes.",
          '15s',
        ),
      },
      'Prometheus metrics on the metrics and admin ports.',
    ),
    tracing: defaultedObject(
      {
        samplingPercent: Type.Number({ minimum: 0, maximum: 100, default: 1, description: 'Share of new traces sampled (Istio default 1%).' }),
        otlpEndpoint: Type.Optional(Type.String({ description: 'OTLP/HTTP traces endpoint; absent ⇒ no export.' })),
        trustIncomingContext: Type.Boolean({
          default: true,
          description: 'Continue traceparent/b3 context from clients; disable at an untrusted edge.',
        }),
      },
      'Distributed tracing.',
    ),
    extensionProviders: Type.Optional(Type.Array(ExtensionProvider, { description: 'External authorizers.' })),
    debugHeaders: Type.Boolean({
      default: false,
      description: 'Add `x-meshgate-reason` (response flag and details) to locally generated responses.',
    }),
    connections: defaultedObject(
      {
        requestHeadersTimeout: durationString(
          'How long a client may take to send an HTTP/1.1 request head, and to complete its TLS handshake. Slowloris clients are cut after it (checked every second). 0s leaves node\'s defaults (60 s head, 120 s handshake).',
          '10s',
        ),
        idleTimeout: durationString('A client connection with no request in flight is closed after this long (HTTP/1.1 keep-alive, HTTP/2 sessions). 0s disables it.', '65s'),
        upgrades: Type.Array(Type.String({ minLength: 1, pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), {
          default: ['websocket'],
          description: 'HTTP/1.1 Upgrade tokens proxied to the upstream (Envoy `upgrade_configs`). Any other Upgrade (h2c included) is not attempted: the header is dropped and the request served as plain HTTP.',
        }),
        http2MaxConcurrentStreams: Type.Integer({
          minimum: 1,
          maximum: 2_147_483_647,
          default: 100,
          description: 'SETTINGS_MAX_CONCURRENT_STREAMS advertised to HTTP/2 clients (Envoy edge guidance: 100).',
        }),
        http2MaxPrematureResets: Type.Integer({
          minimum: 1,
          default: 200,
          description:
            'An HTTP/2 connection on which this many streams were reset (by the client, or by the proxy because of a client frame error) before their response completed, and on which such resets are at least half of all streams, is closed with GOAWAY ENHANCE_YOUR_CALM (Rapid Reset CVE-2023-44487, MadeYouReset CVE-2025-8671).',
        }),
      },
      'Client-facing connection limits and timeouts of every listener. A change re-opens the listeners (draining the old ones).',
    ),
    maxRequestHeadersKb: Type.Integer({
      minimum: 1,
      maximum: 8192,
      default: 60,
      description: "Max size of a request's header block in KiB (Envoy's default 60; node's own 16 is raised to it); larger requests get 431.",
    }),
    maxRequestHeaders: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 100,
      description: "Max number of request header lines, repeats included (Envoy's default 100); more get 431.",
    }),
  },
  'MeshConfig: mesh-wide and process-level settings of meshgate.',
);
export type MeshConfigSpec = Static<typeof MeshConfigSpec>;

/** The effective MeshConfig when the config set has none. */
export function defaultMeshConfig(): MeshConfigSpec {
  return Value.Default(MeshConfigSpec, {}) as MeshConfigSpec;
}
