/**
 * Gateway listeners over real sockets (docs/routing.md#gateways-and-listeners): plain HTTP, HTTPS servers sharing a port
 * told apart by SNI (exact and wildcard, unknown SNI refused, a per-server TLS 1.3 minimum), MUTUAL,
 * httpsRedirect, HTTP/2 negotiated by ALPN, certificate rotation without a restart, and the 404 of a
 * host no VirtualService is bound to.
 */
import t from 'tap';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { CertFiles } from '../helpers/pki.js';
import {
  freePorts,
  gatewayYaml,
  httpServerYaml,
  httpsRequest,
  meshConfigYaml,
  request,
  serviceEntryYaml,
  sleep,
  startScenario,
  virtualServiceYaml,
} from './support.js';

const pki = await makeTestPki();
const ca = pki.ca.certPem;
const upstream = await startUpstream();
t.teardown(() => upstream.close());

/** Certificates live in a directory of their own, so that rotating them is a plain file copy. */
const certDir = await mkdtemp(join(tmpdir(), 'meshgate-e2e-certs-'));
t.teardown(() => rm(certDir, { recursive: true, force: true }));

async function placed(name: string, cert: CertFiles): Promise<{ cert: string; key: string }> {
  const files = { cert: join(certDir, `${name}.crt`), key: join(certDir, `${name}.key`) };
  await copyFile(cert.certPath, files.cert);
  await copyFile(cert.keyPath, files.key);
  return files;
}

const exactCert = await pki.serverCert(['shop.example.com']);
const wildcardCert = await pki.serverCert(['*.wild.example.com']);
const modernCert = await pki.serverCert(['modern.example.com']);
const mutualCert = await pki.serverCert(['mtls.example.com']);
const shop = await placed('shop', exactCert);
const wild = await placed('wild', wildcardCert);
const modern = await placed('modern', modernCert);
const mutual = await placed('mtls', mutualCert);
const clientCert = await pki.issue('default', 'client');

const [admin = 0, httpPort = 0, httpsPort = 0, mutualPort = 0, redirectPort = 0] = await freePorts(5);

const tlsServer = (port: number, host: string, files: { cert: string; key: string }, extra = ''): string =>
  `    - port: {number: ${port}, name: https-${host.split('.')[0] ?? 'x'}, protocol: HTTPS}
      hosts: ["${host}"]
      tls:
        mode: SIMPLE
        serverCertificate: ${files.cert}
        privateKey: ${files.key}
${extra}`;

const servers = [
  httpServerYaml(httpPort, ['*']),
  httpServerYaml(redirectPort, ['secure.example.com'], '      tls: {httpsRedirect: true}\n'),
  tlsServer(httpsPort, 'shop.example.com', shop),
  tlsServer(httpsPort, '*.wild.example.com', wild),
  tlsServer(httpsPort, 'modern.example.com', modern, '        minProtocolVersion: TLSV1_3\n'),
  `    - port: {number: ${mutualPort}, name: https-mtls, protocol: HTTPS}
      hosts: ["mtls.example.com"]
      tls:
        mode: MUTUAL
        serverCertificate: ${mutual.cert}
        privateKey: ${mutual.key}
        caCertificates: ${pki.ca.certPath}
`,
].join('');

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', servers),
    serviceEntryYaml('app', 'app.internal', [{ port: upstream.port }]),
    virtualServiceYaml(
      'app',
      ['bound.example.com', 'shop.example.com', '*.wild.example.com', 'modern.example.com', 'mtls.example.com', 'secure.example.com'],
      'edge',
      '    - route:\n        - destination: {host: app.internal}\n',
    ),
  ].join('\n'),
);

function sanOf(certPem: string): string {
  return new X509Certificate(certPem).subjectAltName ?? '';
}

/** Handshake only: resolves with the negotiated protocol and the served certificate, rejects when refused. */
function handshake(port: number, servername: string, options: tls.ConnectionOptions = {}): Promise<{ protocol: string; san: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, ...options }, () => {
      const peer = socket.getPeerX509Certificate();
      const result = { protocol: socket.getProtocol() ?? '', san: peer?.subjectAltName ?? '', serial: peer?.serialNumber ?? '' };
      // A connection the per-server check refuses is closed right after the handshake: wait a moment to see it.
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(result);
      }, 150);
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('closed by the gateway after the handshake'));
      });
    });
    socket.once('error', reject);
    socket.setTimeout(3000, () => socket.destroy(new Error('handshake timed out')));
  });
}

t.test('plain HTTP listener proxies to the bound VirtualService', async (t) => {
  const res = await request(httpPort, '/hello?x=1', { host: 'bound.example.com' });
  t.equal(res.status, 200);
  t.match(JSON.parse(res.body), { url: '/hello?x=1', headers: { host: 'bound.example.com' } });
});

