/**
 * The catalogue of config diagnostics. Codes are stable (tests, docs and users' CI scripts pin them):
 * never renumber, only add. MG00xx = reading and parsing, MG01xx = schema, MG02xx = routing and
 * traffic cross-references, MG03xx = security policies, MG04xx = gateways and listeners.
 * docs/diagnostics.md is generated from this table (`renderDiagnosticsMarkdown`) and a test keeps it in sync.
 */
import type { Diagnostic, Severity, SourcePosition } from './resource.js';

export interface DiagnosticDefinition {
  readonly code: string;
  readonly severity: Severity;
  readonly title: string;
  readonly explanation: string;
}

const definitions = [
  ['MG0001', 'error', 'Config path unreadable', 'The file or directory given to meshgate does not exist or cannot be read. Nothing was loaded from it.'],
  ['MG0002', 'error', 'YAML syntax error', 'The document is not well-formed YAML (or JSON). The position points at the first character the parser could not accept; the whole document is skipped.'],
  ['MG0003', 'error', 'Duplicate key', 'A mapping contains the same key twice. YAML parsers disagree on which value wins, so meshgate rejects the document instead of guessing.'],
  ['MG0004', 'error', 'Document is not a mapping', 'Each YAML document must be a mapping with `apiVersion`, `kind`, `metadata` and `spec`. Lists or scalars at the top level are rejected.'],
  ['MG0005', 'error', 'Missing apiVersion or kind', 'Every document needs string `apiVersion` and `kind` fields, as in Kubernetes manifests.'],
  ['MG0006', 'error', 'Unknown kind', 'The `kind` is neither one of the Istio kinds meshgate supports nor a kind contributed by an enabled plugin.'],
  ['MG0007', 'error', 'Unsupported apiVersion', 'The kind is known but not under this `apiVersion`. Istio networking kinds are served as networking.istio.io/v1, v1beta1 and v1alpha3; security kinds as security.istio.io/v1 and v1beta1.'],
  ['MG0008', 'error', 'Missing metadata.name', 'Every resource needs a `metadata.name`; it identifies the resource in logs, metrics, cross-references and the admin API.'],
  ['MG0009', 'error', 'Invalid name or namespace', 'Names must be DNS-1123 subdomains (lower-case letters, digits, `-` and `.`, at most 253 characters, starting and ending alphanumeric); namespaces must be DNS-1123 labels (no `.`, at most 63 characters).'],
  ['MG0010', 'error', 'Unknown envelope field', 'Top-level fields other than apiVersion, kind, metadata, spec and status, or unknown metadata fields, are rejected: they are usually indentation mistakes.'],
  ['MG0011', 'warning', 'No config files', 'The directory contains no `*.yaml`, `*.yml` or `*.json` files, so the configuration is empty.'],
  ['MG0012', 'warning', 'YAML warning', 'The YAML parser accepted the document but reported something suspicious, such as an unresolved tag.'],
  ['MG0013', 'error', 'Circular alias', 'A YAML alias refers to one of its own ancestors, which would make the configuration infinitely deep.'],
  ['MG0101', 'error', 'Unknown field', 'The field is not part of the kind\'s schema. Istio ignores unknown fields only in some code paths; meshgate rejects them because a misspelt field is silently ignored config.'],
  ['MG0102', 'error', 'Missing required field', 'The schema requires this field.'],
  ['MG0103', 'error', 'Wrong type', 'The value has the wrong type (for example a number where a string is expected, or a list where a mapping is expected). Quote values such as "true" or "8080" when a string is meant.'],
  ['MG0104', 'error', 'Value not allowed', 'The value is not one of the enumerated values the field accepts. Enum values are upper-case, as in Istio.'],
  ['MG0105', 'error', 'Value out of range', 'A number, string length or list length is outside the bounds the field accepts.'],
  ['MG0106', 'error', 'Invalid duration', 'Durations are written as a number and a unit: `250ms`, `1.5s`, `1m`, `1h` (units ns, us, ms, s, m, h; sequences such as `1h30m` allowed). A bare number other than 0 has no unit and is rejected.'],
  ['MG0107', 'error', 'Exclusive fields', 'Only one of the listed fields may be set (for example one of `exact`, `prefix`, `regex` in a StringMatch, or one of `string`, `bytes` in a body).'],
  ['MG0108', 'error', 'Invalid format', 'The string does not have the required format (for example a header name or a port key).'],
  ['MG0201', 'error', 'Duplicate resource', 'Two resources have the same kind, namespace and name. Only the first would be used; rename or remove the other.'],
  ['MG0202', 'error', 'Several MeshConfigs', 'At most one MeshConfig may be present; mesh-wide settings must have one source.'],
  ['MG0203', 'error', 'Undefined subset', 'A route names a subset that no DestinationRule for that host defines. Istio answers such requests with 503 (NC); meshgate refuses the config instead.'],
  ['MG0204', 'error', 'Invalid weights', 'In a rule with several destinations, weights are relative shares: they must not be negative and must not all be 0 (omitted counts as 0).'],
  ['MG0205', 'error', 'Conflicting route actions', 'An HTTP rule needs exactly one of `route`, `redirect`, `directResponse` or `delegate`; `rewrite` and `fault` cannot be combined with `redirect` or `directResponse`.'],
  ['MG0206', 'error', 'Retries disabled with options', '`retries.attempts: 0` disables retries; setting `perTryTimeout`, `retryOn` or other retry fields alongside it is contradictory.'],
  ['MG0207', 'error', 'Invalid regex', 'Regular expressions use RE2 syntax (no look-around, no back-references) and are at most 1024 characters long.'],
  ['MG0208', 'error', 'Unsupported redirect code', '`redirectCode` must be 301, 302, 303, 307 or 308. Istio drops routes with other codes.'],
  ['MG0209', 'error', 'Direct response body too large', 'A `directResponse` body may be at most 1 MB.'],
  ['MG0210', 'warning', 'Large direct response body', 'A `directResponse` body over 100 KB is held in memory for every snapshot; consider serving it from an upstream.'],
  ['MG0211', 'error', 'Empty prefix', 'A `prefix` match must be non-empty, except for `uri` where an empty prefix matches every path.'],
  ['MG0212', 'error', 'Unknown gateway', 'A VirtualService names a Gateway that does not exist (`<namespace>/<name>`, or `<name>` in the VirtualService\'s namespace). Only `mesh` is reserved.'],
  ['MG0213', 'warning', 'Host not in registry', 'No ServiceEntry, WorkloadEntry or Sidecar workload defines this host, so traffic to it can only be forwarded as passthrough (ALLOW_ANY) or fails with 503 (like istioctl analyze IST0101).'],
  ['MG0214', 'error', 'Conflicting or incomplete fields', 'Fields that exclude each other are both set (e.g. `mirror` and `mirrors`, `rewrite.uri` and `uriRegexRewrite`, `simple` and `consistentHash`), or a block lacks every field that gives it meaning (e.g. an empty `redirect` or `fault`).'],
  ['MG0215', 'error', 'Invalid retryOn', '`retryOn` is a comma-separated list of Envoy retry policies (5xx, gateway-error, reset, reset-before-request, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable) and HTTP status codes.'],
  ['MG0216', 'error', 'Duplicate subset', 'Subset names must be unique within a DestinationRule.'],
  ['MG0217', 'error', 'Invalid host', 'Hosts are FQDNs or wildcards with a single leading `*` (e.g. `*.example.com`); a bare `*` is only allowed where Istio allows it (Gateway servers, gateway-bound VirtualServices).'],
  ['MG0218', 'error', 'Invalid delegate', 'A delegate VirtualService must have no hosts, and a rule with `delegate` may have only `name` and `match` besides it; the delegate must exist.'],
  ['MG0301', 'error', 'Policy without rules', 'A DENY or CUSTOM AuthorizationPolicy without rules would never match; Istio rejects it.'],
  ['MG0302', 'error', 'Unknown condition key', 'A `when.key` is not an attribute Istio supports (request.headers[…], source.ip, remote.ip, source.namespace, source.principal, source.serviceAccount, source.trustDomain, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[…], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*).'],
  ['MG0303', 'error', 'Empty source or operation', '`from` and `to` lists must not be empty when present, and each entry needs a non-empty `source` or `operation`.'],
  ['MG0304', 'error', 'Invalid IP or CIDR', 'An `ipBlocks`/`remoteIpBlocks` entry or an IP condition value is not an IPv4/IPv6 address or CIDR.'],
  ['MG0305', 'error', 'Invalid port', 'Ports in AuthorizationPolicy `ports` and `destination.port` conditions, and PeerAuthentication `portLevelMtls` keys, must be numbers from 0 to 65535.'],
  ['MG0306', 'error', 'Provider misuse', '`provider` is only allowed with `action: CUSTOM`, and CUSTOM requires a `provider` naming a MeshConfig extension provider.'],
  ['MG0307', 'error', 'Condition without values', 'A `when` condition needs at least one of `values` or `notValues`.'],
  ['MG0308', 'error', 'Empty value', 'Value lists in sources, operations and conditions must not contain empty strings.'],
  ['MG0309', 'error', 'portLevelMtls without selector', 'PeerAuthentication `portLevelMtls` only applies to workloads picked by a `selector`; Istio rejects it otherwise.'],
  ['MG0310', 'error', 'Invalid JWT rule', 'A RequestAuthentication jwtRule needs an `issuer` or a `jwksUri`; `jwksUri` must be an http(s) URL; inline `jwks` must be a JSON Web Key Set; `audiences` and locations must not contain empty strings.'],
  ['MG0311', 'warning', 'Private key in JWKS', 'The inline JWKS contains private key material; only public keys are needed to verify tokens.'],
  ['MG0312', 'error', 'Duplicate claim header', 'Each `outputClaimToHeaders.header` may appear once per jwtRule.'],
  ['MG0313', 'error', 'Conflicting identity fields', '`serviceAccounts` cannot be combined with `principals` or `namespaces` in the same source; CUSTOM policies cannot use identity-based fields.'],
  ['MG0314', 'warning', 'Selector in root namespace ignored', 'A PeerAuthentication with a selector in the root namespace is ignored by Istio.'],
  ['MG0315', 'error', 'Invalid path template', 'Paths may use `{*}` (one segment) or `{**}` (last, zero or more segments) as whole segments only; `*` is only special at the start or end.'],
  ['MG0401', 'error', 'TLS settings missing', 'HTTPS and TLS servers need a `tls` block (mode and certificates).'],
  ['MG0402', 'error', 'TLS settings inconsistent', 'The `tls` fields do not fit the mode: SIMPLE/MUTUAL need `serverCertificate`+`privateKey` or a credential; MUTUAL/OPTIONAL_MUTUAL need client CA certificates; ISTIO_MUTUAL forbids certificate fields; file paths and credentials are mutually exclusive.'],
  ['MG0403', 'error', 'TLS on plaintext server', 'Only HTTPS and TLS servers may carry TLS settings; a plain HTTP server may only set `tls.httpsRedirect`.'],
  ['MG0404', 'error', 'Invalid server', 'A Gateway server has an unknown protocol, an invalid host entry (`[namespace/]dnsName`), or a name used by another server.'],
  ['MG0405', 'error', 'Port conflict', 'Two servers on the same port and bind address use incompatible protocols, or plaintext servers on one port disagree.'],
] as const satisfies readonly (readonly [string, Severity, string, string])[];

