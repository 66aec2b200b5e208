/**
 * A small certificate authority for the mesh: a self-signed root and the leaf certificates it issues
 * (SPIFFE X.509 SVIDs for workloads, plain DNS-named server certificates for HTTPS). Keys are EC P-256
 * (cheapest handshakes on Node, performance-baseline §2.3); everything is WebCrypto, no openssl CLI.
 */
import { createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';
import { spiffeUri, isValidTrustDomain } from './spiffe.js';
import { x509, EC_P256_SHA256 } from './x509.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Certificate = InstanceType<typeof x509.X509Certificate>;
type SigningAlgorithm = typeof EC_P256_SHA256 | { readonly name: 'RSASSA-PKCS1-v1_5'; readonly hash: 'SHA-256' };

export interface KeyAndCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssuedCertificate extends KeyAndCertificate {
  /** The leaf followed by the issuing CA certificate: what a server or client presents. */
  readonly chainPem: string;
}

/** Backdating absorbs clock skew between the issuer and the peers that check the certificate. */
const CLOCK_SKEW_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

async function generateEcKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256_SHA256, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Explicit start: the validity counts from it. Default: backdated for clock skew, but the validity still counts from now. */
function validityWindow(notBefore: Date | undefined, validityMs: number): { notBefore: Date; notAfter: Date } {
  if (notBefore !== undefined) return { notBefore, notAfter: new Date(notBefore.getTime() + validityMs) };
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + validityMs) };
}

function signingAlgorithmFor(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'ec') {
    if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('CA EC key must be on curve P-256');
    return EC_P256_SHA256;
  }
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new Error(`unsupported CA key type "${key.asymmetricKeyType ?? 'unknown'}" (use EC P-256 or RSA)`);
}

interface LoadedCa {
  readonly certificate: Certificate;
  readonly signingKey: CryptoKey;
  readonly algorithm: SigningAlgorithm;
}

/** Accepts PKCS#8, SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys, as found in existing Istio CA files. */
async function loadCa(ca: KeyAndCertificate): Promise<LoadedCa> {
  const certificate = new x509.X509Certificate(ca.certPem);
  const basicConstraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (basicConstraints === null || !basicConstraints.ca) throw new Error('issuer certificate is not a CA (basicConstraints CA:TRUE missing)');
  const keyObject = createPrivateKey(ca.keyPem);
  const algorithm = signingAlgorithmFor(keyObject);
  const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
  return { certificate, signingKey, algorithm };
}

export interface RootCaOptions {
  readonly trustDomain: string;
  readonly validityDays?: number;
  readonly notBefore?: Date;
}

export const DEFAULT_ROOT_VALIDITY_DAYS = 3650;

export async function createRootCa(options: RootCaOptions): Promise<KeyAndCertificate> {
  if (!isValidTrustDomain(options.trustDomain)) throw new Error(`invalid trust domain "${options.trustDomain}"`);
  const keys = await generateEcKeyPair();
  const { notBefore, notAfter } = validityWindow(options.notBefore, (options.validityDays ?? DEFAULT_ROOT_VALIDITY_DAYS) * DAY_MS);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: `O=${options.trustDomain}, CN=meshgate root CA`,
    keys,
    notBefore,
    notAfter,
    signingAlgorithm: EC_P256_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificate.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

export interface CertificateRequest {
  readonly ca: KeyAndCertificate;
  /** Empty for SPIFFE SVIDs (identity lives in the URI SAN, which is then marked critical per RFC 5280). */
  readonly commonName?: string;
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extendedKeyUsages: readonly string[];
}

/** Low-level issuance; prefer `issueWorkloadCertificate` / `issueServerCertificate`. Tests use it to craft invalid certificates. */
export async function issueCertificate(request: CertificateRequest): Promise<IssuedCertificate> {
  const issuer = await loadCa(request.ca);
  const keys = await generateEcKeyPair();
  const names = [
    ...(request.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const hasSubject = request.commonName !== undefined && request.commonName !== '';
  const extensions: InstanceType<typeof x509.Extension>[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([...request.extendedKeyUsages], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.certificate.publicKey),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, !hasSubject));
  const certificate = await x509.X509CertificateGenerator.create({
    subject: hasSubject ? `CN=${request.commonName}` : '',
    issuer: issuer.certificate.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.signingKey,
    signingAlgorithm: issuer.algorithm,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    extensions,
  });
  const certPem = certificate.toString('pem');
  return { certPem, keyPem: await privateKeyPem(keys.privateKey), chainPem: `${certPem}\n${issuer.certificate.toString('pem')}\n` };
}

export interface WorkloadCertificateRequest {
  readonly ca: KeyAndCertificate;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly validityHours: number;
  readonly dnsNames?: readonly string[];
  readonly notBefore?: Date;
}

/** A SPIFFE X.509 SVID: exactly one URI SAN, usable as both TLS server and client certificate. */
export async function issueWorkloadCertificate(request: WorkloadCertificateRequest): Promise<IssuedCertificate> {
  return issueCertificate({
    ca: request.ca,
    uris: [spiffeUri(request.trustDomain, request.namespace, request.serviceAccount)],
    dnsNames: request.dnsNames ?? [],
    ...validityWindow(request.notBefore, request.validityHours * HOUR_MS),
    extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  });
}

export interface ServerCertificateRequest {
  readonly ca: KeyAndCertificate;
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validityDays?: number;
  readonly notBefore?: Date;
}

export const DEFAULT_SERVER_VALIDITY_DAYS = 90;

/** A plain HTTPS server certificate (DNS/IP SANs, serverAuth), e.g. for an ingress Gateway `SIMPLE` server. */
export async function issueServerCertificate(request: ServerCertificateRequest): Promise<IssuedCertificate> {
  if (request.dnsNames.length === 0 && (request.ipAddresses ?? []).length === 0) throw new Error('a server certificate needs at least one DNS name or IP address');
  return issueCertificate({
    ca: request.ca,
    commonName: request.dnsNames[0] ?? request.ipAddresses?.[0] ?? '',
    dnsNames: request.dnsNames,
    ipAddresses: request.ipAddresses ?? [],
    ...validityWindow(request.notBefore, (request.validityDays ?? DEFAULT_SERVER_VALIDITY_DAYS) * DAY_MS),
    extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth],
  });
}
