/**
 * `networking.istio.io` DestinationRule (docs/routing.md#destinationrule): policies applied after routing to traffic
 * for a host — load balancing, connection pool limits, outlier detection, upstream TLS, subsets.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { ExportTo, PortNumber, WorkloadSelector, described, durationString, stringEnum, stringList, strictObject } from './common.js';

export const LocalityLbSetting = strictObject(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'Enable locality-aware load balancing (mesh default: enabled).' })),
    distribute: Type.Optional(
      Type.Array(
        strictObject(
          {
            from: Type.Optional(Type.String({ description: 'Origin locality `region/zone/subzone`, `*` wildcards allowed.' })),
            to: Type.Optional(
              Type.Record(Type.String(), Type.Integer({ minimum: 0 }), { description: 'Locality → weight (should sum to 100).' }),
            ),
          },
          'Traffic split for clients in `from`.',
        ),
        { description: 'Explicit weighted distribution between localities.' },
      ),
    ),
    failover: Type.Optional(
      Type.Array(
        strictObject(
          {
            from: Type.Optional(Type.String({ description: 'Origin region.' })),
            to: Type.Optional(Type.String({ description: 'Region to fail over to.' })),
          },
          'Failover path between regions.',
        ),
        { description: 'Explicit failover regions (needs outlierDetection).' },
      ),
    ),
    failoverPriority: Type.Optional(stringList('Ordered endpoint labels used to prioritise failover.')),
  },
  'Locality load balancing. Only one of distribute, failover, failoverPriority.',
);

export const LoadBalancerSettings = strictObject(
  {
    simple: Type.Optional(
      stringEnum(
        ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'],
        'Standard algorithm. UNSPECIFIED ⇒ LEAST_REQUEST; LEAST_CONN is a deprecated alias of LEAST_REQUEST.',
      ),
    ),
    consistentHash: Type.Optional(
      strictObject(
        {
          httpHeaderName: Type.Optional(Type.String({ description: 'Hash on this request header.' })),
          httpCookie: Type.Optional(
            strictObject(
              {
                name: Type.String({ description: 'Cookie name.' }),
                path: Type.Optional(Type.String({ description: 'Path of a generated cookie.' })),
                ttl: Type.Optional(durationString('Lifetime of a generated cookie; when set and the cookie is absent the proxy issues it. 0s = session cookie.')),
                attributes: Type.Optional(
                  Type.Array(
                    strictObject(
                      {
                        name: Type.String({ description: 'Attribute name.' }),
                        value: Type.Optional(Type.String({ description: 'Attribute value.' })),
                      },
                      'Extra cookie attribute.',
                    ),
                    { description: 'Extra attributes of a generated cookie.' },
                  ),
                ),
              },
              'Hash on a cookie (generated when `ttl` is set).',
            ),
          ),
          useSourceIp: Type.Optional(Type.Boolean({ description: 'Hash on the client IP.' })),
          httpQueryParameterName: Type.Optional(Type.String({ description: 'Hash on this query parameter.' })),
          ringHash: Type.Optional(
            strictObject(
              { minimumRingSize: Type.Optional(Type.Integer({ minimum: 0, description: 'Minimum ring size (default 1024).' })) },
              'Ketama ring hash (default algorithm).',
            ),
          ),
          maglev: Type.Optional(
            strictObject(
              { tableSize: Type.Optional(Type.Integer({ minimum: 0, description: 'Lookup table size, prime (default 65537).' })) },
              'Maglev hash.',
            ),
          ),
          minimumRingSize: Type.Optional(Type.Integer({ minimum: 0, description: 'Deprecated; use `ringHash.minimumRingSize`.' })),
        },
        'Soft session affinity. One hash key (httpHeaderName | httpCookie | useSourceIp | httpQueryParameterName).',
      ),
    ),
    localityLbSetting: Type.Optional(LocalityLbSetting),
    warmupDurationSecs: Type.Optional(durationString('Deprecated: use `warmup.duration`.')),
    warmup: Type.Optional(
      strictObject(
        {
          duration: durationString('Slow-start window for new endpoints.'),
          minimumPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Initial share of a new endpoint (default 10).' })),
          aggression: Type.Optional(Type.Number({ minimum: 1, description: 'Ramp curve (1.0 = linear, default).' })),
        },
        'Slow start (ROUND_ROBIN and LEAST_REQUEST only).',
      ),
    ),
  },
  'Load-balancing policy. `simple` and `consistentHash` are exclusive.',
);
export type LoadBalancerSettings = Static<typeof LoadBalancerSettings>;

const uintLimit = (description: string) => Type.Integer({ description: `${description} ≤ 0 ⇒ default.` });

export const ConnectionPoolSettings = strictObject(
  {
    tcp: Type.Optional(
      strictObject(
        {
          maxConnections: Type.Optional(uintLimit('Max connections to the cluster (default 2³²−1).')),
          connectTimeout: Type.Optional(durationString('TCP connect timeout (default: mesh connectTimeout, 10s).')),
          tcpKeepalive: Type.Optional(
            strictObject(
              {
                probes: Type.Optional(Type.Integer({ minimum: 0, description: 'Unanswered probes before the connection is dead.' })),
                time: Type.Optional(durationString('Idle time before the first probe.')),
                interval: Type.Optional(durationString('Interval between probes.')),
              },
              'SO_KEEPALIVE settings.',
            ),
          ),
          maxConnectionDuration: Type.Optional(durationString('Close connections after this duration.')),
          idleTimeout: Type.Optional(durationString('Close idle TCP connections (default 1h; 0s disables).')),
        },
        'TCP-level pool settings.',
      ),
    ),
    http: Type.Optional(
      strictObject(
        {
          http1MaxPendingRequests: Type.Optional(uintLimit('Max requests queued waiting for a connection; overflow ⇒ 503 UO.')),
          http2MaxRequests: Type.Optional(uintLimit('Max concurrent requests to the cluster; overflow ⇒ 503 UO.')),
          maxRequestsPerConnection: Type.Optional(uintLimit('Requests per connection (0 = unlimited, 1 disables keep-alive).')),
          maxRetries: Type.Optional(uintLimit('Max concurrent retries outstanding to the cluster.')),
          idleTimeout: Type.Optional(durationString('Close upstream connections idle this long (default 1h).')),
          h2UpgradePolicy: Type.Optional(stringEnum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'], 'Upgrade HTTP/1.1 upstream connections to HTTP/2.')),
          useClientProtocol: Type.Optional(Type.Boolean({ description: 'Use the downstream protocol upstream.' })),
          maxConcurrentStreams: Type.Optional(uintLimit('Max concurrent streams per HTTP/2 connection.')),
          http2KeepAlive: Type.Optional(
            strictObject(
              {
                interval: Type.Optional(durationString('PING interval.')),
                timeout: Type.Optional(durationString('PING response timeout.')),
              },
              'HTTP/2 PING keep-alive.',
            ),
          ),
        },
        'HTTP-level pool settings.',
      ),
    ),
  },
  'Connection pool / circuit breaker limits, per client proxy per upstream cluster.',
);
export type ConnectionPoolSettings = Static<typeof ConnectionPoolSettings>;

export const OutlierDetection = strictObject(
  {
    splitExternalLocalOriginErrors: Type.Optional(Type.Boolean({ description: 'Count local-origin failures separately.' })),
    consecutiveLocalOriginFailures: Type.Optional(Type.Integer({ minimum: 0, description: 'Local-origin failures before ejection (default 5).' })),
    consecutiveGatewayErrors: Type.Optional(Type.Integer({ minimum: 0, description: 'Consecutive 502/503/504 before ejection (default disabled).' })),
    consecutive5xxErrors: Type.Optional(Type.Integer({ minimum: 0, description: 'Consecutive 5xx before ejection (default 5; 0 disables).' })),
    consecutiveErrors: Type.Optional(Type.Integer({ minimum: 0, description: 'Deprecated 502/503/504 counter.' })),
    interval: Type.Optional(durationString('Ejection sweep interval (default 10s).')),
    baseEjectionTime: Type.Optional(durationString('Base ejection time, multiplied by the ejection count (default 30s).')),
    maxEjectionPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Max share of hosts ejected (default 10).' })),
    minHealthPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Panic threshold (default 0 = never).' })),
    outlierDetectionHttpErrorCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { description: 'Status codes counted as errors instead of 5xx.' })),
  },
  'Passive health checking (ejection of failing endpoints).',
);
export type OutlierDetection = Static<typeof OutlierDetection>;

export const ClientTLSSettings = strictObject(
  {
    mode: Type.Optional(stringEnum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'], 'Upstream TLS origination mode (default DISABLE).', 'DISABLE')),
    clientCertificate: Type.Optional(Type.String({ description: 'PEM client certificate file (MUTUAL).' })),
    privateKey: Type.Optional(Type.String({ description: 'PEM private key file (MUTUAL).' })),
    caCertificates: Type.Optional(Type.String({ description: 'PEM CA bundle to verify the server (OS roots when omitted).' })),
    credentialName: Type.Optional(Type.String({ description: 'Named credential holding key/cert/cacert.' })),
    subjectAltNames: Type.Optional(stringList('Accept the server certificate if a SAN matches one of these.')),
    sni: Type.Optional(Type.String({ description: 'SNI to send (default: the request Host for SIMPLE/MUTUAL).' })),
    insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'Skip server certificate verification.' })),
    caCrl: Type.Optional(Type.String({ description: 'PEM certificate revocation list file.' })),
  },
  'Upstream TLS settings.',
);
export type ClientTLSSettings = Static<typeof ClientTLSSettings>;

const tunnel = strictObject(
  {
    protocol: Type.Optional(Type.String({ description: '`CONNECT` (default) or `POST`.' })),
    targetHost: Type.String({ description: 'Host to tunnel to.' }),
    targetPort: described(PortNumber, 'Port to tunnel to.'),
  },
  'Tunnel TCP through an HTTP proxy (TCP/TLS routes only).',
);
const proxyProtocol = strictObject(
  { version: Type.Optional(stringEnum(['V1', 'V2'], 'PROXY protocol version.')) },
  'Send a PROXY protocol header upstream.',
);
const retryBudget = strictObject(
  {
    percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Share of active+pending requests that may be retries (default 20).' })),
    minRetryConcurrency: Type.Optional(Type.Integer({ minimum: 0, description: 'Retries always allowed (default 3).' })),
  },
  'Limit concurrent retries as a share of traffic.',
);

export const PortTrafficPolicy = strictObject(
  {
    port: Type.Optional(strictObject({ number: Type.Optional(described(PortNumber, 'Destination port.')) }, 'Port this policy applies to.')),
    loadBalancer: Type.Optional(LoadBalancerSettings),
    connectionPool: Type.Optional(ConnectionPoolSettings),
    outlierDetection: Type.Optional(OutlierDetection),
    tls: Type.Optional(ClientTLSSettings),
  },
  'Port-level policy; replaces the DR-level policy entirely for that port.',
);
export type PortTrafficPolicy = Static<typeof PortTrafficPolicy>;

export const TrafficPolicy = strictObject(
  {
    loadBalancer: Type.Optional(LoadBalancerSettings),
    connectionPool: Type.Optional(ConnectionPoolSettings),
    outlierDetection: Type.Optional(OutlierDetection),
    tls: Type.Optional(ClientTLSSettings),
    portLevelSettings: Type.Optional(Type.Array(PortTrafficPolicy, { maxItems: 4096, description: 'Per-port overrides.' })),
    tunnel: Type.Optional(tunnel),
    proxyProtocol: Type.Optional(proxyProtocol),
    retryBudget: Type.Optional(retryBudget),
  },
  'Traffic policy for a host (or a subset).',
);
export type TrafficPolicy = Static<typeof TrafficPolicy>;

export const Subset = strictObject(
  {
    name: Type.String({ minLength: 1, description: 'Subset name, unique per host; referenced by VirtualService destinations.' }),
    labels: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Endpoint labels (superset match).' })),
    trafficPolicy: Type.Optional(described(TrafficPolicy, 'Overrides per top-level field, only for traffic routed to this subset.')),
  },
  'A named group of endpoints of the host.',
);
export type Subset = Static<typeof Subset>;

export const DestinationRuleSpec = strictObject(
  {
    host: Type.String({ minLength: 1, description: 'Host the rule applies to (registry host; wildcard allowed).' }),
    trafficPolicy: Type.Optional(TrafficPolicy),
    subsets: Type.Optional(Type.Array(Subset, { description: 'Named subsets of the host.' })),
    exportTo: Type.Optional(ExportTo),
    workloadSelector: Type.Optional(described(WorkloadSelector, 'Apply only on the selected client proxies (same namespace).')),
  },
  'DestinationRule: policies for traffic to a host after routing.',
);
export type DestinationRuleSpec = Static<typeof DestinationRuleSpec>;