export type DiagnosticCode = (typeof definitions)[number][0];

export const DIAGNOSTICS: ReadonlyMap<DiagnosticCode, DiagnosticDefinition> = new Map(
  definitions.map(([code, severity, title, explanation]) => [code, { code, severity, title, explanation }]),
);

export interface DiagnosticSubject {
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly field?: string;
}

export function makeDiagnostic(
  code: DiagnosticCode,
  message: string,
  position: SourcePosition,
  subject: DiagnosticSubject = {},
  severity?: Severity,
): Diagnostic {
  const definition = DIAGNOSTICS.get(code);
  return {
    code,
    severity: severity ?? definition?.severity ?? 'error',
    message,
    position,
    ...subject,
  };
}

/** Renders the catalogue as docs/diagnostics.md. */
export function renderDiagnosticsMarkdown(): string {
  const lines = [
    '# Config diagnostics',
    '',
    '<!-- Generated from gateway/config/diagnostics.ts by renderDiagnosticsMarkdown(); test/config/generated-files.test.ts keeps it in sync. -->',
    '',
    '`meshgate validate` and the loader report problems as `file:line:col CODE kind namespace/name: message`.',
    'Errors reject the resource (and a snapshot containing it); warnings are reported but the config is used.',
    '',
    '| Code | Severity | Title |',
    '|---|---|---|',
    ...[...DIAGNOSTICS.values()].map((d) => `| [${d.code}](#${d.code.toLowerCase()}) | ${d.severity} | ${d.title} |`),
    '',
  ];
  for (const d of DIAGNOSTICS.values()) {
    lines.push(`## ${d.code}`, '', `**${d.title}** (${d.severity})`, '', d.explanation, '');
  }
  return lines.join('\n');
}
