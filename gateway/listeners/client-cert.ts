/**
 * The verified client certificate of a TLS connection and the `x-forwarded-client-cert` element built
 * from it (docs/mtls.md#identities). SANs come from the DER extension, never from node's printed string.
 */
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certificateHash } from '../identity/spiffe.js';
import { formatName, parseCertificate } from '../identity/certificate.js';

/** Hex SHA-256 of the DER certificate (XFCC `Hash`). */
export function clientCertHash(cert: X509Certificate): string {
  return certificateHash(cert.raw);
}

/** The client certificate only when the TLS stack verified its chain; null otherwise (no cert, or OPTIONAL/skip-verify failures). */
export function verifiedClientCertificate(socket: TLSSocket): X509Certificate | null {
  if (!socket.authorized) return null;
  return socket.getPeerX509Certificate() ?? null;
}

export interface CertificateNames {
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly emails: readonly string[];
  /** RFC 4514 form. */
  readonly subject: string;
}

export function certificateNames(cert: X509Certificate): CertificateNames {
  const parsed = parseCertificate(cert.raw);
  const names = parsed.subjectAltNames ?? { uris: [], dnsNames: [], ipAddresses: [], emails: [] };
  return { ...names, subject: formatName(parsed.subject) };
}

const NEEDS_QUOTES = /[,;="]/;

function xfccValue(value: string, alwaysQuote = false): string {
  if (!alwaysQuote && !NEEDS_QUOTES.test(value)) return value;
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** One XFCC element: `By=<our URI SAN>;Hash=<hex>;Subject="<dn>";URI=<client URI SAN>;DNS=<name>…` (Cert/Chain are off, as in Istio). */
export function xfccElement(cert: X509Certificate, ownUri: string | null): string {
  const names = certificateNames(cert);
  const parts: string[] = [];
  if (ownUri !== null) parts.push(`By=${xfccValue(ownUri)}`);
  parts.push(`Hash=${clientCertHash(cert)}`, `Subject=${xfccValue(names.subject, true)}`);
  parts.push(`URI=${xfccValue(names.uris[0] ?? '')}`);
  for (const dns of names.dnsNames) parts.push(`DNS=${xfccValue(dns)}`);
  return parts.join(';');
}
