/**
 * A throw-away PKI for tests: one mesh root CA, workload SVIDs and server certificates on demand, and
 * a set of deliberately bad certificates. PEM files are written under a temp dir (removed at exit) so
 * code that reads `MeshConfig.certificates` paths can be exercised. The default instance is cached per
 * process: EC P-256 generation is fast, but every test file needs the same handful of certificates.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRootCa,
  issueCertificate,
  issueServerCertificate,
  issueWorkloadCertificate,
  KEY_USAGE_BIT,
  type CertificateRequest,
  type IssuedCertificate,
  type KeyAndCertificate,
} from '../../gateway/identity/ca.js';
import { spiffeUri } from '../../gateway/identity/spiffe.js';
import { x509 } from './x509.js';

export const TEST_TRUST_DOMAIN = 'cluster.local';

export interface CaFiles extends KeyAndCertificate {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface CertFiles extends IssuedCertificate {
  readonly certPath: string;
  readonly keyPath: string;
  readonly chainPath: string;
}

export interface IssueOptions {
  readonly validityHours?: number;
  readonly dnsNames?: readonly string[];
  readonly trustDomain?: string;
}

export interface BadCerts {
  /** A valid-looking SVID (right trust domain) signed by an unrelated CA. */
  readonly otherCa: CertFiles;
  readonly otherCaRoot: CaFiles;
  readonly expired: CertFiles;
  readonly notYetValid: CertFiles;
  readonly noSpiffe: CertFiles;
  readonly twoUriSans: CertFiles;
  readonly wrongTrustDomain: CertFiles;
  readonly nonSpiffeUri: CertFiles;
  /** Right trust domain and SAN, but a CA (basicConstraints CA:TRUE, keyCertSign). */
  readonly caSvid: CertFiles;
  /** Not a CA, but allowed to sign certificates (keyUsage keyCertSign). */
  readonly keyCertSignSvid: CertFiles;
  /** extendedKeyUsage serverAuth only: no client identity. */
  readonly serverOnlySvid: CertFiles;
  /** extendedKeyUsage clientAuth only: no server identity. */
  readonly clientOnlySvid: CertFiles;
  /** No extendedKeyUsage extension at all. */
  readonly noEkuSvid: CertFiles;
}

export interface TestPki {
  readonly dir: string;
  readonly trustDomain: string;
  readonly ca: CaFiles;
  issue(namespace: string, serviceAccount: string, options?: IssueOptions): Promise<CertFiles>;
  serverCert(dnsNames: readonly string[], options?: { readonly ipAddresses?: readonly string[] }): Promise<CertFiles>;
  readonly badCerts: BadCerts;
}

const HOUR_MS = 3_600_000;
const cache = new Map<string, Promise<TestPki>>();
let fileCounter = 0;

function writeCa(dir: string, name: string, ca: KeyAndCertificate): CaFiles {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  writeFileSync(certPath, ca.certPem);
  writeFileSync(keyPath, ca.keyPem, { mode: 0o600 });
  return { ...ca, certPath, keyPath };
}

function writeIssued(dir: string, name: string, issued: IssuedCertificate): CertFiles {
  fileCounter += 1;
  const base = join(dir, `${name.replace(/[^A-Za-z0-9.-]/g, "_")}-${fileCounter}`);
  const files = { certPath: `${base}.crt`, keyPath: `${base}.key`, chainPath: `${base}-chain.pem` };
  writeFileSync(files.certPath, issued.certPem);
  writeFileSync(files.keyPath, issued.keyPem, { mode: 0o600 });
  writeFileSync(files.chainPath, issued.chainPem);
  return { ...issued, ...files };
}

