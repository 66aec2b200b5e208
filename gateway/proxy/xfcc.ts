/**
 * `x-forwarded-client-cert` as a sidecar's inbound side sets it for the app (docs/normalisation.md#forwarded-headers):
 * `By` is this proxy's identity, `Hash` the SHA-256 of the client certificate, `URI` the client's
 * SPIFFE ID. Whatever the client sent was removed first: the app can trust this header.
 */
import type { PeerIdentity } from '../pipeline/types.js';

export function forwardedClientCert(ownPrincipal: string, peer: PeerIdentity): string {
  return `By=spiffe://${ownPrincipal};Hash=${peer.certHash};Subject="";URI=${peer.uri}`;
}
