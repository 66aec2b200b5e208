/**
 * A small certificate authority for the mesh: a self-signed root and the leaf certificates it issues
 * (SPIFFE X.509 SVIDs for workloads, plain DNS-named server certificates for HTTPS). Keys are EC P-256
 * (measured the cheapest TLS handshakes on Node: bench/README.md, mtls-handshakes). The TBSCertificate is written with der.ts
 * and signed with node:crypto, no openssl CLI and no ASN.1 library held in memory by every sidecar.
 */
import { X509Certificate, createHash, createPrivateKey, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { isIPv4, isIPv6 } from 'node:net';
import { OID, parseCertificate } from './certificate.js';
import {
  TAG,
  bitString,
  booleanTrue,
  children,
  contents,
  element,
  expectTag,
  explicit,
  namedBits,
  nullValue,
  octetString,
  oid,
  readSingle,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der.js';
import { isValidTrustDomain, spiffeUri } from './spiffe.js';

export interface KeyAndCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssuedCertificate extends KeyAndCertificate {
  /** The leaf followed by the issuing CA certificate: what a server or client presents. */
  readonly chainPem: string;
}

/** Extended key usages (RFC 5280 §4.2.1.12). */
export const EXTENDED_KEY_USAGE = { serverAuth: OID.serverAuth, clientAuth: OID.clientAuth } as const;

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3), for `keyUsageBits`. */
export const KEY_USAGE_BIT = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** Backdating absorbs clock skew between the issuer and the peers that check the certificate. */
const CLOCK_SKEW_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const SERIAL_BYTES = 16;


const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const SHA256_WITH_RSA = sequence(oid('1.2.840.113549.1.1.11'), nullValue());

const generateEcKeyPair = promisify(generateKeyPair);

async function newKeyPair(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return generateEcKeyPair('ec', { namedCurve: 'P-256' });
}

function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

function certificatePem(der: Uint8Array): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return ['-----BEGIN CERTIFICATE-----', ...lines, '-----END CERTIFICATE-----'].join('\n');
}

/** Explicit start: the validity counts from it. Default: backdated for clock skew, but the validity still counts from now. */
function validityWindow(notBefore: Date | undefined, validityMs: number): { notBefore: Date; notAfter: Date } {
  if (notBefore !== undefined) return { notBefore, notAfter: new Date(notBefore.getTime() + validityMs) };
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + validityMs) };
}

function signatureAlgorithmFor(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') {
    if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('CA EC key must be on curve P-256');
    return ECDSA_WITH_SHA256;
  }
  if (key.asymmetricKeyType === 'rsa') return SHA256_WITH_RSA;
  throw new Error(`unsupported CA key type "${key.asymmetricKeyType ?? 'unknown'}" (use EC P-256 or RSA)`);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(subjectPublicKey: Uint8Array): Buffer {
  return createHash('sha1').update(subjectPublicKey).digest();
}

/** The key bytes of a SubjectPublicKeyInfo (SEQUENCE { algorithm, BIT STRING }), without the unused-bits byte. */
function subjectPublicKeyOf(spki: Uint8Array): Uint8Array {
  const bits = expectTag(children(spki, readSingle(spki))[1], TAG.BIT_STRING, 'subjectPublicKey');
  return contents(spki, bits).subarray(1);
}

/** IPv4 dotted quad or IPv6 text (with at most one "::") as the 4 or 16 bytes of an iPAddress GeneralName. */
function ipAddressBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address) || address.includes('.')) throw new Error(`invalid IP address "${address}" for a certificate`);
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2));
  return bytes;
}

interface Extension {
  readonly id: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

function encodeExtension(extension: Extension): Buffer {
  return sequence(oid(extension.id), ...(extension.critical ? [booleanTrue()] : []), octetString(extension.value));
}

function basicConstraints(ca: boolean): Extension {
  return { id: OID.basicConstraints, critical: true, value: ca ? sequence(booleanTrue()) : sequence() };
}

/** `CN=…` only; an empty string is the empty Name (SPIFFE SVIDs). */
function commonNameOnly(commonName: string): Buffer {
  return commonName === '' ? sequence() : sequence(set(sequence(oid(OID.commonName), utf8String(commonName))));
}

interface Signer {
  readonly name: Uint8Array;
  readonly key: KeyObject;
  readonly algorithm: Buffer;
  readonly keyIdentifier: Uint8Array;
}

interface CertificateFields {
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly Extension[];
}

function signCertificate(issuer: Signer, fields: CertificateFields): Buffer {
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(randomBytes(SERIAL_BYTES)),
    issuer.algorithm,
    issuer.name,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    fields.subject,
    fields.spki,
    explicit(3, sequence(...fields.extensions.map(encodeExtension))),
  );
  const signature = sign('sha256', tbs, issuer.key);
  return sequence(tbs, issuer.algorithm, bitString(signature));
}

interface LoadedCa {
  readonly signer: Signer;
  readonly certPem: string;
}

