/** Istio's protocol selection for a declared port protocol: how a listener port is proxied (docs/tcp.md). */

export type PortKind = 'http' | 'tcp';

/** The app's own TLS: the proxy sees only the ClientHello, so it routes by SNI (Istio treats HTTPS ports as TLS). */
const TLS_PROTOCOLS: ReadonlySet<string> = new Set(['TLS', 'HTTPS']);
const OPAQUE_PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'MONGO', 'REDIS', 'MYSQL', ...TLS_PROTOCOLS]);

/** TCP, TLS, HTTPS, MONGO, REDIS and MYSQL are opaque TCP; anything else, unset included, is HTTP (meshgate does not sniff). */
export function portKind(protocol: string | undefined): PortKind {
  return protocol !== undefined && OPAQUE_PROTOCOLS.has(protocol.toUpperCase()) ? 'tcp' : 'http';
}

/** Whether a port carries the app's own TLS, routed by the ClientHello's SNI. */
export function carriesTls(protocol: string | undefined): boolean {
  return protocol !== undefined && TLS_PROTOCOLS.has(protocol.toUpperCase());
}
