/** PEM bundles hold several certificates; node's X509Certificate parses exactly one. */
const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

export function splitPemCertificates(pem: string): string[] {
  return pem.match(CERTIFICATE_BLOCK) ?? [];
}
