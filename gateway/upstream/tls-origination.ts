/**
 * Upstream TLS origination (docs/routing.md#tls-to-upstreams). Builds, once per cluster endpoint, the undici
 * connector that opens plain TCP or TLS: SIMPLE / MUTUAL from PEM files (one SecureContext reused
 * for every connection, TLS session resumption by undici's session cache), ISTIO_MUTUAL from the
 * proxy's workload identity. Errors raised while connecting are tagged so that the forwarder can tell
 * a connect failure (retried by `connect-failure`, flag UF) from a reset after the request was sent.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { PeerCertificate, SecureContext } from 'node:tls';
import type { ResolvedTls } from './policy.js';
import { buildConnector } from './undici-core.js';
import type { Connector } from './undici-core.js';

/** The proxy's mesh identity, provided by the identity module (gateway/identity/). */
export interface MeshIdentityProvider {
  /** Our workload certificate + key, trusting the mesh CA. May return a new object after rotation. */
  secureContext(): SecureContext;
  /** The peer's SPIFFE URI when its certificate is a valid mesh server certificate, else why not. */
  verifyPeer(cert: PeerCertificate): PeerVerdict;
}

export type PeerVerdict = { readonly ok: true; readonly uri: string } | { readonly ok: false; readonly reason: string };

export interface TlsOriginationInput {
  readonly tls: ResolvedTls;
  /** SANs to accept when the DR lists none (ServiceEntry `subjectAltNames`). */
  readonly serviceSubjectAltNames: readonly string[];
  /** SPIFFE URIs accepted for ISTIO_MUTUAL (secure naming); empty = any mesh identity. */
  readonly expectedIdentities: readonly string[];
  /** SNI for ISTIO_MUTUAL (Istio uses the cluster name, `outbound_.<port>_.<subset>_.<host>`). */
  readonly istioSni: string;
  readonly identity: MeshIdentityProvider | null;
  readonly connectTimeoutMs: number;
  /** Offer HTTP/2 by ALPN on TLS connections (HTTP/2 clusters). */
  readonly http2?: boolean;
}

const CONNECT_FAILURE = Symbol('meshgate.connectFailure');

export function isConnectFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[CONNECT_FAILURE] === true;
}

function markConnectFailure(error: Error): Error {
  (error as unknown as Record<symbol, unknown>)[CONNECT_FAILURE] = true;
  return error;
}

function certificateSans(cert: PeerCertificate): string[] {
  const names: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(', ')) {
    const colon = part.indexOf(':');
    if (colon > 0) names.push(part.slice(colon + 1));
  }
  return names;
}

function sanChecker(accepted: readonly string[]): (hostname: string, cert: PeerCertificate) => Error | undefined {
  const allowed = new Set(accepted);
  return (_hostname, cert) =>
    certificateSans(cert).some((san) => allowed.has(san))
      ? undefined
      : new Error(`upstream certificate SANs [${certificateSans(cert).join(', ')}] match none of [${accepted.join(', ')}]`);
}

function fileOrUndefined(path: string): Buffer | undefined {
  return path === '' ? undefined : readFileSync(path);
}

function withConnectFailureTag(connect: Connector, servername: string): Connector {
  return (options, callback) => {
    const effective = servername === '' ? options : { ...options, servername };
    connect(effective, (...args) => {
      if (args[0] !== null) markConnectFailure(args[0]);
      callback(...args);
    });
  };
}

/** Server certificates remembered per endpoint (normally one; a few across rotations). */
const MAX_REMEMBERED_PEERS = 16;

/**
 * `verifyPeer` parses the certificate (~1.5 ms of CPU); an endpoint presents the same certificate on
 * every pooled connection, so its verdict is remembered by fingerprint, used only inside the
 * certificate's validity window (the chain itself is verified by TLS on every handshake).
 */
function rememberedPeerVerifier(identity: MeshIdentityProvider): (cert: PeerCertificate) => PeerVerdict {
  const verdicts = new Map<string, { readonly peer: PeerVerdict; readonly validFromMs: number; readonly validToMs: number }>();
  return (cert) => {
    const now = Date.now();
    const known = verdicts.get(cert.fingerprint256);
    if (known !== undefined && now >= known.validFromMs && now <= known.validToMs) return known.peer;
    const peer = identity.verifyPeer(cert);
    if (verdicts.size >= MAX_REMEMBERED_PEERS) verdicts.clear();
    verdicts.set(cert.fingerprint256, { peer, validFromMs: Date.parse(cert.valid_from), validToMs: Date.parse(cert.valid_to) });
    return peer;
  };
}

function istioMutualConnector(input: TlsOriginationInput, identity: MeshIdentityProvider): Connector {
  const expected = new Set(input.expectedIdentities);
  const verifyPeer = rememberedPeerVerifier(identity);
  const checkServerIdentity = (_hostname: string, cert: PeerCertificate): Error | undefined => {
    const verdict = verifyPeer(cert);
    if (!verdict.ok) return new Error(`upstream certificate is not a valid mesh certificate: ${verdict.reason}`);
    const peer = verdict.uri;
    if (expected.size > 0 && !expected.has(peer)) return new Error(`upstream identity ${peer} is not one of [${[...expected].join(', ')}]`);
    return undefined;
  };
  let context: SecureContext | null = null;
  let connect: Connector | null = null;
  // Rebuilt only when the identity module rotates the certificate; sessions are cached per context.
  const current = (): Connector => {
    const latest = identity.secureContext();
    if (connect === null || latest !== context) {
      context = latest;
      connect = buildConnector({ timeout: input.connectTimeoutMs, secureContext: latest, checkServerIdentity, rejectUnauthorized: true, allowH2: input.http2 === true });
    }
    return connect;
  };
  return withConnectFailureTag((options, callback) => current()(options, callback), input.istioSni);
}

/** The connector for one endpoint pool, and whether it speaks TLS. Reads certificate files now, not per request. */
export function buildUpstreamConnector(input: TlsOriginationInput): { connect: Connector; secure: boolean } {
  const settings = input.tls;
  if (settings.mode === 'DISABLE') {
    return { connect: withConnectFailureTag(buildConnector({ timeout: input.connectTimeoutMs }), ''), secure: false };
  }
  if (settings.mode === 'ISTIO_MUTUAL') {
    if (input.identity === null) throw new Error('ISTIO_MUTUAL needs the mesh identity, which this proxy does not have');
    return { connect: istioMutualConnector(input, input.identity), secure: true };
  }
  const secureContext = tls.createSecureContext({
    ca: fileOrUndefined(settings.caCertificates),
    cert: settings.mode === 'MUTUAL' ? fileOrUndefined(settings.clientCertificate) : undefined,
    key: settings.mode === 'MUTUAL' ? fileOrUndefined(settings.privateKey) : undefined,
  });
  const sans = settings.subjectAltNames.length > 0 ? settings.subjectAltNames : input.serviceSubjectAltNames;
  const verification = settings.insecureSkipVerify
    ? { rejectUnauthorized: false, checkServerIdentity: (): undefined => undefined }
    : sans.length > 0
      ? { rejectUnauthorized: true, checkServerIdentity: sanChecker(sans) }
      : { rejectUnauthorized: true };
  const connect = buildConnector({ timeout: input.connectTimeoutMs, secureContext, allowH2: input.http2 === true, ...verification });
  return { connect: withConnectFailureTag(connect, settings.sni), secure: true };
}
