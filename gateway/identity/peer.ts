/**
 * The mesh identity of a TLS connection's peer, parsed once per connection (keep-alive makes this a
 * per-connection cost, not a per-request one). Plaintext connections have no identity.
 *
 * Parsing a certificate's SPIFFE ID costs ~1 ms of CPU, and a mesh peer opens many connections
 * with the same certificate, so results are also cached per certificate (SHA-256 fingerprint) and
 * trust domain. A cached result is used only inside the certificate's validity window; outside it the
 * full check runs again and reports why the certificate is refused.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import { peerIdentityFromCertificate } from './spiffe.js';
import type { PeerIdentityResult } from './spiffe.js';
import type { PeerIdentity } from '../pipeline/types.js';

/** Distinct peer certificates remembered; past it the cache starts over (rotation makes old entries useless anyway). */
const MAX_CACHED_CERTIFICATES = 1024;

interface CachedResult {
  readonly result: PeerIdentityResult;
  readonly validFromMs: number;
  readonly validToMs: number;
}

const byCertificate = new Map<string, CachedResult>();
const identities = new WeakMap<Socket, PeerIdentity | null>();

/** What the cache needs of a peer's leaf certificate; an X509Certificate is one. */
export interface PresentedCertificate {
  readonly fingerprint256: string;
  readonly validFrom: string;
  readonly validTo: string;
  readonly raw: Buffer;
}

/**
 * Whether this process's OpenSSL copies a certificate cheaply (3.5, node 24: ~10 µs) or re-parses it
 * in full (3.0, node 20 and 22: ~0.4 ms), which decides how the peer's leaf is read on a full handshake.
 */
const CHEAP_CERTIFICATE_COPY = ((): boolean => {
  const [major = 0, minor = 0] = (process.versions.openssl ?? '').split('.').map((part) => Number.parseInt(part, 10));
  return major > 3 || (major === 3 && minor >= 5);
})();

/**
 * The leaf certificate a TLS peer presented (on a resumed session, the one its full handshake verified).
 *
 * `getPeerX509Certificate()` wraps the leaf OpenSSL holds and computes only what is asked of it (the
 * cache below needs the SHA-256 fingerprint): ~20–40 µs, where `getPeerCertificate(false)` builds node's
 * whole certificate object (names, SANs, key details, three fingerprints): ~130–200 µs under OpenSSL 3.5
 * and ~400 µs under 3.0, measured per connection on an mTLS server. But it also copies the rest of the
 * peer's chain, which a full handshake has whenever the client sent more than its leaf (Istio-style
 * SVID chains are leaf + root; a resumed session carries the leaf only): under OpenSSL 3.0 that copy
 * is a full re-parse (~0.9 ms in all), so there a full handshake reads the leaf with
 * `getPeerCertificate(false)` instead.
 */
export function presentedCertificate(socket: TLSSocket): PresentedCertificate | undefined {
  if (CHEAP_CERTIFICATE_COPY || socket.isSessionReused()) return socket.getPeerX509Certificate();
  const peer = socket.getPeerCertificate(false);
  // node answers {} (typed as a certificate) when there is none.
  if ((peer.raw as Buffer | undefined) === undefined) return undefined;
  return { fingerprint256: peer.fingerprint256, validFrom: peer.valid_from, validTo: peer.valid_to, raw: peer.raw };
}

/**
 * `peerIdentityFromCertificate` for a peer that connected to us (so its certificate needs clientAuth),
 * remembered per certificate and trust domain.
 */
export function checkPeerCertificate(cert: PresentedCertificate, trustDomain: string): PeerIdentityResult {
  const key = `${trustDomain} ${cert.fingerprint256}`;
  const now = Date.now();
  const cached = byCertificate.get(key);
  if (cached !== undefined && now >= cached.validFromMs && now <= cached.validToMs) return cached.result;
  const result = peerIdentityFromCertificate(cert instanceof X509Certificate ? cert : new X509Certificate(cert.raw), trustDomain, new Date(now), 'client');
  if (byCertificate.size >= MAX_CACHED_CERTIFICATES) byCertificate.clear();
  byCertificate.set(key, { result, validFromMs: Date.parse(cert.validFrom), validToMs: Date.parse(cert.validTo) });
  return result;
}

/** Records the identity already established while accepting the connection, so requests need not check again. */
export function rememberPeerIdentity(socket: Socket, identity: PeerIdentity): void {
  identities.set(socket, identity);
}

export function peerIdentityOf(socket: Socket, trustDomain: string): PeerIdentity | null {
  const cached = identities.get(socket);
  if (cached !== undefined) return cached;
  let identity: PeerIdentity | null = null;
  if (socket instanceof TLSSocket && socket.authorized) {
    const cert = presentedCertificate(socket);
    if (cert !== undefined) {
      const result = checkPeerCertificate(cert, trustDomain);
      if (result.ok) identity = result.identity;
    }
  }
  identities.set(socket, identity);
  return identity;
}

/**
 * What OpenSSL says of a connection whose first bytes are not a TLS record: only STRICT ports hand a
 * connection to TLS unread, so on an inbound port these mean plaintext under STRICT.
 */
const NOT_TLS_CODES: ReadonlySet<string> = new Set(['ERR_SSL_HTTP_REQUEST', 'ERR_SSL_WRONG_VERSION_NUMBER']);

/**
 * The `tlsClientError` handler of an inbound mTLS server. A client certificate the TLS stack rejected
 * is a refusal (warn, with why); a client that closed before finishing its handshake (a port probe, a
 * caller giving up) is not, and a warning per such connection costs more than the handshake did.
 */
export function inboundHandshakeErrorLogger(logger: FastifyBaseLogger): (error: Error, socket: TLSSocket) => void {
  return (error, socket) => {
    const rejected = socket.authorizationError;
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && NOT_TLS_CODES.has(code)) {
      logger.warn({ peer: socket.remoteAddress, reason: code }, 'plaintext connection refused: PeerAuthentication mode is STRICT');
    } else if (rejected !== undefined && rejected !== null) {
      logger.warn({ reason: String(rejected), peer: socket.remoteAddress }, 'inbound mTLS handshake refused');
    } else if (code === 'ECONNRESET') {
      logger.debug({ reason: error.message, peer: socket.remoteAddress }, 'inbound mTLS client left during the handshake');
    } else {
      logger.warn({ reason: error.message, peer: socket.remoteAddress }, 'inbound mTLS handshake refused');
    }
  };
}