async function buildPki(dir: string): Promise<TestPki> {
  const trustDomain = TEST_TRUST_DOMAIN;
  const ca = writeCa(dir, 'root-ca', await createRootCa({ trustDomain }));
  const otherCaRoot = writeCa(dir, 'other-ca', await createRootCa({ trustDomain }));
  const svidEku = [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const now = Date.now();
  const validNow = { notBefore: new Date(now - HOUR_MS), notAfter: new Date(now + HOUR_MS) };

  const issue = async (namespace: string, serviceAccount: string, options: IssueOptions = {}): Promise<CertFiles> =>
    writeIssued(
      dir,
      `${namespace}.${serviceAccount}`,
      await issueWorkloadCertificate({
        ca,
        trustDomain: options.trustDomain ?? trustDomain,
        namespace,
        serviceAccount,
        validityHours: options.validityHours ?? 24,
        dnsNames: options.dnsNames ?? [],
      }),
    );

  const crafted = async (
    name: string,
    uris: readonly string[],
    window: { notBefore: Date; notAfter: Date },
    usage: Pick<CertificateRequest, 'isCa' | 'keyUsageBits'> & { extendedKeyUsages?: readonly string[] } = {},
  ): Promise<CertFiles> =>
    writeIssued(dir, name, await issueCertificate({ ca, uris, dnsNames: ['bad.example.com'], ...window, extendedKeyUsages: svidEku, ...usage }));

  const goodUri = spiffeUri(trustDomain, 'default', 'bad');
  const badCerts: BadCerts = {
    otherCaRoot,
    otherCa: writeIssued(
      dir,
      'other-ca-svid',
      await issueWorkloadCertificate({ ca: otherCaRoot, trustDomain, namespace: 'default', serviceAccount: 'intruder', validityHours: 24 }),
    ),
    expired: await crafted('expired', [goodUri], { notBefore: new Date(now - 48 * HOUR_MS), notAfter: new Date(now - 24 * HOUR_MS) }),
    notYetValid: await crafted('not-yet-valid', [goodUri], { notBefore: new Date(now + 24 * HOUR_MS), notAfter: new Date(now + 48 * HOUR_MS) }),
    noSpiffe: await crafted('no-spiffe', [], validNow),
    twoUriSans: await crafted('two-uri-sans', [goodUri, spiffeUri(trustDomain, 'kube-system', 'admin')], validNow),
    wrongTrustDomain: await issue('default', 'foreign', { trustDomain: 'evil.example' }),
    nonSpiffeUri: await crafted('non-spiffe-uri', ['https://cluster.local/ns/default/sa/bad'], validNow),
    caSvid: await crafted('ca-svid', [goodUri], validNow, { isCa: true, keyUsageBits: [KEY_USAGE_BIT.digitalSignature, KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign] }),
    keyCertSignSvid: await crafted('key-cert-sign-svid', [goodUri], validNow, { keyUsageBits: [KEY_USAGE_BIT.digitalSignature, KEY_USAGE_BIT.keyCertSign] }),
    serverOnlySvid: await crafted('server-only-svid', [goodUri], validNow, { extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth] }),
    clientOnlySvid: await crafted('client-only-svid', [goodUri], validNow, { extendedKeyUsages: [x509.ExtendedKeyUsage.clientAuth] }),
    noEkuSvid: await crafted('no-eku-svid', [goodUri], validNow, { extendedKeyUsages: [] }),
  };

  return {
    dir,
    trustDomain,
    ca,
    issue,
    serverCert: async (dnsNames, options = {}) =>
      writeIssued(dir, `server-${dnsNames[0] ?? 'ip'}`, await issueServerCertificate({ ca, dnsNames, ipAddresses: options.ipAddresses ?? [] })),
    badCerts,
  };
}

/** The shared test PKI; pass `dir` to get a separate one written to that directory. */
export function makeTestPki(dir?: string): Promise<TestPki> {
  const key = dir ?? '';
  let pki = cache.get(key);
  if (pki === undefined) {
    let target = dir;
    if (target === undefined) {
      const created = mkdtempSync(join(tmpdir(), 'meshgate-pki-'));
      process.once('exit', () => rmSync(created, { recursive: true, force: true }));
      target = created;
    }
    pki = buildPki(target);
    cache.set(key, pki);
  }
  return pki;
}
