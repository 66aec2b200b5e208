/**
 * Edge hardening, class 6 (TLS defaults), against a real HTTPS ingress: the TLS 1.2 suites a client can
 * negotiate are listed the way a scanner (testssl.sh) does it — one handshake per suite the client
 * knows, each offering that single suite — and must be exactly the ECDHE AEAD suites of Mozilla's
 * "intermediate" profile that fit the certificate's key (EC here: the ECDSA ones). Gateway
 * `cipherSuites` / `minProtocolVersion` / `maxProtocolVersion` still override the default.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { SecureVersion } from 'node:tls';
import { X509Certificate, createHash, sign } from 'node:crypto';
import http from 'node:http';
import { EXTENDED_KEY_USAGE, issueCertificate } from '../../gateway/identity/ca.js';
import { parseCertificate } from '../../gateway/identity/certificate.js';
import { TAG, bitString, children, contents, element, encoded, expectTag, octetString, oid, readSingle, sequence } from '../../gateway/identity/der.js';
import { createOcspStapler, inspectOcspResponse } from '../../gateway/listeners/ocsp-stapling.js';
import { INTERMEDIATE_CIPHER_SUITES } from '../../gateway/identity/tls-profile.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePort, startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpsRequest, meshConfigYaml, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const pki = await makeTestPki();
const cert = await pki.serverCert(['secure.example.com', 'legacy.example.com']);
const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());
const [admin = 0, port = 0, legacyPort = 0, staplingPort = 0] = await freePorts(4);
const files = `serverCertificate: ${cert.chainPath}, privateKey: ${cert.keyPath}`;

/**
 * A tiny OCSP responder (RFC 6960) on 127.0.0.1 signing with the test CA's key: it reads the CertID the
 * listener asked about and answers "good" for it, valid one hour. It records what it was asked.
 */
const caDer = new X509Certificate(pki.ca.certPem).raw;
const caSubject = parseCertificate(caDer).subjectDer;
const ocspAsked: { readonly issuerNameHash: Buffer; readonly serial: Buffer }[] = [];
const ocspServed: Buffer[] = [];
const generalizedTime = (date: Date): Buffer => element(TAG.GENERALIZED_TIME, Buffer.from(`${date.toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`, 'latin1'));
const responder = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const der = Buffer.concat(chunks);
    // OCSPRequest → TBSRequest → requestList → Request → CertID
    let node = readSingle(der);
    for (let depth = 0; depth < 4; depth += 1) node = expectTag(children(der, node)[0], TAG.SEQUENCE, 'request structure');
    const [, nameHash, , serial] = children(der, node);
    ocspAsked.push({ issuerNameHash: Buffer.from(contents(der, expectTag(nameHash, TAG.OCTET_STRING, 'issuerNameHash'))), serial: Buffer.from(contents(der, expectTag(serial, TAG.INTEGER, 'serial'))) });
    const now = Date.now();
    const single = sequence(encoded(der, node), element(0x80), generalizedTime(new Date(now - 60_000)), element(0xa0, generalizedTime(new Date(now + 3_600_000))));
    const tbs = sequence(element(0xa1, caSubject), generalizedTime(new Date(now)), sequence(single));
    const basic = sequence(tbs, sequence(oid('1.2.840.10045.4.3.2')), bitString(sign('sha256', tbs, pki.ca.keyPem)));
    const response = sequence(element(0x0a, Buffer.from([0])), element(0xa0, sequence(oid('1.3.6.1.5.5.7.48.1.1'), octetString(basic))));
    ocspServed.push(response);
    res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(response);
  });
});
const responderPort = await freePort();
await new Promise<void>((resolve) => responder.listen(responderPort, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => responder.close(() => resolve())));
const stapled = await issueCertificate({
  ca: pki.ca,
  commonName: 'ocsp.example.com',
  dnsNames: ['ocsp.example.com'],
  notBefore: new Date(Date.now() - 3_600_000),
  notAfter: new Date(Date.now() + 86_400_000),
  extendedKeyUsages: [EXTENDED_KEY_USAGE.serverAuth],
  ocspResponderUrl: `http://127.0.0.1:${responderPort}/ocsp`,
});
const { dir } = pki;
const stapledFiles = { cert: `${dir}/ocsp-stapled.crt`, key: `${dir}/ocsp-stapled.key` };
writeFileSync(stapledFiles.cert, stapled.chainPem);
writeFileSync(stapledFiles.key, stapled.keyPem, { mode: 0o600 });
await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml(
      'edge',
      `    - port: {number: ${port}, name: https, protocol: HTTPS}
      hosts: ["secure.example.com"]
      tls: { mode: SIMPLE, ${files} }
    - port: {number: ${legacyPort}, name: https-legacy, protocol: HTTPS}
      hosts: ["legacy.example.com"]
      tls: { mode: SIMPLE, ${files}, cipherSuites: [ECDHE-ECDSA-AES128-SHA], minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_2 }
    - port: {number: ${staplingPort}, name: https-stapled, protocol: HTTPS}
      hosts: ["ocsp.example.com"]
      tls: { mode: SIMPLE, serverCertificate: ${stapledFiles.cert}, privateKey: ${stapledFiles.key} }
`,
    ),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml('app', ['secure.example.com', 'legacy.example.com', 'ocsp.example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n'),
  ].join('\n'),
);

