/**
 * Issue 19, first part: no request loops through its own sidecar. Each shape that looped (an unknown
 * Dapr path, `dapr-app-id` naming the sidecar's own app, a Host naming the sidecar itself, two sidecars
 * whose routes point at each other) is answered at once, and the number of requests the proxies
 * handled stays bounded.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import t from 'tap';
import { startMesh } from '../e2e-mesh/mesh-fixture.js';
import type { Mesh } from '../e2e-mesh/mesh-fixture.js';
import { HOPS_HEADER, MAX_PROXY_HOPS } from '../../gateway/proxy/loop-guard.js';

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

function request(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Requests the proxies answered so far; the in-process proxies of this mesh share one metrics registry. */
async function requestsHandled(adminPort: number): Promise<number> {
  const metrics = await request(adminPort, '/metrics');
  let total = 0;
  for (const line of metrics.body.split('\n')) {
    if (line.startsWith('istio_requests_total{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Generous for a loaded machine, yet far below the 8.6 s the looping request took. */
const FAST_MS = 2000;

const LOOP_YAML = `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ping, namespace: my-app }
spec:
  hosts: [ping.loop.test]
  location: MESH_EXTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1 }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ping, namespace: my-app }
spec:
  hosts: [ping.loop.test]
  http:
    - match: [{ sourceLabels: { app: order-service } }]
      route: [{ destination: { host: to-product.loop.test } }]
    - route: [{ destination: { host: to-order.loop.test } }]
`;

function loopTargets(mesh: { ports: { productOutbound: number; orderOutbound: number } }): string {
  return `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: to-product, namespace: my-app }
spec:
  hosts: [to-product.loop.test]
  location: MESH_EXTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${mesh.ports.productOutbound} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: to-order, namespace: my-app }
spec:
  hosts: [to-order.loop.test]
  location: MESH_EXTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${mesh.ports.orderOutbound} } }]
`;
}

let mesh: Mesh;

t.before(async () => {
  mesh = await startMesh({ extraYaml: LOOP_YAML });
});
t.teardown(() => mesh.close());

t.test('unknown Dapr API paths get a Dapr error at once, never a forward', async (t) => {
  const before = mesh.orderApp.received.length + mesh.productApp.received.length;
  for (const path of ['/v1.0/healthzz', '/v1.0/nothing/here?x=1', '/v1.0-alpha1/state/s/query', '/v1.0/invoke/product-service']) {
    const answer = await request(mesh.ports.orderOutbound, path);
    t.equal(answer.status, 404, path);
    t.match(answer.headers['content-type'], /^application\/json/);
    t.match(JSON.parse(answer.body), { errorCode: /^ERR_/, message: String }, `${path}: Dapr's error body`);
    t.ok(answer.ms < FAST_MS, `${path} answered in ${answer.ms.toFixed(0)} ms`);
  }
  const health = await request(mesh.ports.orderOutbound, '/v1.0/healthz');
  t.equal(health.status, 204, 'the health check is served by the sidecar itself');
  t.equal(mesh.orderApp.received.length + mesh.productApp.received.length, before, 'no app saw any of them');
});

t.test("dapr-app-id naming the sidecar's own app (no service) is a Dapr error; a service's app id is invoked", async (t) => {
  const own = await request(mesh.ports.orderOutbound, '/checkout/1', { 'dapr-app-id': 'order' });
  t.equal(own.status, 500);
  t.match(JSON.parse(own.body), { errorCode: 'ERR_DIRECT_INVOKE', message: /id: order/ });
  t.ok(own.ms < FAST_MS);
  const unknown = await request(mesh.ports.orderOutbound, '/v1.0/invoke/nobody/method/x');
  t.equal(unknown.status, 500, 'an unknown app id is an immediate error, not a 503 after retries');
  t.match(JSON.parse(unknown.body), { errorCode: 'ERR_DIRECT_INVOKE' });
  t.ok(unknown.ms < FAST_MS);

  const received = mesh.productApp.received.length;
  const viaHeader = await request(mesh.ports.orderOutbound, '/api/products/7?x=1', { 'dapr-app-id': 'product-service.my-app' });
  t.equal(viaHeader.status, 200);
  t.equal(mesh.productApp.received.length, received + 1);
  const seen = mesh.productApp.received.at(-1);
  t.equal(seen?.url, '/api/products/7?x=1', 'the whole path and query are the method');
  t.equal(seen?.headers['dapr-app-id'], undefined, 'the header is removed before forwarding');
  t.equal(seen?.headers[HOPS_HEADER], '2', 'each proxy on the way counted itself');
});

t.test('a Host naming the sidecar itself is refused, not passed through back in', async (t) => {
  for (const host of [`127.0.0.1:${mesh.ports.orderOutbound}`, `localhost:${mesh.ports.orderOutbound}`]) {
    const before = await requestsHandled(mesh.ports.admins[2] as number);
    const answer = await request(mesh.ports.orderOutbound, '/anything', { host });
    t.equal(answer.status, 508, host);
    t.match(answer.headers['x-meshgate-reason'], /destination_is_own_listener/);
    t.ok(answer.ms < FAST_MS);
    t.equal((await requestsHandled(mesh.ports.admins[2] as number)) - before, 1, 'the proxies handled exactly this one request');
  }
});

t.test('two sidecars routing to each other stop at the hop limit', async (t) => {
  await mesh.config.write(`${await readFile(mesh.config.file, 'utf8')}${loopTargets(mesh)}`);
  const reloads = await Promise.all([2, 1].map((i) => request(mesh.ports.admins[i] as number, '/reload', {}, 'POST')));
  t.same(reloads.map((r) => r.status), [200, 200], 'both sidecars took the looping routes');
  const before = await requestsHandled(mesh.ports.admins[1] as number);
  const answer = await request(mesh.ports.orderOutbound, '/health/loop', { host: 'ping.loop.test' });
  t.equal(answer.status, 508, `${answer.headers['x-meshgate-reason'] ?? ''} ${answer.body}`);
  t.ok(answer.ms < FAST_MS * 2, `answered in ${answer.ms.toFixed(0)} ms`);
  const after = await requestsHandled(mesh.ports.admins[1] as number);
  t.equal(after - before, MAX_PROXY_HOPS + 1, 'one request per hop up to the limit, then the loop ends');
});

t.test('the hop limit holds on the ingress too', async (t) => {
  const answer = await request(mesh.ports.ingress, '/api/products/1', { [HOPS_HEADER]: String(MAX_PROXY_HOPS) });
  t.equal(answer.status, 508);
  t.match(answer.body, /loop detected/);
  const malformed = await request(mesh.ports.ingress, '/api/products/1', { [HOPS_HEADER]: 'many' });
  t.equal(malformed.status, 508, 'a malformed count fails closed');
});
