/**
 * `networking.istio.io` VirtualService (docs/routing.md): ordered HTTP/TLS/TCP routing rules for a
 * set of hosts. Field names and sets follow istio/api `virtual_service.proto`.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import {
  ExportTo,
  Percent,
  PortNumber,
  described,
  durationString,
  stringEnum,
  stringList,
  stringMap,
  strictObject,
} from './common.js';

export { Percent };

export const StringMatch = Type.Object(
  {
    exact: Type.Optional(Type.String({ description: 'Exact, case-sensitive string match.' })),
    prefix: Type.Optional(Type.String({ description: 'Prefix match (character prefix, not path-segment aware).' })),
    regex: Type.Optional(Type.String({ description: 'RE2 regular expression, full-string match, at most 1024 characters.' })),
  },
  {
    additionalProperties: false,
    maxProperties: 1,
    description: 'One of `exact`, `prefix` or `regex`. An empty object `{}` means "present" (headers and query parameters).',
  },
);
export type StringMatch = Static<typeof StringMatch>;

export const Destination = strictObject(
  {
    host: Type.String({ minLength: 1, description: 'Registry host (ServiceEntry/WorkloadEntry/Sidecar service name). FQDNs recommended.' }),
    subset: Type.Optional(Type.String({ description: 'Name of a subset defined by a DestinationRule for this host.' })),
    port: Type.Optional(
      strictObject(
        { number: Type.Optional(described(PortNumber, 'Port on the host; required when the host exposes several ports.')) },
        'Port on the destination host.',
      ),
    ),
  },
  'Where to send traffic: a host, optionally a subset and a port.',
);
export type Destination = Static<typeof Destination>;

/** RFC 9110 §5.5 field-value: HTAB, visible ASCII and obs-text; never CR, LF, NUL or another control (checked at load, not per request). */
function headerValueMap(description: string) {
  return Type.Record(Type.String(), Type.String({ pattern: '^[\\t\\x20-\\x7e\\x80-\\xff]*$', description: 'A header value: no CR, LF, NUL or other control characters.' }), { description });
}

export const HeaderOperations = strictObject(
  {
    set: Type.Optional(headerValueMap('Overwrite these headers (add when absent).')),
    add: Type.Optional(headerValueMap('Append these header values.')),
    remove: Type.Optional(stringList('Remove these headers (applied before additions).')),
  },
  'Header manipulations: remove, then set/add.',
);
export type HeaderOperations = Static<typeof HeaderOperations>;

export const Headers = strictObject(
  {
    request: Type.Optional(described(HeaderOperations, 'Changes to the request sent upstream.')),
    response: Type.Optional(described(HeaderOperations, 'Changes to the response sent downstream (direct responses too).')),
  },
  'Request and response header manipulations.',
);
export type Headers = Static<typeof Headers>;

const sourceLabels = stringMap('Selector: only client proxies with these labels (only effective with the `mesh` gateway).');
const sourceNamespace = Type.String({ description: 'Selector: only client proxies in this namespace.' });
const matchGateways = stringList('Overrides the top-level `gateways` for this match block.');
const destinationSubnets = stringList('IPv4/IPv6 destination addresses or CIDRs.');

export const HTTPMatchRequest = strictObject(
  {
    name: Type.Optional(Type.String({ description: 'Name of the match block, appended to the route name in logs.' })),
    uri: Type.Optional(described(StringMatch, 'Match on the path (query string excluded for exact/regex).')),
    scheme: Type.Optional(described(StringMatch, 'Match on the URI scheme (`http`/`https`).')),
    method: Type.Optional(described(StringMatch, 'Match on the HTTP method (case-sensitive).')),
    authority: Type.Optional(described(StringMatch, 'Match on Host/:authority as sent, port included.')),
    headers: Type.Optional(
      Type.Record(Type.String(), StringMatch, {
        description: 'Header conditions; keys lower-case. `{}` = header present. `@request.auth.claims.*` keys match JWT claims.',
      }),
    ),
    port: Type.Optional(described(PortNumber, 'Selector: the listener/service port this block applies to.')),
    sourceLabels: Type.Optional(sourceLabels),
    gateways: Type.Optional(matchGateways),
    queryParams: Type.Optional(
      Type.Record(Type.String(), StringMatch, { description: 'Query parameter conditions (first occurrence). `{}` = present.' }),
    ),
    ignoreUriCase: Type.Optional(Type.Boolean({ description: 'Case-insensitive `uri` exact/prefix matching (regex unaffected).' })),
    withoutHeaders: Type.Optional(
      Type.Record(Type.String(), StringMatch, { description: 'Header conditions that must NOT hold; absent header = empty value.' }),
    ),
    sourceNamespace: Type.Optional(sourceNamespace),
    statPrefix: Type.Optional(Type.String({ description: 'Envoy stats prefix (accepted for compatibility; unused).' })),
  },
  'One match block; all present conditions are AND-ed. Blocks of a rule are OR-ed.',
);
export type HTTPMatchRequest = Static<typeof HTTPMatchRequest>;