interface Handshake {
  readonly ok: boolean;
  readonly detail: string;
}

/** One handshake offering exactly `cipher` (or every default suite when null) within the version range. */
function handshake(target: number, servername: string, cipher: string | null, minVersion: SecureVersion, maxVersion: SecureVersion): Promise<Handshake> {
  return new Promise((resolve) => {
    let socket: tls.TLSSocket;
    try {
      socket = tls.connect({ host: '127.0.0.1', port: target, servername, ca: pki.ca.certPem, minVersion, maxVersion, ...(cipher === null ? {} : { ciphers: cipher }) });
    } catch (error) {
      // The client's OpenSSL cannot offer this suite at all (unknown name, or disabled by its security level).
      resolve({ ok: false, detail: `client cannot offer: ${(error as Error).message}` });
      return;
    }
    socket.setTimeout(5000, () => socket.destroy(new Error('handshake timed out')));
    socket.once('secureConnect', () => {
      const negotiated = `${socket.getProtocol() ?? '?'} ${socket.getCipher().standardName}`;
      socket.destroy();
      resolve({ ok: true, detail: negotiated });
    });
    socket.once('error', (error) => resolve({ ok: false, detail: error.message }));
  });
}

/** Every TLS ≤1.2 suite name node's OpenSSL knows, upper-case as OpenSSL names them. */
const TLS12_CANDIDATES = tls
  .getCiphers()
  .map((name) => name.toUpperCase())
  .filter((name) => !name.startsWith('TLS_'));

const CBC_SAMPLES = ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384'];

t.test('control: a node TLS server with OpenSSL defaults negotiates CBC suites with this very client (LUCKY13 class)', async (t) => {
  const server = tls.createServer({ cert: cert.chainPem, key: cert.keyPem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const controlPort = (server.address() as AddressInfo).port;
  for (const suite of CBC_SAMPLES) {
    const result = await handshake(controlPort, 'secure.example.com', suite, 'TLSv1.2', 'TLSv1.2');
    t.ok(result.ok, `${suite} with OpenSSL defaults: ${result.detail}`);
  }
});

t.test('class 6 TLS — Mozilla intermediate / testssl.sh cipher listing: a TLS 1.2 client negotiates only ECDHE AEAD suites', async (t) => {
  const negotiated: string[] = [];
  for (const suite of TLS12_CANDIDATES) {
    const result = await handshake(port, 'secure.example.com', suite, 'TLSv1.2', 'TLSv1.2');
    if (result.ok) negotiated.push(suite);
  }
  t.same(
    negotiated.sort(),
    INTERMEDIATE_CIPHER_SUITES.filter((suite) => suite.startsWith('ECDHE-ECDSA-')).sort(),
    `offered to TLS 1.2 (EC certificate): ${negotiated.join(', ')} (of ${TLS12_CANDIDATES.length} suites tried)`,
  );
  for (const suite of negotiated) t.match(suite, /^ECDHE-.*(GCM|CHACHA20-POLY1305)/, `${suite} is forward-secret AEAD`);
  for (const suite of CBC_SAMPLES) {
    const result = await handshake(port, 'secure.example.com', suite, 'TLSv1.2', 'TLSv1.2');
    t.notOk(result.ok, `${suite} (CBC) is refused: ${result.detail}`);
  }
});

t.test('class 6 TLS — versions: TLS 1.3 and 1.2 are served, 1.1 and 1.0 are not (RFC 8996)', async (t) => {
  t.match((await handshake(port, 'secure.example.com', null, 'TLSv1.3', 'TLSv1.3')).detail, /^TLSv1\.3 TLS_/);
  t.match((await handshake(port, 'secure.example.com', null, 'TLSv1.2', 'TLSv1.2')).detail, /^TLSv1\.2 TLS_ECDHE_ECDSA_WITH_/);
  for (const version of ['TLSv1.1', 'TLSv1'] as const) {
    const result = await handshake(port, 'secure.example.com', null, version, version);
    t.notOk(result.ok, `${version} refused: ${result.detail}`);
  }
  const reply = await httpsRequest(port, '/', { servername: 'secure.example.com', ca: pki.ca.certPem });
  t.equal(reply.status, 200, 'HTTPS requests are served with the defaults');
});

t.test('class 6 TLS — Gateway cipherSuites / min/maxProtocolVersion override the default (Istio semantics)', async (t) => {
  const cbc = await handshake(legacyPort, 'legacy.example.com', 'ECDHE-ECDSA-AES128-SHA', 'TLSv1.2', 'TLSv1.2');
  t.ok(cbc.ok, `the suite the server lists is negotiated: ${cbc.detail}`);
  const gcm = await handshake(legacyPort, 'legacy.example.com', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'TLSv1.2', 'TLSv1.2');
  t.notOk(gcm.ok, `a suite it does not list is refused: ${gcm.detail}`);
  const tls13 = await handshake(legacyPort, 'legacy.example.com', null, 'TLSv1.3', 'TLSv1.3');
  t.notOk(tls13.ok, `maxProtocolVersion TLSV1_2 refuses TLS 1.3: ${tls13.detail}`);
});

/** One handshake asking for the certificate status (status_request); resolves with the stapled response, if any. */
function stapledResponse(target: number, servername: string): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    // tls.connect passes requestOCSP on to the TLSSocket; @types/node lists it only on TLSSocketOptions.
    const options: tls.ConnectionOptions & { readonly requestOCSP: boolean } = { host: '127.0.0.1', port: target, servername, ca: pki.ca.certPem, requestOCSP: true };
    const socket = tls.connect(options);
    socket.on('OCSPResponse', (response: Buffer | null) => {
      staple = response !== null && response.length > 0 ? response : null;
    });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(staple);
    });
    socket.once('error', reject);
  });
}