/** Accepts PKCS#8, SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys, as found in existing Istio CA files. */
function loadCa(ca: KeyAndCertificate): LoadedCa {
  const der = new X509Certificate(ca.certPem).raw;
  const certificate = parseCertificate(der);
  if (certificate.isCa !== true) throw new Error('issuer certificate is not a CA (basicConstraints CA:TRUE missing)');
  const key = createPrivateKey(ca.keyPem);
  return {
    signer: {
      name: certificate.subjectDer,
      key,
      algorithm: signatureAlgorithmFor(key),
      // The authority key identifier must name the issuer's own subject key identifier (RFC 5280 §4.2.1.1).
      keyIdentifier: certificate.subjectKeyIdentifier ?? keyIdentifier(certificate.subjectPublicKey),
    },
    certPem: certificatePem(der),
  };
}

export interface RootCaOptions {
  readonly trustDomain: string;
  readonly validityDays?: number;
  readonly notBefore?: Date;
}

export const DEFAULT_ROOT_VALIDITY_DAYS = 3650;

export async function createRootCa(options: RootCaOptions): Promise<KeyAndCertificate> {
  if (!isValidTrustDomain(options.trustDomain)) throw new Error(`invalid trust domain "${options.trustDomain}"`);
  const keys = await newKeyPair();
  const { notBefore, notAfter } = validityWindow(options.notBefore, (options.validityDays ?? DEFAULT_ROOT_VALIDITY_DAYS) * DAY_MS);
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const ownKeyIdentifier = keyIdentifier(subjectPublicKeyOf(spki));
  const name = sequence(
    set(sequence(oid(OID.organization), utf8String(options.trustDomain))),
    set(sequence(oid(OID.commonName), utf8String('meshgate root CA'))),
  );
  const der = signCertificate(
    { name, key: keys.privateKey, algorithm: ECDSA_WITH_SHA256, keyIdentifier: ownKeyIdentifier },
    {
      subject: name,
      spki,
      notBefore,
      notAfter,
      extensions: [
        basicConstraints(true),
        { id: OID.keyUsage, critical: true, value: namedBits([KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign]) },
        { id: OID.subjectKeyIdentifier, critical: false, value: octetString(ownKeyIdentifier) },
      ],
    },
  );
  return { certPem: certificatePem(der), keyPem: privateKeyPem(keys.privateKey) };
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
  /** Empty: no extendedKeyUsage extension at all. */
  readonly extendedKeyUsages: readonly string[];
  /** KeyUsage bits (RFC 5280 §4.2.1.3); default digitalSignature + keyEncipherment. */
  readonly keyUsageBits?: readonly number[];
  /** basicConstraints cA; default false (an end-entity certificate). */
  readonly isCa?: boolean;
  /** authorityInfoAccess id-ad-ocsp URL (RFC 5280 §4.2.2.1): where OCSP responses for this certificate are fetched. */
  readonly ocspResponderUrl?: string;
}


/** Low-level issuance; prefer `issueWorkloadCertificate` / `issueServerCertificate`. Tests use it to craft invalid certificates. */
export async function issueCertificate(request: CertificateRequest): Promise<IssuedCertificate> {
  const issuer = loadCa(request.ca);
  const keys = await newKeyPair();
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  // GeneralName CHOICE (RFC 5280 §4.2.1.6): [6] URI, [2] dNSName, [7] iPAddress, IMPLICIT.
  const names = [
    ...(request.uris ?? []).map((uri) => element(0x86, Buffer.from(uri, 'latin1'))),
    ...(request.dnsNames ?? []).map((dns) => element(0x82, Buffer.from(dns, 'latin1'))),
    ...(request.ipAddresses ?? []).map((ip) => element(0x87, ipAddressBytes(ip))),
  ];
  const commonName = request.commonName ?? '';
  const extensions: Extension[] = [
    basicConstraints(request.isCa === true),
    { id: OID.keyUsage, critical: true, value: namedBits(request.keyUsageBits ?? [KEY_USAGE_BIT.digitalSignature, KEY_USAGE_BIT.keyEncipherment]) },
    { id: OID.subjectKeyIdentifier, critical: false, value: octetString(keyIdentifier(subjectPublicKeyOf(spki))) },
    { id: OID.authorityKeyIdentifier, critical: false, value: sequence(element(0x80, issuer.signer.keyIdentifier)) },
  ];
  if (request.extendedKeyUsages.length > 0) {
    extensions.push({ id: OID.extendedKeyUsage, critical: false, value: sequence(...request.extendedKeyUsages.map(oid)) });
  }
  if (request.ocspResponderUrl !== undefined) {
    // AccessDescription { id-ad-ocsp, [6] uniformResourceIdentifier }
    const ocsp = sequence(oid(OID.adOcsp), element(0x86, Buffer.from(request.ocspResponderUrl, 'latin1')));
    extensions.push({ id: OID.authorityInfoAccess, critical: false, value: sequence(ocsp) });
  }
  // With an empty subject the SAN carries the identity and must be critical (RFC 5280 §4.2.1.6).
  if (names.length > 0) extensions.push({ id: OID.subjectAltName, critical: commonName === '', value: sequence(...names) });
  const der = signCertificate(issuer.signer, {
    subject: commonNameOnly(commonName),
    spki,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    extensions,
  });
  const certPem = certificatePem(der);
  return { certPem, keyPem: privateKeyPem(keys.privateKey), chainPem: `${certPem}\n${issuer.certPem}\n` };
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
    extendedKeyUsages: [EXTENDED_KEY_USAGE.serverAuth, EXTENDED_KEY_USAGE.clientAuth],
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
    extendedKeyUsages: [EXTENDED_KEY_USAGE.serverAuth],
  });
}