export const HTTPRouteDestination = strictObject(
  {
    destination: Destination,
    weight: Type.Optional(
      Type.Integer({
        description: 'Relative share among the destinations of the rule. A single destination gets 100%; 0/omitted among several gets nothing.',
      }),
    ),
    headers: Type.Optional(described(Headers, 'Header changes applied only when this destination is picked.')),
  },
  'A weighted destination of an HTTP rule.',
);
export type HTTPRouteDestination = Static<typeof HTTPRouteDestination>;

export const HTTPRedirect = strictObject(
  {
    uri: Type.Optional(Type.String({ description: 'Replace the whole path.' })),
    authority: Type.Optional(Type.String({ description: 'Replace the host in Location (request port not carried over).' })),
    port: Type.Optional(described(PortNumber, 'Fixed port in Location.')),
    derivePort: Type.Optional(
      stringEnum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'], 'Derive the Location port from the scheme default or the request port.'),
    ),
    scheme: Type.Optional(Type.String({ description: '`http` or `https`; unset keeps the request scheme.' })),
    redirectCode: Type.Optional(Type.Integer({ description: 'HTTP status of the redirect: 301 (default), 302, 303, 307 or 308.' })),
    prefixRewrite: Type.Optional(Type.String({ description: 'Replace the matched prefix of the path (prefix matches only).' })),
  },
  'Answer with a redirect instead of forwarding.',
);
export type HTTPRedirect = Static<typeof HTTPRedirect>;

export const HTTPDirectResponse = strictObject(
  {
    status: Type.Integer({ minimum: 200, maximum: 599, description: 'HTTP status to return (200–599).' }),
    body: Type.Optional(
      Type.Object(
        {
          string: Type.Optional(Type.String({ description: 'Body as text.' })),
          bytes: Type.Optional(Type.String({ description: 'Body as base64.' })),
        },
        { additionalProperties: false, maxProperties: 1, description: 'Response body: one of `string` or `bytes` (base64).' },
      ),
    ),
  },
  'Answer directly with a fixed status and body.',
);
export type HTTPDirectResponse = Static<typeof HTTPDirectResponse>;

export const Delegate = strictObject(
  {
    name: Type.Optional(Type.String({ description: 'Name of the delegate VirtualService.' })),
    namespace: Type.Optional(Type.String({ description: 'Namespace of the delegate VirtualService (default: this one).' })),
  },
  'Hand the rule over to another (host-less) VirtualService. One level deep.',
);
export type Delegate = Static<typeof Delegate>;

export const HTTPRewrite = strictObject(
  {
    uri: Type.Optional(Type.String({ description: 'Replace the matched prefix (or the whole path for exact/regex matches).' })),
    authority: Type.Optional(Type.String({ description: 'Replace Host/:authority sent upstream.' })),
    uriRegexRewrite: Type.Optional(
      strictObject(
        {
          match: Type.String({ description: 'RE2 regex applied to the path.' }),
          rewrite: Type.String({ description: 'Substitution; `\\1`, `\\2` refer to capture groups.' }),
        },
        'Regex substitution on the path; exclusive with `uri`.',
      ),
    ),
  },
  'Rewrite the request before forwarding.',
);
export type HTTPRewrite = Static<typeof HTTPRewrite>;

