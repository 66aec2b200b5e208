/**
 * Edge hardening, class 6 (TLS defaults), against a real HTTPS ingress: the TLS 1.2 suites a client can
 * negotiate are listed the way a scanner (testssl.sh) does it — one handshake per suite the client
 * knows, each offering that single suite — and must be exactly the ECDHE AEAD suites of Mozilla's
 * "intermediate" profile that fit the certificate's key (EC here: the ECDSA ones). Gateway
 * `cipherSuites` / `minProtocolVersion` / `maxProtocolVersion` still override the default.
 */
import t from 'tap';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { SecureVersion } from 'node:tls';
import { INTERMEDIATE_CIPHER_SUITES } from '../../gateway/listeners/tls-profile.js';
import { makeTestPki } from '../helpers/pki.js';
import { startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpsRequest, meshConfigYaml, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const pki = await makeTestPki();
const cert = await pki.serverCert(['secure.example.com', 'legacy.example.com']);
const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());
const [admin = 0, port = 0, legacyPort = 0] = await freePorts(3);
const files = `serverCertificate: ${cert.chainPath}, privateKey: ${cert.keyPath}`;
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
`,
    ),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml('app', ['secure.example.com', 'legacy.example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n'),
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
