/**
 * The catalogue of config diagnostics. Codes are stable (tests, docs and users' CI scripts pin them):
 * never renumber, only add. MG00xx = reading and parsing, MG01xx = schema, MG02xx = routing and
 * traffic cross-references, MG03xx = security policies, MG04xx = gateways and listeners, MG07xx = route
 * compilation, MG09xx = which proxy this process is (workload and Sidecar), MG13xx = the Dapr API
 * (Components, Subscriptions, app id).
 * A plugin owns the codes of its feature and declares them on its MeshPlugin (`diagnostics`):
 * MG08xx = access log, MG11xx = rate limiting. One code means one problem with one severity.
 * docs/diagnostics.md is generated from this table plus the plugins' definitions
 * (`renderDiagnosticsMarkdown`) and a test keeps it in sync; another test checks that every code the
 * source emits is defined here or by a plugin, and that no code is defined twice.
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
  ['MG0014', 'info', 'Not a resource, skipped', 'A document (often a whole file, such as a `jwks.json` kept next to the config) has none of `apiVersion`, `kind`, `metadata` and `spec`, so it is not a Kubernetes-shaped resource. It is skipped; the rest of the directory loads as usual.'],
  ['MG0015', 'info', 'Not a mesh resource, skipped', 'The document is a Kubernetes resource of an API group meshgate does not read (a `apps/v1` Deployment, a `v1` Service or ConfigMap, a cert-manager Certificate, …). It is skipped, so one directory can hold an application\'s manifests and its mesh resources together.'],
  ['MG0016', 'warning', 'Istio kind not supported', 'The kind is an Istio kind meshgate does not implement (EnvoyFilter, WasmPlugin, Telemetry, ProxyConfig, WorkloadGroup). The resource is skipped and has no effect; the rest of the config is used, so configs written for an Istio cluster can be kept as they are.'],
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
  ['MG0203', 'warning', 'Undefined subset', 'A route names a subset that no DestinationRule for that host defines. As in Istio, the config still loads and reloads: requests that pick this destination are answered 503 with response flag NC (no upstream cluster) until a DestinationRule defines the subset, and every other route is unaffected. `meshgate validate --strict` fails on it.'],
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
  ['MG0219', 'warning', 'Duplicate ServiceEntry host', 'Two ServiceEntries visible to the same proxy define the same host. As in Istio, the oldest (first in file order) defines it; the later definition of that host (its ports, resolution and endpoints) is ignored. Keep each host in one ServiceEntry.'],
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
  ['MG0316', 'warning', 'Host without its port form', 'A DENY (or AUDIT) policy lists a host in `hosts`, or an ALLOW policy lists one in `notHosts`, without its `:port` form. `hosts` compares the Host header as sent, so `Host: example.com:443` (or `:80`) is not `example.com` and walks around the rule. Add `"example.com:*"` next to `example.com`, as Istio\'s security best practices advise.'],
  ['MG0317', 'warning', 'Exact path only', 'A DENY (or AUDIT) policy lists an exact path in `paths`, or an ALLOW policy one in `notPaths`, with no prefix form covering what lies under it: `/admin` does not match `/admin/` nor `/admin/users`. Add `/admin/*` (or use a prefix such as `/admin*`) unless only that one path is meant.'],
  ['MG0318', 'warning', 'HTTP-only field on a TCP port', 'The policy selects a workload with a TCP port (a Sidecar `ingress[]` port of protocol TCP, TLS, MONGO, REDIS or MYSQL) and a rule uses a field only HTTP has (`methods`, `paths`, `hosts`, `requestPrincipals`, their `not…` forms, `request.*` conditions). On TCP, Istio drops an ALLOW rule with such a field (it never matches, so connections are denied), and drops only the field from a DENY rule (the rest matches more: with nothing else it denies every connection). Scope the rule with `ports` to the HTTP ports, or write the TCP rule without HTTP fields.'],
  ['MG0401', 'error', 'TLS settings missing', 'HTTPS and TLS servers need a `tls` block (mode and certificates).'],
  ['MG0402', 'error', 'TLS settings inconsistent', 'The `tls` fields do not fit the mode: SIMPLE/MUTUAL need `serverCertificate`+`privateKey` or a credential; MUTUAL/OPTIONAL_MUTUAL need client CA certificates; ISTIO_MUTUAL forbids certificate fields; file paths and credentials are mutually exclusive; `minProtocolVersion` must not be above `maxProtocolVersion`.'],
  ['MG0403', 'error', 'TLS on plaintext server', 'Only HTTPS and TLS servers may carry TLS settings; a plain HTTP server may only set `tls.httpsRedirect`.'],
  ['MG0404', 'error', 'Invalid server', 'A Gateway server has an unknown protocol, an invalid host entry (`[namespace/]dnsName`), or a name used by another server.'],
  ['MG0405', 'error', 'Port conflict', 'Two servers on the same port and bind address use incompatible protocols, or plaintext servers on one port disagree.'],
  ['MG0406', 'error', 'Credential not found', 'A Gateway server\'s `credentialName` (or first `credentialNames` entry) names no credential in MeshConfig `credentialsDirectory`. meshgate looks for `<name>/tls.crt` and `tls.key` (a Kubernetes secret mounted as a directory), then for `<name>.crt` and `<name>.key`. The server cannot be served, so the config is rejected.'],
  ['MG0407', 'warning', 'Server not supported yet', 'The Gateway server uses something Istio supports but meshgate does not serve yet: a TLS mode other than SIMPLE, MUTUAL, OPTIONAL_MUTUAL and PASSTHROUGH (AUTO_PASSTHROUGH, ISTIO_MUTUAL), a protocol meshgate does not know, or a `unix://` bind. That server opens no listener; the rest of the config is used.'],
  ['MG0408', 'warning', 'Cipher suite ignored', 'A `cipherSuites` entry is not a suite this Node.js/OpenSSL build knows, or repeats an earlier entry. As in Istio, the entry is ignored and the others apply (they restrict TLS 1.2 and below; TLS 1.3 suites are always offered). When no entry is left, meshgate\'s default applies: Mozilla\'s intermediate profile (ECDHE with AES-GCM or ChaCha20-Poly1305; no CBC suite).'],
  ['MG0409', 'warning', 'TLS setting not applied', 'The server is served, but one of its TLS settings is not applied yet: `caCrl` (client certificates are not checked for revocation), or more than one entry in `credentialNames` or `tlsCertificates` (only the first certificate is served, where Envoy would choose by key type).'],
  ['MG0701', 'warning', 'Route rule dropped', 'An HTTP rule of a VirtualService cannot be turned into a route and is left out, as Envoy rejects such a route; the other rules keep routing. The cause is a `delegate` rule (delegation is not supported yet) or a problem validation reports with its own code first (MG0204, MG0205, MG0207, MG0208), which normally rejects the config before routes are built.'],
  ['MG0702', 'warning', 'Host already routed on sidecars', 'Sidecars do not merge VirtualServices: each host is served by the oldest (first in file order) VirtualService bound to `mesh` that lists it. A later one is ignored for that host and still serves its other hosts. Gateways, unlike sidecars, merge the rules of every VirtualService of a host.'],
  ['MG0901', 'error', 'Workload not found', 'In sidecar mode `--workload NAME` (or `<namespace>/<name>`) must name a WorkloadEntry of the config: it gives the proxy its namespace, labels and service account. No WorkloadEntry has that name.'],
  ['MG0902', 'error', 'Ambiguous workload', 'WorkloadEntries in several namespaces have the name given to `--workload`; write `--workload <namespace>/<name>`.'],
  ['MG0903', 'error', 'Workload required', 'Sidecar mode needs `--workload NAME`, the WorkloadEntry this proxy runs beside; without it the proxy has no identity, labels or policies.'],
  ['MG0904', 'error', 'No Sidecar selects the workload', 'No Sidecar resource in the workload\'s namespace or the root namespace selects the workload (by `workloadSelector`, or by having none). The Sidecar defines the inbound port, the local app (`ingress[].defaultEndpoint`) and the outbound listener, so the proxy cannot start without one.'],
  ['MG0905', 'error', 'Invalid defaultEndpoint', 'Each `ingress[].defaultEndpoint` of the selected Sidecar must be `<host>:<port>` of the local app (an IPv6 address in brackets, port 1 to 65535); `0.0.0.0` means 127.0.0.1. Istio\'s `unix://` endpoints are not supported.'],
  ['MG1301', 'warning', 'Component type not served', 'No building block of this sidecar serves the Component\'s `spec.type` (meshgate serves `state.redis`, `state.in-memory` and the `secretstores.local.env`/`secretstores.local.file` secret stores, plus the types of the other enabled building blocks). The Component is left out of the Dapr API and `/v1.0/metadata`; the rest of the config is used.'],
  ['MG1302', 'error', 'Invalid component metadata', 'A Component metadata field is missing, repeated, malformed (e.g. a non-numeric `redisDB` or `ttlInSeconds`, an unknown `keyPrefix` form), or sets more than one of `value`, `secretKeyRef` and `envRef`.'],
  ['MG1303', 'error', 'Secret not found', 'A `secretKeyRef` or `envRef` of a Component this sidecar loads cannot be resolved: the environment variable is unset, the secrets file has no such key, or the secret directory `<credentialsDirectory>/<name>/<key>` is missing. The sidecar would otherwise start with an empty password.'],
  ['MG1304', 'error', 'Unknown secret store', 'A Component\'s `auth.secretStore` names no `secretstores.local.env` or `secretstores.local.file` Component in its namespace.'],
  ['MG1305', 'warning', 'Subscription without pub/sub', 'A Subscription names a `pubsubname` that no pub/sub Component of its namespace defines; it delivers nothing until one does.'],
  ['MG1306', 'error', 'Invalid app id', 'The `dapr.io/app-id` annotation of the WorkloadEntry (the sidecar\'s Dapr app id) must be a DNS-1123 label: no `.` (it separates the namespace in `appId.namespace`) and no `||` (the state key separator).'],
  ['MG1320', 'error', 'Unsupported routing rule', 'A Subscription routing rule\'s `match` is CEL; meshgate evaluates comparisons `event.<field> == <literal>` and `!=` (string, number or boolean literals) joined by `&&` and `||`, without parentheses. A rule outside that subset would route events by a guess, so the Subscription is refused.'],
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

/**
 * A diagnostic of a plugin-declared definition (`MeshPlugin.diagnostics`); the core uses `makeDiagnostic`.
 * The severity always comes from the definition, so one code never means an error here and a warning there.
 */
