/**
 * Edge hardening, class 7 (certificates), with real mTLS handshakes on 127.0.0.1: a certificate that
 * chains to the mesh CA (so OpenSSL accepts it) but is a CA, may sign certificates, or lacks the
 * extendedKeyUsage of its role is refused as a workload identity by meshgate itself:
 * - inbound (the peer is a client, needs clientAuth): the sidecar closes the connection, the app sees nothing;
 * - at an ingress MUTUAL server: the request carries no principal, so a principal policy denies it;
 * - outbound (the peer is a server, needs serverAuth): the sidecar refuses the upstream, which sees nothing.
 */
import t from 'tap';
import type { Test } from 'tap';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import { EXTENDED_KEY_USAGE, KEY_USAGE_BIT, issueCertificate } from '../../gateway/identity/ca.js';
import type { CertificateRequest } from '../../gateway/identity/ca.js';
import { CertificateStore } from '../../gateway/identity/cert-store.js';
import { meshIdentityProvider } from '../../gateway/identity/mesh-identity.js';
import { spiffeUri } from '../../gateway/identity/spiffe.js';
import { buildUpstreamConnector } from '../../gateway/upstream/tls-origination.js';
import { startMesh } from '../e2e-mesh/mesh-fixture.js';
import { freePort, startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { CertFiles } from '../helpers/pki.js';
import { freePorts, gatewayYaml, httpsRequest, meshConfigYaml, request, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const pki = await makeTestPki();
const bad = pki.badCerts;

/** Certificates OpenSSL verifies against the mesh CA but meshgate must refuse, per role. */
const refusedAsClient: readonly [string, CertFiles, RegExp][] = [
  ['a CA certificate (basicConstraints CA:TRUE)', bad.caSvid, /is a CA/],
  ['a certificate allowed to sign certificates (keyUsage keyCertSign)', bad.keyCertSignSvid, /keyCertSign/],
  ['a serverAuth-only certificate used as a client', bad.serverOnlySvid, /lacks clientAuth/],
  ['a certificate without extendedKeyUsage', bad.noEkuSvid, /no extendedKeyUsage/],
];

/** OpenSSL's own verdict on a client certificate: `socket.authorized` on a node TLS server trusting the mesh CA. */
async function opensslVerdict(client: CertFiles): Promise<string> {
  const own = await pki.serverCert(['localhost']);
  const verdicts: string[] = [];
  const server = tls.createServer({ cert: own.chainPem, key: own.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: false }, (socket) => {
    verdicts.push(socket.authorized ? 'accepted' : `refused: ${String(socket.authorizationError)}`);
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: pki.ca.certPem, cert: client.chainPem, key: client.keyPem, servername: 'localhost' });
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
      socket.resume();
    });
    return verdicts[0] ?? 'no handshake';
  } finally {
    server.close();
  }
}

/** The certificates OpenSSL's chain and purpose checks let through, so that only meshgate's own check refuses them. */
const passOpenssl = [bad.caSvid, bad.keyCertSignSvid, bad.noEkuSvid];

t.test('control: OpenSSL alone accepts the CA, keyCertSign and no-EKU certificates as client certificates', async (t) => {
  for (const [name, cert] of refusedAsClient) {
    const verdict = await opensslVerdict(cert);
    if (passOpenssl.includes(cert)) t.equal(verdict, 'accepted', `${name}: OpenSSL ${verdict}`);
    else t.match(verdict, /refused|accepted/, `${name}: OpenSSL ${verdict} (meshgate refuses it either way)`);
  }
});

/** One GET over mTLS presenting `cert`; the sidecar's server certificate has no DNS name, only its SPIFFE URI. */
function mtlsGet(port: number, cert: CertFiles): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/health/ping', headers: { host: 'product-service' }, ca: pki.ca.certPem, cert: cert.chainPem, key: cert.keyPem, checkServerIdentity: () => undefined, agent: false, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no response within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

