/** Istio's protocol selection for a declared port protocol: how a listener port is proxied (docs/tcp.md). */

export type PortKind = 'http' | 'tcp';

const OPAQUE_PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'TLS', 'MONGO', 'REDIS', 'MYSQL']);

/** TCP, TLS, MONGO, REDIS and MYSQL are opaque TCP; anything else, unset included, is HTTP (meshgate does not sniff). */
export function portKind(protocol: string | undefined): PortKind {
  return protocol !== undefined && OPAQUE_PROTOCOLS.has(protocol.toUpperCase()) ? 'tcp' : 'http';
}

/** GRPC and HTTP2 ports speak HTTP/2 to their endpoints, whatever the client spoke (Istio's protocol selection). */
export function isHttp2Protocol(protocol: string | undefined): boolean {
  const name = protocol?.toUpperCase();
  return name === 'GRPC' || name === 'HTTP2';
}
