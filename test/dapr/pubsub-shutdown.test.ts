/**
 * Two sidecars in one process (as in the demo and these tests), each publishing to and subscribed on
 * its own Redis Streams topic: stopping one closes its subscriptions and brokers only — the other keeps
 * publishing and delivering.
 */
import http from 'node:http';
import t from 'tap';
import { Pool } from 'undici';
import { allocateMeshPorts, meshYaml } from '../e2e-mesh/mesh-fixture.js';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { startPrivateRedis } from '../helpers/redis-server.js';

const DEADLINE_MS = 20_000;

interface App {
  readonly port: number;
  readonly received: string[];
  waitFor(text: string): Promise<void>;
  close(): Promise<void>;
}

async function startApp(): Promise<App> {
  const received: string[] = [];
  const waiters = new Map<string, () => void>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      if (request.url === '/dapr/subscribe') return response.end('[]');
      const { data } = JSON.parse(Buffer.concat(chunks).toString()) as { data: string };
      received.push(data);
      waiters.get(data)?.();
      response.end('{"status":"SUCCESS"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    received,
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        if (received.includes(text)) return resolve();
        const timer = setTimeout(() => reject(new Error(`"${text}" not delivered within ${DEADLINE_MS} ms`)), DEADLINE_MS);
        waiters.set(text, () => {
          clearTimeout(timer);
          resolve();
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const redis = await startPrivateRedis();
t.teardown(() => redis.dispose());
const [productApp, orderApp] = [await startApp(), await startApp()];
t.teardown(async () => {
  await productApp.close();
  await orderApp.close();
});
const ports = await allocateMeshPorts();
const subscription = (app: string) => `
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: ${app}-own, namespace: my-app }
spec: { pubsubname: events, topic: ${app}-topic, routes: { default: /events } }
scopes: [${app}]
`;
const config = await configDir(
  meshYaml(await makeTestPki(), ports, { product: productApp.port, order: orderApp.port }, {
    extraYaml: `
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: events, namespace: my-app }
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - { name: redisHost, value: "127.0.0.1:${redis.port}" }
${subscription('product')}${subscription('order')}`,
  }),
);
t.teardown(() => config.remove());

const product = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product', adminAddress: `127.0.0.1:${await freePort()}` });
const order = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${await freePort()}` });
let orderStopped = false;
t.teardown(async () => {
  await product.stop();
  if (!orderStopped) await order.stop();
});
const productClient = new Pool(`http://127.0.0.1:${ports.productOutbound}`);
const orderClient = new Pool(`http://127.0.0.1:${ports.orderOutbound}`);
t.teardown(async () => {
  await productClient.close();
  await orderClient.close();
});

async function publish(client: Pool, topic: string, text: string): Promise<number> {
  const response = await client.request({ method: 'POST', path: `/v1.0/publish/events/${topic}`, headers: { 'content-type': 'text/plain' }, body: text });
  await response.body.dump();
  return response.statusCode;
}

/** Publishes until the first event arrives: the subscription's consumer group is created asynchronously. */
async function untilSubscribed(client: Pool, topic: string, app: App): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  for (let attempt = 0; app.received.length === 0; attempt++) {
    if (Date.now() > deadline) throw new Error(`no delivery on ${topic} within ${DEADLINE_MS} ms`);
    await publish(client, topic, `probe-${attempt}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

t.test('stopping one sidecar leaves the other sidecar of the process publishing and delivering', async (t) => {
  await untilSubscribed(productClient, 'product-topic', productApp);
  await untilSubscribed(orderClient, 'order-topic', orderApp);

  await order.stop();
  orderStopped = true;

  t.equal(await publish(productClient, 'product-topic', 'after-the-other-stopped'), 204, 'the remaining sidecar still publishes');
  await productApp.waitFor('after-the-other-stopped');
  t.ok(productApp.received.includes('after-the-other-stopped'), 'and still delivers to its app');
  t.notOk(orderApp.received.includes('after-the-other-stopped'), 'the stopped sidecar delivered nothing more');
});
