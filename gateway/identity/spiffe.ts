/**
 * SPIFFE identities as Istio uses them: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`,
 * carried as the ONLY URI SAN of an X.509 SVID. The SAN is read from the DER extension, never from
 * node's printed `subjectAltName` string, where a crafted value containing `, URI:` is ambiguous.
 */
import { createHash, type X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { PeerIdentity } from '../pipeline/types.js';
import { OID, parseCertificate, type ParsedCertificate } from './certificate.js';

export interface SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Canonical `spiffe://…` form. */
  readonly uri: string;
}

/**
 * What the peer does in the connection, hence the extendedKeyUsage it needs (RFC 5280 §4.2.1.12):
 * `client` (we accepted its connection), `server` (we connected to it), `workload` (this proxy's own
 * certificate, which serves and connects: both).
 */
export type CertificateRole = 'client' | 'server' | 'workload';

export type SpiffeParseResult = { readonly ok: true; readonly id: SpiffeId } | { readonly ok: false; readonly reason: string };
export type PeerIdentityResult = { readonly ok: true; readonly identity: PeerIdentity } | { readonly ok: false; readonly reason: string };

const SPIFFE_SCHEME = 'spiffe://';
// SPIFFE-ID spec §2.1/§2.2: trust domain is lower-case [a-z0-9._-]; path segments are [A-Za-z0-9._-], not `.`/`..`.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function isValidTrustDomain(trustDomain: string): boolean {
  return TRUST_DOMAIN.test(trustDomain);
}

function isValidSegment(segment: string): boolean {
  return PATH_SEGMENT.test(segment) && segment !== '.' && segment !== '..';
}

/** Builds the SPIFFE URI of a workload; throws on names that cannot form a valid SPIFFE ID. */
export function spiffeUri(trustDomain: string, namespace: string, serviceAccount: string): string {
  if (!isValidTrustDomain(trustDomain)) throw new Error(`invalid trust domain "${trustDomain}": use lower-case letters, digits, '.', '-', '_'`);
  if (!isValidSegment(namespace)) throw new Error(`invalid namespace "${namespace}" for a SPIFFE ID: use letters, digits, '.', '-', '_'`);
  if (!isValidSegment(serviceAccount)) throw new Error(`invalid service account "${serviceAccount}" for a SPIFFE ID: use letters, digits, '.', '-', '_'`);
  return `${SPIFFE_SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function parseSpiffeId(uri: string): SpiffeParseResult {
  if (!uri.startsWith(SPIFFE_SCHEME)) return { ok: false, reason: `URI SAN "${uri}" is not a spiffe:// URI` };
  const rest = uri.slice(SPIFFE_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return { ok: false, reason: `SPIFFE ID "${uri}" has no trust domain or no path` };
  const trustDomain = rest.slice(0, slash);
  if (!isValidTrustDomain(trustDomain)) return { ok: false, reason: `SPIFFE ID "${uri}" has an invalid trust domain` };
  const segments = rest.slice(slash + 1).split('/');
  if (!segments.every(isValidSegment)) return { ok: false, reason: `SPIFFE ID "${uri}" has an invalid path` };
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return { ok: false, reason: `SPIFFE ID "${uri}" is not a workload identity of the form /ns/<namespace>/sa/<serviceAccount>` };
  }
  const namespace = segments[1] as string;
  const serviceAccount = segments[3] as string;
  return { ok: true, id: { trustDomain, namespace, serviceAccount, uri } };
}

/** Istio principal form used by AuthorizationPolicy `principals`: `<td>/ns/<ns>/sa/<sa>`. */
export function principalFromSpiffe(id: SpiffeId): string {
  return `${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Hex SHA-256 of the DER certificate (XFCC `Hash`, `verifyCertificateHash`). */
export function certificateHash(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** All URI SANs of a DER certificate, parsed from the extension. Throws when the certificate cannot be parsed. */
export function uriSubjectAltNames(der: Uint8Array): string[] {
  return [...(parseCertificate(der).subjectAltNames?.uris ?? [])];
}

const KEY_CERT_SIGN_BIT = 5;
const ROLE_USAGES: Readonly<Record<CertificateRole, readonly ('clientAuth' | 'serverAuth')[]>> = {
  client: ['clientAuth'],
  server: ['serverAuth'],
  workload: ['serverAuth', 'clientAuth'],
};

/**
 * Why the certificate cannot be a workload identity in this role, or null. OpenSSL accepts a CA
 * certificate or one without the right purpose as a peer's leaf, so meshgate checks itself (SPIFFE
 * X509-SVID §4.1-4.4: a leaf SVID is no CA, may not sign certificates, and carries the usage of its role).
 * `anyExtendedKeyUsage` is not taken for either purpose, and a certificate with no extendedKeyUsage is refused.
 */
function usageProblem(parsed: ParsedCertificate, role: CertificateRole): string | null {
  if (parsed.isCa === true) return 'certificate is a CA (basicConstraints CA:TRUE), not a workload identity';
  if (parsed.keyUsageBits?.includes(KEY_CERT_SIGN_BIT) === true) return 'certificate may sign certificates (keyUsage keyCertSign), not a workload identity';
  const usages = parsed.extendedKeyUsages;
  for (const usage of ROLE_USAGES[role]) {
    if (usages === null) return `certificate has no extendedKeyUsage; as a ${role} it needs ${usage}`;
    if (!usages.includes(OID[usage])) return `certificate's extendedKeyUsage lacks ${usage}, which a ${role} needs`;
  }
  return null;
}

/**
 * The mesh identity of a peer certificate whose chain the TLS stack already verified. Fails closed:
 * no URI SAN, several URI SANs, a non-SPIFFE URI, a foreign trust domain, a certificate outside its
 * validity window, a CA certificate or one without the usage of its role all yield a reason instead of
 * an identity.
 */
export function peerIdentityFromCertificate(
  cert: NodeX509Certificate,
  expectedTrustDomain: string,
  now: Date = new Date(),
  role: CertificateRole = 'workload',
): PeerIdentityResult {
  let parsed: ParsedCertificate;
  try {
    parsed = parseCertificate(cert.raw);
  } catch (error) {
    return { ok: false, reason: `certificate cannot be parsed: ${(error as Error).message}` };
  }
  if (now < parsed.notBefore) return { ok: false, reason: `certificate is not valid before ${parsed.notBefore.toISOString()}` };
  if (now > parsed.notAfter) return { ok: false, reason: `certificate expired at ${parsed.notAfter.toISOString()}` };
  const misuse = usageProblem(parsed, role);
  if (misuse !== null) return { ok: false, reason: misuse };
  const uris = parsed.subjectAltNames?.uris ?? [];
  if (uris.length === 0) return { ok: false, reason: 'certificate has no URI SAN (not a SPIFFE SVID)' };
  if (uris.length > 1) return { ok: false, reason: `certificate has ${uris.length} URI SANs; a SPIFFE SVID has exactly one` };
  const parsedId = parseSpiffeId(uris[0] as string);
  if (!parsedId.ok) return parsedId;
  const { id } = parsedId;
  if (id.trustDomain !== expectedTrustDomain) {
    return { ok: false, reason: `trust domain "${id.trustDomain}" is not the mesh trust domain "${expectedTrustDomain}"` };
  }
  return {
    ok: true,
    identity: {
      principal: principalFromSpiffe(id),
      trustDomain: id.trustDomain,
      namespace: id.namespace,
      serviceAccount: id.serviceAccount,
      uri: id.uri,
      certHash: certificateHash(cert.raw),
    },
  };
}
