/**
 * Builds the header set sent upstream and cleans the one sent back (docs/normalisation.md#forwarded-headers).
 * Hop-by-hop headers never cross the proxy (including any the client names in `Connection`), and at
 * the edge the client may not smuggle in headers the mesh itself uses for trust decisions.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Headers only the mesh may set; clients at the edge get them removed (Envoy's external-request sanitising). */
const EDGE_SANITISED = new Set([
  'x-forwarded-client-cert',
  'x-envoy-external-address',
  'x-envoy-internal',
  'x-envoy-original-path',
  'x-envoy-attempt-count',
  'x-envoy-peer-metadata',
  'x-envoy-peer-metadata-id',
]);

function connectionListed(value: string | string[] | undefined): Set<string> | null {
  // What nearly every peer sends names no other header.
  if (value === undefined || value === 'keep-alive' || value === 'close') return null;
  const joined = Array.isArray(value) ? value.join(',') : value;
  const names = new Set<string>();
  for (const part of joined.split(',')) {
    const name = part.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') names.add(name);
  }
  return names.size === 0 ? null : names;
}

function isSanitisedAtEdge(name: string): boolean {
  return EDGE_SANITISED.has(name) || name.startsWith('x-envoy-') || name.startsWith('x-meshgate-');
}

/**
 * Copies the client's headers minus hop-by-hop ones and HTTP/2 pseudo-headers; at the edge also minus
 * the mesh's own control headers. `host` is left to the caller (authority rewrite).
 */
export function copyRequestHeaders(incoming: IncomingHttpHeaders, atEdge: boolean): OutgoingHttpHeaders {
  const listed = connectionListed(incoming.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in incoming) {
    const value = incoming[name];
    // Undefined: removed by an earlier step (authn clears the verified token and forged claim headers).
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */ || name === 'host' || HOP_BY_HOP.has(name)) continue;
    if (listed !== null && listed.has(name)) continue;
    if (atEdge && isSanitisedAtEdge(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Removes hop-by-hop headers from an upstream response before it is relayed. */
export function cleanResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (listed !== null && listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Appends the peer to X-Forwarded-For, as a gateway with `use_remote_address` does. */
export function appendForwardedFor(existing: string | string[] | undefined, peerIp: string): string {
  if (existing === undefined || existing === '') return peerIp;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${peerIp}`;
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** A client's request id is kept when it is a plausible token, so callers can correlate; otherwise a new one. */
export function acceptRequestId(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && REQUEST_ID_PATTERN.test(value) ? value : null;
}
