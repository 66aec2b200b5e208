/**
 * The demo's order-service (gateway/demo/apps.ts) behind a real sidecar with the demo's in-memory
 * `order-store` and `order-pubsub` and its `order-created` Subscription: placing an order invokes
 * product-service over mTLS, saves `order-<id>`, publishes `order-created`, and the event comes back to
 * the app's subscriber route — no Redis, no RabbitMQ.
 */
import http from 'node:http';
import t from 'tap';
import { orderApp, productApp } from '../../gateway/demo/apps.js';
import { allocateMeshPorts, meshYaml } from '../e2e-mesh/mesh-fixture.js';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';

const DEADLINE_MS = 15_000;

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}${path}`, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      })
      .on('error', reject);
  });
}

const ports = await allocateMeshPorts();
const [productPort, orderPort] = [await freePort(), await freePort()];
const product = productApp('v1');
const order = orderApp(`http://127.0.0.1:${ports.orderOutbound}`);
await listen(product, productPort);
await listen(order, orderPort);
t.teardown(async () => {
  await close(product);
  await close(order);
});
const config = await configDir(
  meshYaml(await makeTestPki(), ports, { product: productPort, order: orderPort }, {
    extraYaml: `
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: order-store, namespace: my-app }
spec: { type: state.in-memory, version: v1 }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: order-pubsub, namespace: my-app }
spec: { type: pubsub.in-memory, version: v1 }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: order-created, namespace: my-app }
spec: { pubsubname: order-pubsub, topic: order-created, routes: { default: /events/order-created } }
`,
  }),
);
t.teardown(() => config.remove());
const productSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product', adminAddress: `127.0.0.1:${ports.admins[1]}` });
const orderSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
t.teardown(async () => {
  await orderSidecar.stop();
  await productSidecar.stop();
});

t.test('an order is priced by product-service, saved in order-store, published, and received by the subscriber', async (t) => {
  // The declarative subscription starts in the background after the sidecar is ready: order until one event arrives.
  const deadline = Date.now() + DEADLINE_MS;
  let placed: { status: number; body: Record<string, unknown> } | null = null;
  for (let attempt = 0; ; attempt++) {
    placed = await getJson(orderPort, `/api/orders/${42 + attempt}`);
    t.equal(placed.status, 200, `order ${42 + attempt} placed: ${JSON.stringify(placed.body)}`);
    const { received } = (await getJson(orderPort, '/api/orders/events')).body as { received: { data: { orderId: string } }[] };
    if (received.length > 0) {
      t.same(received.at(-1)?.data, { orderId: String(42 + attempt), total: 39.98 }, 'the subscriber got the order-created event with its JSON data');
      break;
    }
    if (Date.now() > deadline) throw new Error(`no order-created event within ${DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.match(placed.body, { orderId: '42', total: 39.98, product: { id: 'product-42', servedBy: 'product-service v1' }, savedAs: 'order-42', published: 'order-pubsub/order-created' });

  const saved = await getJson(orderPort, '/api/orders/42/saved');
  t.equal(saved.status, 200, 'the saved order reads back from order-store');
  t.match(saved.body, { orderId: '42', total: 39.98 });
  const missing = await getJson(orderPort, '/api/orders/never-placed/saved');
  t.equal(missing.status, 404, 'an order never placed is not in the store');
});
