import t from 'tap';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { get, startMesh } from './mesh-fixture.js';
import { runCli } from '../e2e-foundation/fixtures.js';
import type { Mesh, Reply } from './mesh-fixture.js';
import type { CertFiles } from '../helpers/pki.js';


/** A client TLS connection to a sidecar's inbound port with the given client certificate. */
function mtlsGet(port: number, path: string, cert: CertFiles | null, caPath: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        ca: readFileSync(caPath),
        ...(cert === null ? {} : { cert: readFileSync(cert.chainPath), key: readFileSync(cert.keyPath) }),
        checkServerIdentity: () => undefined,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      },
    );
    request.on('error', reject);
  });
}

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh();
});
t.teardown(() => mesh.close());

t.test('ingress → sidecar over mesh mTLS: the app sees the ingress identity in XFCC', async (t) => {
  const reply = await get(mesh.ports.ingress, '/health/ping', { host: 'shop.example.com' });
  t.equal(reply.status, 200, reply.body);
  const seen = mesh.productApp.received.at(-1);
  t.ok(seen, 'the product app got the request');
  const xfcc = String(seen?.headers['x-forwarded-client-cert']);
  t.match(xfcc, /^By=spiffe:\/\/cluster\.local\/ns\/my-app\/sa\/product-service;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/istio-system\/sa\/istio-ingressgateway$/);
});

