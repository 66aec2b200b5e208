/**
 * The mesh identity of a TLS connection's peer, parsed once per connection (keep-alive makes this a
 * per-connection cost, not a per-request one). Plaintext connections have no identity.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { peerIdentityFromCertificate } from '../identity/spiffe.js';
import type { PeerIdentity } from '../pipeline/types.js';

const identities = new WeakMap<Socket, PeerIdentity | null>();

export function peerIdentityOf(socket: Socket, trustDomain: string): PeerIdentity | null {
  const cached = identities.get(socket);
  if (cached !== undefined) return cached;
  let identity: PeerIdentity | null = null;
  if (socket instanceof TLSSocket && socket.authorized) {
    const cert = socket.getPeerX509Certificate();
    if (cert !== undefined) {
      const result = peerIdentityFromCertificate(cert, trustDomain);
      if (result.ok) identity = result.identity;
    }
  }
  identities.set(socket, identity);
  return identity;
}
