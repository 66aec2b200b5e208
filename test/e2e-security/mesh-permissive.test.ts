/**
 * Mesh security through real sidecars: PERMISSIVE accepts plaintext on the inbound port, where rules
 * that need a peer principal cannot match; REGISTRY_ONLY refuses hosts outside the registry with a reason.
 */
import t from 'tap';
import { startMesh } from '../e2e-mesh/mesh-fixture.js';
import { request } from '../e2e-ingress/support.js';

const mesh = await startMesh({ peerAuthentication: 'PERMISSIVE', outboundTrafficPolicy: 'REGISTRY_ONLY' });
t.teardown(() => mesh.close());

t.test('PERMISSIVE: plaintext to the inbound port is accepted; principal-only rules do not match it', async (t) => {
  const open = await request(mesh.ports.productInbound, '/health/ping', { host: 'product-service' });
  t.equal(open.status, 200, `a rule without principals admits plaintext: ${open.body}`);
  t.equal(mesh.productApp.received.at(-1)?.headers['x-forwarded-client-cert'], undefined, 'no peer identity is invented for plaintext');
  const before = mesh.productApp.received.length;
  const denied = await request(mesh.ports.productInbound, '/api/products/1', { host: 'product-service' });
  t.equal(denied.status, 403);
  t.equal(denied.headers['x-meshgate-reason'], 'rbac_access_denied_matched_policy[none]; ALLOW policies tried: my-app/product-service-policy', 'an ALLOW miss names the policies tried');
  t.equal(mesh.productApp.received.length, before, 'the app never saw the denied request');
  const viaMesh = await request(mesh.ports.orderOutbound, '/api/products/1', { host: 'product-service' });
  t.equal(viaMesh.status, 200, 'the same path over mesh mTLS from order-service is allowed');
});

t.test('REGISTRY_ONLY: an unknown host gets 502 with a reason and no connection is made', async (t) => {
  const reply = await request(mesh.ports.orderOutbound, '/x', { host: `127.0.0.1:${mesh.productApp.port}` });
  t.equal(reply.status, 502, reply.body);
  t.match(String(reply.headers['x-meshgate-reason']), /\S/, `reason: ${String(reply.headers['x-meshgate-reason'])}`);
  t.notOk(mesh.productApp.received.some((seen) => seen.url === '/x'), 'the loopback server was never reached');
});
