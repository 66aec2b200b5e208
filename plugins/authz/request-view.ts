/**
 * What AuthorizationPolicy matchers read. The same view is built from a live request (the plugin) and
 * from a described request (`explain`), so both run the very same compiled matchers.
 */
import type { FastifyRequest } from 'fastify';
import type { DescribedRequest } from '../../gateway/pipeline/capabilities.js';
import type { ConnectionAttributes, JwtAuthResult, PeerIdentity } from '../../gateway/pipeline/types.js';

export interface AuthzRequest {
  readonly method: string;
  /** Host/:authority as received, lower-cased, port included if sent. */
  readonly authority: string;
  /** Normalised path without query. */
  readonly path: string;
  readonly sourceIp: string;
  readonly remoteIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  readonly sni: string;
  readonly peer: PeerIdentity | null;
  readonly auth: JwtAuthResult | null;
  /** Value of a header (lower-case name); repeated headers joined with ',' as Envoy does. */
  header(name: string): string | undefined;
}

/**
 * `request.headers` is the truth: earlier steps strip forged headers and write claim headers there,
 * and the core's request guard has already folded repeated headers with `,` (Envoy's join) in that
 * very object, so the value matched here is byte for byte the value forwarded.
 */
function headerValue(request: FastifyRequest, name: string): string | undefined {
  const current = request.headers[name];
  if (current === undefined) return undefined;
  return Array.isArray(current) ? current.join(',') : current;
}

export function authzRequestFrom(request: FastifyRequest): AuthzRequest {
  const attrs = request.mesh.attrs;
  return {
    method: attrs.method,
    authority: attrs.authority,
    path: attrs.path,
    sourceIp: attrs.sourceIp,
    remoteIp: attrs.remoteIp,
    destinationIp: attrs.destinationIp,
    destinationPort: attrs.destinationPort,
    sni: attrs.sni,
    peer: attrs.peer,
    auth: request.mesh.auth,
    header: (name) => headerValue(request, name),
  };
}

const NO_HEADER = (): undefined => undefined;

/** A TCP connection: no method, authority, path, headers or token (the HTTP-only fields were dropped at load time). */
export function authzConnectionView(connection: ConnectionAttributes): AuthzRequest {
  return {
    method: '',
    authority: '',
    path: '',
    sourceIp: connection.sourceIp,
    remoteIp: connection.sourceIp,
    destinationIp: connection.destinationIp,
    destinationPort: connection.destinationPort,
    sni: connection.sni,
    peer: connection.peer,
    auth: null,
    header: NO_HEADER,
  };
}

function peerFromPrincipal(text: string): PeerIdentity {
  const principal = text.startsWith('spiffe://') ? text.slice('spiffe://'.length) : text;
  const match = /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal);
  return {
    principal,
    trustDomain: match?.[1] ?? '',
    namespace: match?.[2] ?? '',
    serviceAccount: match?.[3] ?? '',
    uri: `spiffe://${principal}`,
    certHash: '',
  };
}

export function authzRequestFromDescription(described: DescribedRequest): AuthzRequest {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(described.headers ?? {})) {
    headers.set(name.toLowerCase(), typeof value === 'string' ? value : value.join(','));
  }
  const claims = described.jwtClaims;
  const iss = typeof claims?.['iss'] === 'string' ? claims['iss'] : '';
  const sub = typeof claims?.['sub'] === 'string' ? claims['sub'] : '';
  return {
    method: described.method ?? 'GET',
    authority: (described.host ?? '').toLowerCase(),
    path: described.path ?? '/',
    sourceIp: described.sourceIp ?? '',
    remoteIp: described.remoteIp ?? described.sourceIp ?? '',
    destinationIp: described.destinationIp ?? '',
    destinationPort: described.destinationPort ?? 0,
    sni: described.sni ?? '',
    peer: described.peerPrincipal === undefined ? null : peerFromPrincipal(described.peerPrincipal),
    auth: claims === undefined ? null : { principal: `${iss}/${sub}`, claims },
    header: (name) => headers.get(name),
  };
}
