/**
 * TLS 1.3 session resumption on a sidecar's inbound port: a mesh client that offers the ticket of an
 * earlier connection resumes (no certificate exchange), and the identity of the resumed session is the
 * one its first handshake proved: AuthorizationPolicy and XFCC see it as they do on a full handshake.
 * An identity the sidecar refuses does not get in by resuming, nor one whose certificate expired after
 * the handshake its ticket came from (a resumed session carries no certificate exchange, so nothing
 * below the sidecar checks the validity again).
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { EXTENDED_KEY_USAGE, issueCertificate } from '../../gateway/identity/ca.js';
import { spiffeUri } from '../../gateway/identity/spiffe.js';

const pki = await makeTestPki();
const app = await startUpstream(undefined, 'product-service');
const inbound = await freePort();
const admin = await freePort();
const config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${admin}
  accessLog: { enabled: false }
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: my-app }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: products, namespace: my-app }
spec:
  selector: { matchLabels: { app: product-service } }
  rules:
    - from: [{ source: { principals: [cluster.local/ns/my-app/sa/order-service] } }]
      to: [{ operation: { paths: [/api/products/*] } }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: product, namespace: my-app }
spec: { address: 127.0.0.1, labels: { app: product-service }, serviceAccount: product-service }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: product, namespace: my-app }
spec:
  workloadSelector: { labels: { app: product-service } }
  ingress: [{ port: { number: ${inbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${app.port}" }]
`);
const sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product' });
t.teardown(async () => {
  await sidecar.stop();
  await app.close();
  await config.remove();
});

const CLOSE_DEADLINE_MS = 20_000;

interface Exchange {
  readonly reused: boolean;
  /** The response's status line; '' when the connection closed without an answer. */
  readonly status: string;
  /** The last ticket the server sent on this connection, if any. */
  readonly ticket: Buffer | undefined;
}

/** One mTLS connection to the inbound port carrying one request (`connection: close`), offering `session` when given. */
async function exchange(cert: { readonly chainPath: string; readonly keyPath: string }, path: string, session?: Buffer): Promise<Exchange> {
  const [ca, chain, key] = await Promise.all([readFile(pki.ca.certPath), readFile(cert.chainPath), readFile(cert.keyPath)]);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: inbound, ca, cert: chain, key, checkServerIdentity: () => undefined, ...(session === undefined ? {} : { session }) });
    let reused = false;
    let ticket: Buffer | undefined;
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${CLOSE_DEADLINE_MS} ms`));
    }, CLOSE_DEADLINE_MS);
    socket.on('session', (received: Buffer) => (ticket = received));
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nhost: product-service\r\nconnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    // A refused peer's connection is cut: that is an outcome here, not a failure of the test client.
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ reused, status: answer.split('\r\n')[0] ?? '', ticket });
    });
  });
}

t.test('a mesh client resumes, and the resumed session carries the identity its first handshake proved', async (t) => {
  const order = await pki.issue('my-app', 'order-service');
  const first = await exchange(order, '/api/products/1');
  t.equal(first.status, 'HTTP/1.1 200 OK');
  t.notOk(first.reused, 'the first connection is a full handshake');
  t.ok(first.ticket, 'the sidecar issued a session ticket');

  const before = app.received.length;
  const resumed = await exchange(order, '/api/products/2', first.ticket);
  t.ok(resumed.reused, 'the second connection resumed the session');
  t.equal(resumed.status, 'HTTP/1.1 200 OK', 'the policy allowing order-service allows the resumed session');
  const seen = app.received.slice(before);
  t.equal(seen.length, 1);
  t.match(String(seen[0]?.headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/my-app\/sa\/order-service/, 'XFCC names the resumed identity');
});

t.test('a resumed session of an identity the policy does not allow is still denied', async (t) => {
  const stranger = await pki.issue('my-app', 'stranger');
  const first = await exchange(stranger, '/api/products/1');
  t.match(first.status, /^HTTP\/1\.1 403 /);
  t.ok(first.ticket, 'the sidecar issued a session ticket');
  const before = app.received.length;
  const resumed = await exchange(stranger, '/api/products/1', first.ticket);
  t.ok(resumed.reused, 'the session resumed');
  t.match(resumed.status, /^HTTP\/1\.1 403 /, 'the resumed identity is the stranger, not anonymous nor anyone else');
  t.equal(app.received.length, before, 'the app never saw either request');
});

t.test('an identity refused after the handshake does not get in by resuming', async (t) => {
  // Signed by the mesh CA, so TLS accepts the chain; the sidecar refuses its SPIFFE ID (another trust domain).
  const wrong = pki.badCerts.wrongTrustDomain;
  const before = app.received.length;
  const first = await exchange(wrong, '/health');
  t.equal(first.status, '', 'the connection is closed without an answer');
  // Whether a ticket left before the connection was cut depends on the flush; when one did, it must not help.
  if (first.ticket !== undefined) {
    const resumed = await exchange(wrong, '/health', first.ticket);
    t.equal(resumed.status, '', `resuming is refused too (resumed: ${String(resumed.reused)})`);
  }
  t.equal(app.received.length, before, 'the app never saw it');
});

t.test('a certificate that expired since the handshake its ticket came from is refused on resumption', async (t) => {
  // Valid for a few seconds from now: long enough for one full handshake, then it expires while its ticket (300 s) is still good.
  const notAfter = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_000);
  const issued = await issueCertificate({
    ca: pki.ca,
    uris: [spiffeUri(pki.trustDomain, 'my-app', 'order-service')],
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    extendedKeyUsages: [EXTENDED_KEY_USAGE.serverAuth, EXTENDED_KEY_USAGE.clientAuth],
  });
  const files = { chainPath: join(config.dir, 'short-lived-chain.pem'), keyPath: join(config.dir, 'short-lived-key.pem') };
  await writeFile(files.chainPath, issued.chainPem);
  await writeFile(files.keyPath, issued.keyPem, { mode: 0o600 });

  const first = await exchange(files, '/api/products/1');
  t.equal(first.status, 'HTTP/1.1 200 OK', 'accepted while valid');
  t.ok(first.ticket, 'the sidecar issued a session ticket');
  // Waits for the certificate's own end of validity (X.509 times have whole seconds), not for the sidecar.
  await new Promise((resolve) => setTimeout(resolve, notAfter.getTime() + 1_100 - Date.now()));
  const before = app.received.length;
  const resumed = await exchange(files, '/api/products/1', first.ticket);
  t.equal(resumed.status, '', `refused once expired (resumed: ${String(resumed.reused)})`);
  t.equal(app.received.length, before, 'the app never saw it');
});