export const HTTPRetry = strictObject(
  {
    attempts: Type.Optional(Type.Integer({ minimum: 0, description: 'Number of retries (total tries = 1 + attempts). 0 disables retries.' })),
    perTryTimeout: Type.Optional(durationString('Timeout of each try (≥ 1ms).')),
    retryOn: Type.Optional(
      Type.String({ description: 'Comma list of Envoy retry-on policies (5xx, gateway-error, connect-failure, …) and/or status codes.' }),
    ),
    retryRemoteLocalities: Type.Optional(Type.Boolean({ description: 'Allow retries to other localities.' })),
    retryIgnorePreviousHosts: Type.Optional(Type.Boolean({ description: 'Retries avoid hosts already tried (default true).' })),
    backoff: Type.Optional(durationString('Base interval of the jittered exponential backoff (default 25ms).')),
  },
  'Retry policy of the rule.',
);
export type HTTPRetry = Static<typeof HTTPRetry>;

export const HTTPFaultInjection = strictObject(
  {
    delay: Type.Optional(
      strictObject(
        {
          fixedDelay: Type.Optional(durationString('Delay before forwarding (≥ 1ms).')),
          exponentialDelay: Type.Optional(durationString('Not supported by Istio; accepted for schema compatibility.')),
          percentage: Type.Optional(described(Percent, 'Share of requests delayed. Omitted ⇒ 0% (no injection).')),
          percent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Deprecated integer percentage; used only without `percentage`.' })),
        },
        'Delay injection.',
      ),
    ),
    abort: Type.Optional(
      strictObject(
        {
          httpStatus: Type.Optional(Type.Integer({ minimum: 200, maximum: 599, description: 'HTTP status to answer with.' })),
          grpcStatus: Type.Optional(Type.String({ description: 'gRPC status name, e.g. `UNAVAILABLE`.' })),
          http2Error: Type.Optional(Type.String({ description: 'HTTP/2 error (not supported by Istio).' })),
          percentage: Type.Optional(described(Percent, 'Share of requests aborted. Omitted ⇒ 0% (no injection).')),
        },
        'Abort injection.',
      ),
    ),
  },
  'Client-side fault injection (delay, then abort).',
);
export type HTTPFaultInjection = Static<typeof HTTPFaultInjection>;

export const HTTPMirrorPolicy = strictObject(
  {
    destination: Destination,
    percentage: Type.Optional(described(Percent, 'Share of requests mirrored. Omitted ⇒ 100%.')),
  },
  'A mirror target.',
);
export type HTTPMirrorPolicy = Static<typeof HTTPMirrorPolicy>;

export const CorsPolicy = strictObject(
  {
    allowOrigins: Type.Optional(Type.Array(StringMatch, { description: 'Origins allowed (any matcher).' })),
    allowOrigin: Type.Optional(stringList('Deprecated: exact origins; use `allowOrigins`.')),
    allowMethods: Type.Optional(stringList('Access-Control-Allow-Methods.')),
    allowHeaders: Type.Optional(stringList('Access-Control-Allow-Headers.')),
    exposeHeaders: Type.Optional(stringList('Access-Control-Expose-Headers.')),
    maxAge: Type.Optional(durationString('Access-Control-Max-Age.')),
    allowCredentials: Type.Optional(Type.Boolean({ description: 'Send Access-Control-Allow-Credentials: true.' })),
    unmatchedPreflights: Type.Optional(
      stringEnum(['UNSPECIFIED', 'FORWARD', 'IGNORE'], 'Preflights with an unmatched origin: forwarded (default) or ignored.'),
    ),
  },
  'CORS policy.',
);
export type CorsPolicy = Static<typeof CorsPolicy>;

