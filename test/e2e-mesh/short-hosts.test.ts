/**
 * Short host names as Istio expands them: `product-service` in a VirtualService or DestinationRule of
 * namespace my-app is product-service.my-app.svc.cluster.local, so a short VirtualService and an FQDN
 * DestinationRule (and the reverse) are one service; a short name in another namespace is another
 * service; a client sidecar may call the service by any of its Kubernetes names; metrics label it by
 * its FQDN and /config_dump shows the expanded names. ServiceEntry hosts stay as written.
 */
import http from 'node:http';
import t from 'tap';
import { renderPrometheus } from '../../plugins/metrics/index.js';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { findSamples, parseSamples } from '../observability/prom-text.js';

const PRODUCT = 'product-service.my-app.svc.cluster.local';
const INVENTORY = 'inventory.my-app.svc.cluster.local';

const pki = await makeTestPki();
const [adminPort, outboundPort] = [await freePort(), await freePort()];
const productV1 = await startUpstream((_request, response) => response.end('product v1'), 'v1');
const productV2 = await startUpstream((_request, response) => response.end('product v2'), 'v2');
const inventoryA = await startUpstream((_request, response) => response.end('inventory a'), 'a');
const inventoryB = await startUpstream((_request, response) => response.end('inventory b'), 'b');

const serviceEntry = (name: string, host: string, endpoints: readonly { port: number; version: string }[]): string => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: my-app }
spec:
  hosts: [${host}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints:
${endpoints.map((e) => `    - { address: 127.0.0.1, ports: { http: ${e.port} }, labels: { version: ${e.version} } }`).join('\n')}
`;

const yaml = `
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${adminPort}
  debugHeaders: true
  accessLog: { enabled: false }
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: my-app }
spec: { address: 127.0.0.1, labels: { app: client }, serviceAccount: client }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: my-app }
spec:
  workloadSelector: { labels: { app: client } }
  egress: [{ port: { number: ${outboundPort}, protocol: HTTP, name: http }, bind: 127.0.0.1, hosts: ["*/*"] }]
${serviceEntry('product-service', PRODUCT, [{ port: productV1.port, version: 'v1' }, { port: productV2.port, version: 'v2' }])}
${serviceEntry('inventory', INVENTORY, [{ port: inventoryA.port, version: 'a' }, { port: inventoryB.port, version: 'b' }])}
---
# Short VirtualService, FQDN DestinationRule: one service, so the subset exists.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: product-service, namespace: my-app }
spec:
  hosts: [product-service]
  http: [{ name: canary, route: [{ destination: { host: product-service, subset: v2 } }] }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: product-service, namespace: my-app }
spec:
  host: ${PRODUCT}
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---
# Short DestinationRule for a service called without a VirtualService: its policy applies.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: inventory, namespace: my-app }
spec:
  host: inventory
  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }
---
# The same short name in another namespace is another service (product-service.storefront.svc.cluster.local).
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: catalog, namespace: storefront }
spec:
  hosts: [catalog]
  http: [{ name: elsewhere, route: [{ destination: { host: product-service } }] }]
`;

const dir = await configDir(yaml);
const sidecar = await startGateway(dir.file, { mode: 'sidecar', workload: 'my-app/client', adminAddress: `127.0.0.1:${adminPort}` });
t.teardown(async () => {
  await sidecar.stop();
  await Promise.all([productV1, productV2, inventoryA, inventoryB].map((upstream) => upstream.close()));
  await dir.remove();
});

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function get(port: number, path: string, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 30_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from 127.0.0.1:${port}${path}`)));
    request.on('error', reject);
  });
}

t.test('the short and FQDN forms are one service: every Kubernetes name of it reaches the subset the short VirtualService picks', async (t) => {
  for (const host of ['product-service', 'product-service.my-app', 'product-service.my-app.svc', PRODUCT, `${PRODUCT}:80`]) {
    const reply = await get(outboundPort, '/items/1', { host });
    t.equal(reply.status, 200, `Host ${host}: ${reply.body}`);
    t.equal(reply.body, 'product v2', `Host ${host} is routed by the VirtualService`);
  }
});

t.test('a short DestinationRule applies to the service called by name without a VirtualService', async (t) => {
  const bodies = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const reply = await get(outboundPort, `/stock/${i}`, { host: i % 2 === 0 ? 'inventory' : INVENTORY, 'x-user': 'alice' });
    t.equal(reply.status, 200);
    bodies.add(reply.body);
  }
  // Without the DestinationRule the default round robin would alternate between the two endpoints.
  t.equal(bodies.size, 1, 'consistent hashing on x-user keeps alice on one endpoint, whichever name she used');
});

t.test('a short name is relative to its own resource namespace', async (t) => {
  const reply = await get(outboundPort, '/items/2', { host: 'catalog.storefront' });
  t.equal(reply.status, 503, 'product-service in storefront is not the my-app service');
  t.equal(reply.headers['x-meshgate-reason'], 'NC cluster_not_found');
  t.match(reply.body, /no upstream cluster for host "product-service\.storefront\.svc\.cluster\.local"/);
  t.match(sidecar.runtime.current().diagnostics, [
    { code: 'MG0213', namespace: 'storefront', name: 'catalog', message: /host "product-service\.storefront\.svc\.cluster\.local" is not defined/ },
  ]);
});

t.test('metrics label the service by its FQDN, whichever name the client used', async (t) => {
  const samples = parseSamples((await renderPrometheus()).body);
  const product = findSamples(samples, 'istio_requests_total', { destination_service: PRODUCT, response_code: '200' });
  t.equal(product.length, 1, 'one series for the five names');
  t.equal(product[0]?.value, 5);
  t.match(product[0]?.labels, { destination_service_name: 'product-service', destination_service_namespace: 'my-app' });
  t.same(findSamples(samples, 'istio_requests_total', { destination_service: 'product-service' }), [], 'no series under the short name');
});

t.test('/config_dump shows the expanded names; ServiceEntry hosts as written', async (t) => {
  const dump = await get(adminPort, '/config_dump', {});
  const resources = (JSON.parse(dump.body) as { resources: { kind: string; namespace: string; name: string; spec: Record<string, unknown> }[] }).resources;
  const find = (kind: string, namespace: string, name: string) => resources.find((r) => r.kind === kind && r.namespace === namespace && r.name === name)?.spec;
  t.match(find('VirtualService', 'my-app', 'product-service'), { hosts: [PRODUCT], http: [{ route: [{ destination: { host: PRODUCT, subset: 'v2' } }] }] });
  t.match(find('DestinationRule', 'my-app', 'inventory'), { host: INVENTORY });
  t.match(find('VirtualService', 'storefront', 'catalog'), {
    hosts: ['catalog.storefront.svc.cluster.local'],
    http: [{ route: [{ destination: { host: 'product-service.storefront.svc.cluster.local' } }] }],
  });
  t.match(find('ServiceEntry', 'my-app', 'inventory'), { hosts: [INVENTORY] });
});
