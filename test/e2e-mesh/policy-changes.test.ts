/**
 * Mesh behaviour that depends on policy changes and identities: ALLOW_ANY passthrough, DISABLE,
 * a STRICT → PERMISSIVE reload taking effect for new connections, and secure naming (a client
 * sidecar refuses an endpoint whose certificate is not the identity the registry expects).
 */
import t from 'tap';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { get, meshYaml, startMesh } from './mesh-fixture.js';
import type { Reply } from './mesh-fixture.js';
import { freePort, startGateway, startUpstream } from '../helpers/gateway.js';


async function adminPost(port: number, path: string): Promise<Reply> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST' });
  return { status: response.status, headers: {}, body: await response.text() };
}

t.test('ALLOW_ANY: a host outside the registry is passed through to host:port', async (t) => {
  const mesh = await startMesh({ outboundTrafficPolicy: 'ALLOW_ANY' });
  t.teardown(() => mesh.close());
  const outside = await startUpstream(undefined, 'outside');
  t.teardown(() => outside.close());
  const reply = await get(mesh.ports.orderOutbound, '/external?q=1', { host: `127.0.0.1:${outside.port}` });
  t.equal(reply.status, 200, reply.body);
  t.equal(outside.received.at(-1)?.url, '/external?q=1');
});

t.test('DISABLE: TLS is refused, plaintext is accepted; a reload to STRICT refuses plaintext for new connections', async (t) => {
  const mesh = await startMesh({ peerAuthentication: 'DISABLE' });
  t.teardown(() => mesh.close());
  const plain = await get(mesh.ports.productInbound, '/health/ping');
  t.equal(plain.status, 200, 'plaintext accepted under DISABLE');
  const order = await mesh.pki.issue('my-app', 'order-service');
  const tlsOutcome = await new Promise<string>((resolve) => {
    const request = https.get(
      { host: '127.0.0.1', port: mesh.ports.productInbound, path: '/health/ping', agent: false, ca: readFileSync(mesh.pki.ca.certPath), cert: readFileSync(order.chainPath), key: readFileSync(order.keyPath), checkServerIdentity: () => undefined },
      (response) => resolve(`status ${response.statusCode ?? 0}`),
    );
    request.on('error', (error) => resolve(`refused: ${error.message}`));
  });
  t.match(tlsOutcome, /^refused/, 'TLS refused under DISABLE');

  const yaml = meshYaml(mesh.pki, mesh.ports, { product: mesh.productApp.port, order: mesh.orderApp.port }, { peerAuthentication: 'STRICT' });
  await mesh.config.write(yaml);
  const reload = await adminPost(mesh.ports.admins[1] as number, '/reload');
  t.equal(reload.status, 200, reload.body);
  await t.rejects(get(mesh.ports.productInbound, '/health/ping'), 'plaintext refused after the reload to STRICT');
  const viaMesh = await get(mesh.ports.orderOutbound, '/health/ping', { host: 'product-service' });
  t.equal(viaMesh.status, 200, 'mesh mTLS still works');
});

t.test('secure naming: an endpoint presenting another identity than the registry expects is refused', async (t) => {
  const mesh = await startMesh();
  t.teardown(() => mesh.close());
  // An "intruder" sidecar, identity my-app/intruder, is listed as an endpoint of product-service whose
  // WorkloadEntry claims the product-service account: the order sidecar must refuse it.
  const intruderApp = await startUpstream(undefined, 'intruder');
  t.teardown(() => intruderApp.close());
  const intruderInbound = await freePort();
  const intruderAdmin = await freePort();
  const extra = `
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: impostor, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { http: ${intruderInbound} }
  labels: { app: product-service, version: v9 }
  serviceAccount: product-service
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: intruder, namespace: my-app }
spec:
  address: 127.0.0.2
  labels: { app: intruder }
  serviceAccount: intruder
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: intruder, namespace: my-app }
spec:
  workloadSelector: { labels: { app: intruder } }
  ingress: [{ port: { number: ${intruderInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${intruderApp.port}" }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: to-impostor, namespace: my-app }
spec:
  hosts: [impostor.test]
  http: [{ route: [{ destination: { host: product-service, subset: v9 } }] }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: product-subsets, namespace: my-app }
spec:
  host: product-service
  subsets: [{ name: v9, labels: { version: v9 } }]
`;
  const yaml = meshYaml(mesh.pki, mesh.ports, { product: mesh.productApp.port, order: mesh.orderApp.port }, { extraYaml: extra });
  await mesh.config.write(yaml);
  const intruder = await startGateway(mesh.config.file, { mode: 'sidecar', workload: 'my-app/intruder', adminAddress: `127.0.0.1:${intruderAdmin}` });
  t.teardown(() => intruder.stop());
  const reload = await adminPost(mesh.ports.admins[2] as number, '/reload');
  t.equal(reload.status, 200, `order sidecar reloaded: ${reload.body}`);

  const reply = await get(mesh.ports.orderOutbound, '/health/ping', { host: 'impostor.test' });
  t.equal(reply.status, 503, `refused: ${reply.body}`);
  t.match(String(reply.headers['x-meshgate-reason']), /U[FC]/, `reason ${String(reply.headers['x-meshgate-reason'])}`);
  t.equal(intruderApp.received.length, 0, 'the intruder app was never reached');
});
