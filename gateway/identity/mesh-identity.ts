/**
 * Connects the proxy's certificate store to the upstream layer: mTLS origination presents our workload
 * certificate, and the server's identity is taken from its parsed certificate (secure naming is then
 * checked by the upstream layer against the identities expected for the service).
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { MeshIdentityProvider, PeerVerdict } from '../upstream/tls-origination.js';
import type { CertificateStore } from './cert-store.js';
import { peerIdentityFromCertificate } from './spiffe.js';

export function meshIdentityProvider(store: CertificateStore, trustDomain: string): MeshIdentityProvider {
  return {
    secureContext: () => store.clientContext(),
    verifyPeer(cert: PeerCertificate): PeerVerdict {
      if (cert.raw === undefined) return { ok: false, reason: 'no certificate' };
      // We connected to this peer: it is a server and needs serverAuth.
      const result = peerIdentityFromCertificate(new X509Certificate(cert.raw), trustDomain, new Date(), 'server');
      return result.ok ? { ok: true, uri: result.identity.uri } : result;
    },
  };
}