t.test('class 6 TLS — OCSP stapling (RFC 6066 §8, RFC 6960): the status from the responder the certificate names is stapled', async (t) => {
  const first = await stapledResponse(staplingPort, 'ocsp.example.com');
  t.ok(first !== null, 'the first handshake that asks gets a staple');
  t.equal(ocspAsked.length, 1, 'the listener asked the responder once');
  t.same(ocspAsked[0]?.issuerNameHash, createHash('sha1').update(caSubject).digest(), 'the CertID names the issuing CA');
  t.same(ocspAsked[0]?.serial, Buffer.from(parseCertificate(new X509Certificate(stapled.certPem).raw).serialNumber), 'and this certificate');
  t.same(first, ocspServed[0], 'the responder’s bytes are stapled unchanged');
  const inspected = inspectOcspResponse(first ?? Buffer.alloc(0), ocspAsked[0]?.serial ?? Buffer.alloc(0));
  t.match(inspected, { status: 'good' });
  const again = await stapledResponse(staplingPort, 'ocsp.example.com');
  t.same(again, first, 'later handshakes get the cached response');
  t.equal(ocspAsked.length, 1, 'without asking the responder again');
  t.equal(await stapledResponse(port, 'secure.example.com'), null, 'a certificate naming no responder gets no staple');
});

t.test('class 6 TLS — OCSP stapling keeps responses fresh: refreshed after half their validity, never stapled past nextUpdate', async (t) => {
  let clock = Date.now();
  const warnings: unknown[] = [];
  const stapler = createOcspStapler({ logger: { info: () => undefined, warn: (entry: unknown) => void warnings.push(entry) }, now: () => clock });
  t.teardown(() => stapler.close());
  const leaf = new X509Certificate(stapled.certPem).raw;
  const ask = (): Promise<Buffer | undefined> => new Promise((resolve) => stapler.onOcspRequest(leaf, caDer, (_error, response) => resolve(response)));
  const asked = ocspAsked.length;
  t.ok(await ask(), 'fetched and stapled');
  t.ok(await ask(), 'cached');
  t.equal(ocspAsked.length, asked + 1, 'one fetch for two handshakes');
  clock += 40 * 60_000;
  t.ok(await ask(), 'past half its validity the current response is still stapled…');
  for (let i = 0; i < 100 && ocspAsked.length < asked + 2; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(ocspAsked.length, asked + 2, '…while a fresh one is fetched in the background');
  clock += 3 * 3_600_000;
  t.equal(await ask(), undefined, 'past nextUpdate nothing is stapled (the responder’s answer is stale for this clock too)');
  t.match(JSON.stringify(warnings.at(-1)), /past its nextUpdate/, 'and the listener says why');
  const before = ocspAsked.length;
  t.equal(await ask(), undefined);
  t.equal(ocspAsked.length, before, 'a failed responder is not asked again before the retry delay');
});