t.test('class 7 certificates — inbound mTLS (RFC 5280 §4.2.1.9/§4.2.1.12, SPIFFE X509-SVID §4): the sidecar refuses the connection', async (t) => {
  const mesh = await startMesh();
  t.teardown(() => mesh.close());
  const port = mesh.ports.productInbound;
  const good = await pki.issue('my-app', 'order-service');
  t.equal(await mtlsGet(port, good), 200, 'a proper workload certificate is served');

  for (const [name, cert, reason] of refusedAsClient) {
    const before = mesh.productApp.received.length;
    const logsBefore = mesh.productSidecar.logs.length;
    const outcome = await mtlsGet(port, cert).then(
      (status) => `answered ${status}`,
      (error: Error) => `refused: ${error.message}`,
    );
    t.match(outcome, /^refused/, `${name}: ${outcome}`);
    t.equal(mesh.productApp.received.length, before, `${name}: the app saw nothing`);
    if (passOpenssl.includes(cert)) {
      const logged = mesh.productSidecar.logs.slice(logsBefore).find((line) => line.msg === 'inbound mTLS peer refused');
      t.match(String(logged?.reason), reason, `${name}: the sidecar logged why (${String(logged?.reason)})`);
    }
  }
});

t.test('class 7 certificates — ingress MUTUAL: a CA client certificate is no principal, so a principal policy denies with its reason', async (t) => {
  const app = await startUpstream(undefined, 'app');
  t.teardown(() => app.close());
  const server = await pki.serverCert(['secure.example.com']);
  const [admin = 0, port = 0] = await freePorts(2);
  const policy = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: workloads-only, namespace: istio-system }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/sa/bad"] } }] }]
`;
  const tlsBlock = `      tls: { mode: MUTUAL, serverCertificate: ${server.chainPath}, privateKey: ${server.keyPath}, caCertificates: ${pki.ca.certPath} }\n`;
  await startScenario(
    t,
    [
      meshConfigYaml(admin),
      gatewayYaml('edge', `    - port: {number: ${port}, name: https, protocol: HTTPS}\n      hosts: ["secure.example.com"]\n${tlsBlock}`),
      serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
      virtualServiceYaml('app', ['secure.example.com'], 'edge', '    - route: [{destination: {host: app.internal}}]\n'),
      policy,
    ].join('\n'),
  );
  const options = { servername: 'secure.example.com', ca: pki.ca.certPem } as const;
  const good = await pki.issue('default', 'bad');
  const allowed = await httpsRequest(port, '/x', { ...options, cert: good.chainPem, key: good.keyPem });
  t.equal(allowed.status, 200, 'the same identity in a proper certificate is allowed');
  for (const [name, cert] of refusedAsClient) {
    if (!passOpenssl.includes(cert)) continue;
    const before = app.received.length;
    const denied = await httpsRequest(port, '/x', { ...options, cert: cert.chainPem, key: cert.keyPem });
    t.equal(denied.status, 403, `${name}: ${denied.body.trim()}`);
    t.match(String(denied.headers['x-meshgate-reason']), /rbac_access_denied/, `${name}: the reason`);
    t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
  }
});

/** A loopback mTLS server presenting `cert` for `spiffe://cluster.local/ns/my-app/sa/<name>`; records requests. */
async function meshServer(t: Test, usage: Pick<CertificateRequest, 'isCa' | 'keyUsageBits' | 'extendedKeyUsages'>, name: string): Promise<{ port: number; received: string[] }> {
  const now = Date.now();
  const issued = await issueCertificate({
    ca: pki.ca,
    uris: [spiffeUri(pki.trustDomain, 'my-app', name)],
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 3_600_000),
    ...usage,
  });
  const received: string[] = [];
  const server = https.createServer({ cert: issued.chainPem, key: issued.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    received.push(req.url ?? '');
    res.end('served');
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port, received };
}

function upstreamYaml(name: string, port: number): string {
  return `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: my-app }
spec:
  hosts: [${name}.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: ${name} } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { http: ${port} }
  labels: { app: ${name} }
  serviceAccount: ${name}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name}, namespace: my-app }
spec:
  host: ${name}
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`;
}

t.test('class 7 certificates — outbound mTLS (RFC 5280 §4.2.1.12 serverAuth): the sidecar refuses an upstream whose certificate is no server identity', async (t) => {
  const both = [EXTENDED_KEY_USAGE.serverAuth, EXTENDED_KEY_USAGE.clientAuth];
  const upstreams = {
    'svc-good': await meshServer(t, { extendedKeyUsages: both }, 'svc-good'),
    'svc-client-only': await meshServer(t, { extendedKeyUsages: [EXTENDED_KEY_USAGE.clientAuth] }, 'svc-client-only'),
    'svc-ca': await meshServer(t, { extendedKeyUsages: both, isCa: true, keyUsageBits: [KEY_USAGE_BIT.digitalSignature, KEY_USAGE_BIT.keyCertSign] }, 'svc-ca'),
  };
  const mesh = await startMesh({ extraYaml: Object.entries(upstreams).map(([name, server]) => upstreamYaml(name, server.port)).join('') });
  t.teardown(() => mesh.close());
  const port = mesh.ports.orderOutbound;

  const ok = await request(port, '/good', { host: 'svc-good' });
  t.equal(ok.status, 200, `a proper server certificate is used: ${ok.body}`);
  t.same(upstreams['svc-good'].received, ['/good']);

  for (const host of ['svc-client-only', 'svc-ca'] as const) {
    const reply = await request(port, '/refused', { host });
    t.equal(reply.status, 503, `${host}: ${reply.status} ${reply.headers['x-meshgate-reason'] as string}`);
    t.match(String(reply.headers['x-meshgate-reason']), /^UF /, `${host}: refused while connecting (the reason is shown by the next test)`);
    t.same(upstreams[host].received, [], `${host}: no request was sent to it`);
  }
});

t.test('class 7 certificates — the refusal reason of an upstream certificate, from the real identity provider over a real handshake', async (t) => {
  const both = [EXTENDED_KEY_USAGE.serverAuth, EXTENDED_KEY_USAGE.clientAuth];
  const own = await pki.issue('my-app', 'order-service');
  const store = await CertificateStore.fromFiles({ files: { certChain: own.chainPath, privateKey: own.keyPath, rootCert: pki.ca.certPath }, trustDomain: pki.trustDomain, logger: pino({ level: 'silent' }) });
  t.teardown(() => store.close());
  const identity = meshIdentityProvider(store, pki.trustDomain);
  for (const [name, usage, reason] of [
    ['svc-good', { extendedKeyUsages: both }, null],
    // OpenSSL's purpose check already refuses this one ("unsuitable certificate purpose"); meshgate would too.
    ['svc-client-only', { extendedKeyUsages: [EXTENDED_KEY_USAGE.clientAuth] }, /lacks serverAuth|unsuitable certificate purpose/],
    ['svc-key-cert-sign', { extendedKeyUsages: both, keyUsageBits: [KEY_USAGE_BIT.digitalSignature, KEY_USAGE_BIT.keyCertSign] }, /keyCertSign/],
    ['svc-no-eku', { extendedKeyUsages: [] }, /no extendedKeyUsage/],
    ['svc-ca', { extendedKeyUsages: both, isCa: true }, /is a CA/],
  ] as const) {
    const server = await meshServer(t, usage, name);
    const connector = buildUpstreamConnector({
      tls: { mode: 'ISTIO_MUTUAL', explicit: true, caCertificates: '', clientCertificate: '', privateKey: '', sni: '', subjectAltNames: [], insecureSkipVerify: false },
      serviceSubjectAltNames: [],
      istioSni: `outbound_.80_._.${name}.my-app.svc.cluster.local`,
      identity,
      connectTimeoutMs: 5000,
      expectedIdentities: [spiffeUri(pki.trustDomain, 'my-app', name)],
    });
    const error = await new Promise<Error | null>((resolve) => {
      connector.connect({ hostname: '127.0.0.1', host: '127.0.0.1', port: String(server.port), protocol: 'https:', servername: '' }, (failure: Error | null, socket: Socket | null) => {
        socket?.destroy();
        resolve(failure);
      });
    });
    if (reason === null) t.equal(error, null, `${name}: connected`);
    else t.match(error?.message, reason, `${name}: ${error?.message ?? 'connected'}`);
  }
});

t.test('class 7 certificates — our own certificate must be a workload identity too (serverAuth and clientAuth, no CA)', async (t) => {
  for (const [name, cert, reason] of [
    ['a CA', bad.caSvid, /is a CA/],
    ['serverAuth only', bad.serverOnlySvid, /lacks clientAuth/],
    ['clientAuth only', bad.clientOnlySvid, /lacks serverAuth/],
  ] as const) {
    await t.rejects(
      CertificateStore.fromFiles({ files: { certChain: cert.chainPath, privateKey: cert.keyPath, rootCert: pki.ca.certPath }, trustDomain: pki.trustDomain, logger: pino({ level: 'silent' }) }),
      reason,
      name,
    );
  }
});