export const HTTPRoute = strictObject(
  {
    name: Type.Optional(Type.String({ description: 'Rule name, used in logs and the route name.' })),
    match: Type.Optional(Type.Array(HTTPMatchRequest, { description: 'Match blocks (OR). Absent ⇒ matches everything.' })),
    route: Type.Optional(Type.Array(HTTPRouteDestination, { description: 'Weighted destinations to forward to.' })),
    redirect: Type.Optional(HTTPRedirect),
    directResponse: Type.Optional(HTTPDirectResponse),
    delegate: Type.Optional(Delegate),
    rewrite: Type.Optional(HTTPRewrite),
    timeout: Type.Optional(durationString('Total request timeout including retries; absent/0s = none.')),
    retries: Type.Optional(HTTPRetry),
    fault: Type.Optional(HTTPFaultInjection),
    mirror: Type.Optional(described(Destination, 'Mirror requests to this destination (fire and forget).')),
    mirrors: Type.Optional(Type.Array(HTTPMirrorPolicy, { description: 'Several mirror targets; exclusive with `mirror`.' })),
    mirrorPercentage: Type.Optional(described(Percent, 'Share of requests mirrored to `mirror`; omitted ⇒ 100%.')),
    mirrorPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Deprecated; use `mirrorPercentage`.' })),
    corsPolicy: Type.Optional(CorsPolicy),
    headers: Type.Optional(Headers),
  },
  'An HTTP rule: matches and exactly one action (route, redirect, directResponse or delegate).',
);
export type HTTPRoute = Static<typeof HTTPRoute>;

export const RouteDestination = strictObject(
  {
    destination: Destination,
    weight: Type.Optional(Type.Integer({ description: 'Relative share among the destinations.' })),
  },
  'A weighted L4 destination.',
);
export type RouteDestination = Static<typeof RouteDestination>;

export const L4MatchAttributes = strictObject(
  {
    destinationSubnets: Type.Optional(destinationSubnets),
    port: Type.Optional(described(PortNumber, 'Destination port.')),
    sourceLabels: Type.Optional(sourceLabels),
    gateways: Type.Optional(matchGateways),
    sourceNamespace: Type.Optional(sourceNamespace),
  },
  'L4 connection attributes.',
);
export type L4MatchAttributes = Static<typeof L4MatchAttributes>;

export const TLSMatchAttributes = strictObject(
  {
    sniHosts: stringList('SNI values to match (wildcard prefix allowed); must be within the VirtualService hosts.'),
    destinationSubnets: Type.Optional(destinationSubnets),
    port: Type.Optional(described(PortNumber, 'Destination port.')),
    sourceLabels: Type.Optional(sourceLabels),
    gateways: Type.Optional(matchGateways),
    sourceNamespace: Type.Optional(sourceNamespace),
  },
  'TLS connection attributes (SNI).',
);
export type TLSMatchAttributes = Static<typeof TLSMatchAttributes>;

export const TCPRoute = strictObject(
  {
    match: Type.Optional(Type.Array(L4MatchAttributes, { description: 'Conditions (OR).' })),
    route: Type.Optional(Type.Array(RouteDestination, { description: 'Weighted destinations.' })),
  },
  'Opaque TCP rule.',
);
export type TCPRoute = Static<typeof TCPRoute>;

export const TLSRoute = strictObject(
  {
    match: Type.Array(TLSMatchAttributes, { description: 'Conditions (OR); required.' }),
    route: Type.Optional(Type.Array(RouteDestination, { description: 'Weighted destinations.' })),
  },
  'Non-terminated TLS rule routed by SNI.',
);
export type TLSRoute = Static<typeof TLSRoute>;

export const VirtualServiceSpec = strictObject(
  {
    hosts: Type.Optional(stringList('Hosts this VirtualService governs (wildcards allowed). Empty for a delegate VirtualService.')),
    gateways: Type.Optional(stringList('Gateways (`ns/name` or `name`) and/or `mesh` (all sidecars). Omitted ⇒ `[mesh]`.')),
    http: Type.Optional(Type.Array(HTTPRoute, { description: 'Ordered HTTP rules; first match wins.' })),
    tls: Type.Optional(Type.Array(TLSRoute, { description: 'Ordered TLS passthrough rules.' })),
    tcp: Type.Optional(Type.Array(TCPRoute, { description: 'Ordered TCP rules.' })),
    exportTo: Type.Optional(ExportTo),
  },
  'VirtualService: routing rules for a set of hosts.',
);
export type VirtualServiceSpec = Static<typeof VirtualServiceSpec>;