t.test('a forged XFCC from the client is replaced, never forwarded', async (t) => {
  await get(mesh.ports.ingress, '/health/ping', { host: 'shop.example.com', 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/my-app/sa/order-service' });
  const xfcc = String(mesh.productApp.received.at(-1)?.headers['x-forwarded-client-cert']);
  t.notMatch(xfcc, /sa\/order-service/);
});

t.test('the seed AuthorizationPolicy: the ingress may read /health/* but not /api/products/*', async (t) => {
  const before = mesh.productApp.received.length;
  const denied = await get(mesh.ports.ingress, '/api/products/1', { host: 'shop.example.com' });
  t.equal(denied.status, 403);
  t.equal(denied.body, 'RBAC: access denied\n');
  t.equal(mesh.productApp.received.length, before, 'the app never saw the denied request');
});

t.test('`meshgate explain --workload` answers what the running sidecar answers', async (t) => {
  const ingress = 'cluster.local/ns/istio-system/sa/istio-ingressgateway';
  for (const path of ['/api/products/1', '/health/ping']) {
    const live = await get(mesh.ports.ingress, path, { host: 'shop.example.com' });
    const explained = await runCli(['explain', '-c', mesh.config.file, '--workload', 'my-app/product', '--principal', ingress, '--method', 'GET', '--path', path]);
    t.equal(explained.code, 0, explained.stderr);
    t.equal(explained.stdout.split('\n')[0]?.split(' ')[0], live.status === 403 ? 'DENY' : 'ALLOW', `${path}: explain = the sidecar's ${live.status}`);
  }
});

t.test('logs: the mTLS inbound listener says https, and no line repeats a key', async (t) => {
  const listening = mesh.productSidecar.rawLogs.filter((line) => line.includes('Server listening at'));
  t.ok(listening.some((line) => line.includes(`Server listening at https://127.0.0.1:${mesh.ports.productInbound}`)), listening.join(''));
  for (const gateway of [mesh.ingress, mesh.productSidecar, mesh.orderSidecar]) {
    for (const line of gateway.rawLogs) {
      const keys = [...line.matchAll(/[{,]"([^"]+)":/g)].map((match) => match[1]);
      const topLevel = Object.keys(JSON.parse(line) as object);
      t.equal(keys.filter((key) => topLevel.includes(key ?? '')).length, new Set(keys.filter((key) => topLevel.includes(key ?? ''))).size, `no duplicate key: ${line.slice(0, 200)}`);
    }
  }
});

t.test('order-service calls product-service through its sidecar: Host header, HTTP proxy form and Dapr invoke', async (t) => {
  const viaHost = await get(mesh.ports.orderOutbound, '/api/products/7', { host: 'product-service' });
  t.equal(viaHost.status, 200, viaHost.body);
  t.equal(JSON.parse(viaHost.body).url, '/api/products/7');

  const viaProxy = await new Promise<Reply>((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port: mesh.ports.orderOutbound, path: 'http://product-service/api/products/8', agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
  t.equal(viaProxy.status, 200, viaProxy.body);
  t.equal(JSON.parse(viaProxy.body).url, '/api/products/8');

  const viaDapr = await get(mesh.ports.orderOutbound, '/v1.0/invoke/product-service/method/api/products/9?x=1');
  t.equal(viaDapr.status, 200, viaDapr.body);
  const seen = JSON.parse(viaDapr.body) as { url: string; headers: Record<string, string> };
  t.equal(seen.url, '/api/products/9?x=1');
  t.match(seen.headers['x-forwarded-client-cert'], /URI=spiffe:\/\/cluster\.local\/ns\/my-app\/sa\/order-service$/, 'the product app sees the order-service identity');
});

t.test("a workload's own AuthorizationPolicy guards what it receives, not the calls its app makes through its sidecar (Istio)", async (t) => {
  // product-service's ALLOW policy admits only order-service to /api/products/* and anyone to /health/*:
  // applied to product's outbound listener, it would refuse product's own call to /orders/….
  const outbound = await get(mesh.ports.productOutbound, '/orders/5', { host: 'order-service' });
  t.equal(outbound.status, 200, outbound.body);
  t.equal(JSON.parse(outbound.body).url, '/orders/5', 'the call reached order-service');
  const inbound = await get(mesh.ports.ingress, '/api/products/5');
  t.equal(inbound.status, 403, 'the same policy still denies the ingress on product’s inbound listener');
});

t.test('STRICT: plaintext straight to the inbound port is refused and the app never sees it', async (t) => {
  const before = mesh.productApp.received.length;
  await t.rejects(get(mesh.ports.productInbound, '/health/ping'), 'the connection is closed');
  t.equal(mesh.productApp.received.length, before);
  t.ok(
    mesh.productSidecar.logs.some((line) => line.msg === 'plaintext connection refused: PeerAuthentication mode is STRICT'),
    'the sidecar says why',
  );
});

t.test('a valid mesh certificate is accepted directly on the inbound port', async (t) => {
  const order = await mesh.pki.issue('my-app', 'order-service');
  const reply = await mtlsGet(mesh.ports.productInbound, '/api/products/3', order, mesh.pki.ca.certPath);
  t.equal(reply.status, 200, reply.body);
});

t.test('bad client certificates are refused at the handshake or denied; the app never sees them', async (t) => {
  const bad = mesh.pki.badCerts;
  const cases: [string, CertFiles | null][] = [
    ['no client certificate', null],
    ['another CA', bad.otherCa],
    ['expired', bad.expired],
    ['no SPIFFE ID', bad.noSpiffe],
    ['two URI SANs', bad.twoUriSans],
    ['wrong trust domain', bad.wrongTrustDomain],
  ];
  for (const [name, cert] of cases) {
    const before = mesh.productApp.received.length;
    // /health/* is open to any caller, so only the identity check can stop these.
    const outcome = await mtlsGet(mesh.ports.productInbound, '/health/ping', cert, mesh.pki.ca.certPath).then(
      (reply) => `status ${reply.status}`,
      (error: Error) => `refused: ${error.message}`,
    );
    t.match(outcome, /^refused/, `${name}: ${outcome}`);
    t.equal(mesh.productApp.received.length, before, `${name}: the app never saw it`);
  }
});

t.test('a sidecar whose app is down answers 503 with a reason and stays up', async (t) => {
  await mesh.productApp.close();
  const reply = await get(mesh.ports.orderOutbound, '/api/products/1', { host: 'product-service' });
  t.equal(reply.status, 503);
  t.match(reply.body, /upstream connect error|connection failure/);
  t.ok(reply.headers['x-meshgate-reason'], 'the reason header is set');
  const ready = await get(mesh.ports.admins[1] as number, '/ready');
  t.equal(ready.status, 200, 'the product sidecar is still ready');
  // The product sidecar could not reach its app: its inbound cluster counts the failure and the retries.
  const metrics = await get(mesh.ports.admins[1] as number, '/stats/prometheus');
  t.match(metrics.body, /meshgate_upstream_connect_errors_total\{cluster="inbound\|\d+\|\|"\} [1-9]/, 'the connect failure is counted');
  t.match(metrics.body, /meshgate_upstream_retries_total\{cluster="inbound\|\d+\|\|"\} [1-9]/, 'and the retries of the inbound default policy');
});