t.test('a host no VirtualService is bound to gets 404 NR with the reason', async (t) => {
  const res = await request(httpPort, '/', { host: 'unbound.example.com' });
  t.equal(res.status, 404);
  t.equal(res.headers['x-meshgate-reason'], 'NR route_not_found');
});

t.test('two certificates on one HTTPS port, chosen by SNI (exact and wildcard)', async (t) => {
  const exact = await httpsRequest(httpsPort, '/', { servername: 'shop.example.com', ca });
  t.equal(exact.status, 200);
  t.equal(exact.peerSubjectAltName, sanOf(exactCert.certPem));
  const wildcard = await httpsRequest(httpsPort, '/', { servername: 'api.wild.example.com', ca });
  t.equal(wildcard.status, 200);
  t.equal(wildcard.peerSubjectAltName, sanOf(wildcardCert.certPem));
  t.equal(JSON.parse(wildcard.body).headers['x-forwarded-proto'], 'https');
});

t.test('an unknown SNI fails the handshake', async (t) => {
  await t.rejects(handshake(httpsPort, 'nobody.example.org'));
  await t.rejects(handshake(httpsPort, 'wild.example.com'), 'the wildcard never matches its bare suffix');
});

t.test('minProtocolVersion TLSV1_3 refuses TLS 1.2 for that server only', async (t) => {
  await t.rejects(handshake(httpsPort, 'modern.example.com', { maxVersion: 'TLSv1.2' }));
  t.equal((await handshake(httpsPort, 'modern.example.com')).protocol, 'TLSv1.3');
  t.equal((await handshake(httpsPort, 'shop.example.com', { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2', 'the SIMPLE server beside it keeps TLS 1.2');
});

t.test('MUTUAL requires a client certificate signed by the configured CA', async (t) => {
  await t.rejects(httpsRequest(mutualPort, '/', { servername: 'mtls.example.com', ca }));
  await t.rejects(
    httpsRequest(mutualPort, '/', { servername: 'mtls.example.com', ca, cert: pki.badCerts.otherCa.certPem, key: pki.badCerts.otherCa.keyPem }),
    'a certificate from another CA is refused',
  );
  const res = await httpsRequest(mutualPort, '/', { servername: 'mtls.example.com', ca, cert: clientCert.chainPem, key: clientCert.keyPem });
  t.equal(res.status, 200);
  t.notOk(JSON.parse(res.body).headers['x-forwarded-client-cert'], 'no XFCC is forged for the app by default');
});

t.test('httpsRedirect answers 301 to https with path and query kept', async (t) => {
  const res = await request(redirectPort, '/a/b?c=d&e', { host: 'secure.example.com' });
  t.equal(res.status, 301);
  t.equal(res.headers.location, 'https://secure.example.com/a/b?c=d&e');
  t.equal(upstream.received.filter((r) => r.url === '/a/b?c=d&e').length, 0, 'the upstream never sees a redirected request');
});

t.test('HTTP/2 is negotiated by ALPN and proxied', async (t) => {
  const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { servername: 'shop.example.com', ca });
  t.teardown(() => session.close());
  const response = await new Promise<{ status: number; body: string; alpn: string }>((resolve, reject) => {
    const stream = session.request({ ':path': '/h2?q=1', ':method': 'GET', ':authority': 'shop.example.com' });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString(), alpn: session.alpnProtocol ?? '' }));
    stream.on('error', reject);
    stream.end();
  });
  t.equal(response.alpn, 'h2');
  t.equal(response.status, 200, response.body);
  const seen = JSON.parse(response.body) as { url: string; headers: Record<string, string> };
  t.equal(seen.url, '/h2?q=1');
  t.equal(seen.headers.host, 'shop.example.com', ':authority becomes Host upstream');
  t.notOk(Object.keys(seen.headers).some((name) => name.startsWith(':')), 'no pseudo-header leaks upstream');
});

t.test('rotating the certificate files changes the served certificate without a restart', async (t) => {
  const before = await handshake(httpsPort, 'shop.example.com');
  const renewed = await pki.serverCert(['shop.example.com']);
  await copyFile(renewed.keyPath, shop.key);
  await copyFile(renewed.certPath, shop.cert);
  let served = before.serial;
  for (let waited = 0; served === before.serial && waited < 20_000; waited += 100) {
    await sleep(100);
    served = (await handshake(httpsPort, 'shop.example.com')).serial;
  }
  t.equal(served, new X509Certificate(renewed.certPem).serialNumber, 'new connections get the renewed certificate');
  const res = await httpsRequest(httpsPort, '/', { servername: 'shop.example.com', ca });
  t.equal(res.status, 200);
});