export function diagnosticOf(definition: DiagnosticDefinition, message: string, position: SourcePosition, subject: DiagnosticSubject = {}): Diagnostic {
  return { code: definition.code, severity: definition.severity, message, position, ...subject };
}

export function makeDiagnostic(code: DiagnosticCode, message: string, position: SourcePosition, subject: DiagnosticSubject = {}): Diagnostic {
  // DiagnosticCode is derived from the same table as DIAGNOSTICS, so the lookup cannot miss.
  return diagnosticOf(DIAGNOSTICS.get(code) as DiagnosticDefinition, message, position, subject);
}

/** Every definition: the core's and the given plugins' (`PIPELINE_DIAGNOSTICS`), ordered by code. */
export function diagnosticCatalogue(pluginDefinitions: readonly DiagnosticDefinition[] = []): DiagnosticDefinition[] {
  return [...DIAGNOSTICS.values(), ...pluginDefinitions].sort((a, b) => a.code.localeCompare(b.code));
}

/** Renders the catalogue, plugin codes included, as docs/diagnostics.md. */
export function renderDiagnosticsMarkdown(pluginDefinitions: readonly DiagnosticDefinition[] = []): string {
  const catalogue = diagnosticCatalogue(pluginDefinitions);
  const lines = [
    '# Config diagnostics',
    '',
    '<!-- Generated from gateway/config/diagnostics.ts and the plugins\' `diagnostics` by renderDiagnosticsMarkdown(); test/config/generated-files.test.ts keeps it in sync. -->',
    '',
    '`meshgate validate` and the loader report problems as `file:line:col CODE kind namespace/name: message`.',
    'Errors reject the resource (and a snapshot containing it); warnings are reported but the config is used.',
    '',
    '| Code | Severity | Title |',
    '|---|---|---|',
    ...catalogue.map((d) => `| [${d.code}](#${d.code.toLowerCase()}) | ${d.severity} | ${d.title} |`),
    '',
  ];
  for (const d of catalogue) {
    lines.push(`## ${d.code}`, '', `**${d.title}** (${d.severity})`, '', d.explanation, '');
  }
  return lines.join('\n');
}
