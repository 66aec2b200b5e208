/**
 * Pub/sub end to end with the official SDK (`@dapr/dapr`, HTTP mode) against two meshgate sidecars:
 * order-service is a DaprServer that subscribes programmatically, and through its sidecar (DaprClient)
 * invokes product-service and publishes; product-service gets a declarative Subscription. RabbitMQ carries the seed's
 * `order-pubsub` (its Component as written, `host` metadata, only the address changed); a private
 * redis-server carries `events` (Redis Streams). Covers delivery and the app's answers, retries after a
 * delivery timeout, dead letters, declarative subscriptions, Dapr's errors for bad input, and a Redis
 * outage that fails publishes fast while invoke keeps working.
 */
import http from 'node:http';
import t from 'tap';
import { CommunicationProtocolEnum, DaprClient, DaprPubSubStatusEnum, DaprServer, HttpMethod, LogLevel } from '@dapr/dapr';
import { allocateMeshPorts, meshYaml } from '../e2e-mesh/mesh-fixture.js';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { Redis } from 'ioredis';
import { startPrivateRedis } from '../helpers/redis-server.js';
import { connectTestAmqp, deleteAmqpNames, TEST_AMQP_URL, uniqueAmqpName } from '../helpers/amqp.js';

const redis = await startPrivateRedis({ persistent: true });
t.teardown(() => redis.dispose());
const amqpAdmin = await connectTestAmqp();
// The seed's topic, suffixed so parallel runs on one broker never share an exchange.
const orderCreated = uniqueAmqpName('order-created');
t.teardown(async () => {
  await deleteAmqpNames(amqpAdmin, { queues: [`order-${orderCreated}`], exchanges: [orderCreated] });
  await amqpAdmin.close();
});

const pki = await makeTestPki();
const ports = await allocateMeshPorts();
const orderAppPort = await freePort();
const productApp = await startUpstream(undefined, 'product-service');
t.teardown(() => productApp.close());

const components = `
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: order-pubsub, namespace: my-app }
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
    - name: host
      value: "${TEST_AMQP_URL}"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: events, namespace: my-app }
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - { name: redisHost, value: "127.0.0.1:${redis.port}" }
    - { name: processingTimeout, value: "1s" }
    - { name: redeliverInterval, value: "200ms" }
    - { name: deliveryTimeout, value: "1s" }
    - { name: deliveryBackoff, value: "50ms" }
    - { name: deliveryMaxAttempts, value: "3" }
    - { name: publishingScopes, value: "order=events,slow,flaky,dropme,audit,bulk,restart" }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: audit, namespace: my-app }
spec:
  pubsubname: events
  topic: audit
  routes:
    rules: [{ match: 'event.type == "audit.important"', path: /audit/important }]
    default: /audit
scopes: [product]
`;
const config = await configDir(meshYaml(pki, ports, { product: productApp.port, order: orderAppPort }, { extraYaml: components }));
t.teardown(() => config.remove());
const productSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product', adminAddress: `127.0.0.1:${ports.admins[1]}` });
const orderSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
t.teardown(async () => {
  await productSidecar.stop();
  await orderSidecar.stop();
});

/** Everything the order app received, by topic: the event data and the headers. */
const received = new Map<string, { data: unknown; headers: Record<string, unknown> }[]>();
const record = (topic: string, data: unknown, headers: object): void => {
  const list = received.get(topic) ?? [];
  list.push({ data, headers: headers as Record<string, unknown> });
  received.set(topic, list);
};
let retriedOnce = false;
let slowCalls = 0;

// The subscriber starts AFTER its sidecar: the sidecar keeps asking GET /dapr/subscribe until it answers.
const server = new DaprServer({
  serverHost: '127.0.0.1',
  serverPort: String(orderAppPort),
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  clientOptions: { daprHost: '127.0.0.1', daprPort: String(ports.orderOutbound) },
  logger: { level: LogLevel.Error },
});
await server.pubsub.subscribe('order-pubsub', orderCreated, async (data, headers) => record('order-created', data, headers));
await server.pubsub.subscribe('events', 'events', async (data, headers) => {
  const { n } = data as { n: number };
  if (n === 7 && !retriedOnce) {
    retriedOnce = true;
    return DaprPubSubStatusEnum.RETRY;
  }
  record('events', data, headers);
  return DaprPubSubStatusEnum.SUCCESS;
});
await server.pubsub.subscribe('events', 'slow', async (data, headers) => {
  if (++slowCalls === 1) await new Promise(() => {}); // never answers: the sidecar's delivery timeout retries
  record('slow', data, headers);
});
await server.pubsub.subscribeWithOptions('events', 'dropme', {
  deadLetterTopic: 'dropped',
  callback: async () => DaprPubSubStatusEnum.DROP,
});
await server.pubsub.subscribe('events', 'dropped', async (data, headers) => record('dropped', data, headers));
let holdRestartTopic = true;
/** The messages the app refused at least once while held: each was read from the stream, so it is pending until acked. */
const refusedWhileHeld = new Set<number>();
await server.pubsub.subscribe('events', 'restart', async (data, headers) => {
  if (holdRestartTopic) {
    refusedWhileHeld.add((data as { n: number }).n);
    return DaprPubSubStatusEnum.RETRY;
  }
  record('restart', data, headers);
  return DaprPubSubStatusEnum.SUCCESS;
});
await server.start();
t.teardown(() => server.stop());

const client = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(ports.orderOutbound), communicationProtocol: CommunicationProtocolEnum.HTTP, logger: { level: LogLevel.Error } });

async function until(what: string, condition: () => boolean | Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly ms: number;
}

function call(port: number, method: string, path: string, body: Buffer | string = '', headers: Record<string, string> = {}): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text, ms: Date.now() - started }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** The order sidecar subscribed to everything the app asked for (it learns them in the background). */
async function programmaticTopics(): Promise<string[]> {
  const answer = await call(ports.orderOutbound, 'GET', '/v1.0/metadata');
  const body = JSON.parse(answer.body) as { subscriptions?: { topic: string; type: string }[] };
  return (body.subscriptions ?? []).filter((s) => s.type === 'PROGRAMMATIC').map((s) => s.topic).sort();
}
await until('programmatic subscriptions', async () => (await programmaticTopics()).length === 6);

t.test("the seed's sequence through the SDK: invoke product-service, publish order-created on RabbitMQ", async (t) => {
  const product = (await client.invoker.invoke('product-service', 'api/products/1', HttpMethod.GET)) as { url: string };
  t.equal(product.url, '/api/products/1', 'product-service answered the invocation');
  // The sidecar lists a subscription once the app asked for it; the broker binds its queue a moment
  // later, and a fanout exchange drops what no queue is bound to yet.
  await until('the order-created queue has its consumer', async () => {
    const channel = await amqpAdmin.createChannel();
    channel.on('error', () => {});
    try {
      return (await channel.checkQueue(`order-${orderCreated}`)).consumerCount > 0;
    } catch {
      return false;
    } finally {
      await channel.close().catch(() => undefined);
    }
  });
  const published = await client.pubsub.publish('order-pubsub', orderCreated, { orderId: 42, productId: 1 });
  t.same(published, {}, 'the SDK reports no error');
  await until('order-created delivered', () => (received.get('order-created')?.length ?? 0) === 1);
  const delivery = received.get('order-created')?.[0];
  t.same(delivery?.data, { orderId: 42, productId: 1 });
  t.equal(delivery?.headers['pubsubname'], 'order-pubsub', 'the pubsubname header the SDK e2e test checks');
});

t.test('Redis Streams: every message once, a RETRY answer redelivered, CloudEvent fields from the publisher', async (t) => {
  for (let n = 0; n < 50; n++) {
    const result = await client.pubsub.publish('events', 'events', { n });
    t.same(result, {}, `publish ${n}`);
  }
  await until('50 deliveries', () => (received.get('events')?.length ?? 0) >= 50);
  const seen = (received.get('events') ?? []).map((entry) => (entry.data as { n: number }).n).sort((a, b) => a - b);
  t.same(seen, Array.from({ length: 50 }, (_, n) => n), 'each n exactly once (7 after one RETRY)');
  t.ok(retriedOnce);
});

t.test('an app that never answers a delivery: the delivery times out and is retried', async (t) => {
  await client.pubsub.publish('events', 'slow', { job: 'report' });
  await until('the retry reaches the app', () => (received.get('slow')?.length ?? 0) === 1);
  t.equal(slowCalls, 2);
});

t.test('DROP sends the event to the dead-letter topic, which the app subscribed to', async (t) => {
  await client.pubsub.publish('events', 'dropme', { poison: true });
  await until('the dead letter', () => (received.get('dropped')?.length ?? 0) === 1);
  t.same(received.get('dropped')?.[0]?.data, { poison: true });
});

t.test('a declarative Subscription delivers to the product app by its routing rules', async (t) => {
  const plain = await call(ports.orderOutbound, 'POST', '/v1.0/publish/events/audit', '{"what":"login"}', { 'content-type': 'application/json' });
  t.equal(plain.status, 204);
  const important = await call(
    ports.orderOutbound,
    'POST',
    '/v1.0/publish/events/audit?metadata.cloudevent.type=audit.important',
    '{"what":"sudo"}',
    { 'content-type': 'application/json' },
  );
  t.equal(important.status, 204);
  await until('both audit events', () => productApp.received.filter((r) => r.url.startsWith('/audit')).length === 2);
  const paths = productApp.received.filter((r) => r.url.startsWith('/audit')).map((r) => r.url).sort();
  t.same(paths, ['/audit', '/audit/important']);
  t.equal(productApp.received.find((r) => r.url === '/audit')?.headers['content-type'], 'application/cloudevents+json');
});

t.test("bad input gets Dapr's errors at once", async (t) => {
  const port = ports.orderOutbound;
  const malformed = await call(port, 'POST', '/v1.0/publish/events/events', '{"id":', { 'content-type': 'application/cloudevents+json' });
  t.equal(malformed.status, 400);
  t.equal((JSON.parse(malformed.body) as { errorCode: string }).errorCode, 'ERR_PUBSUB_CLOUD_EVENTS_SER');
  const unknown = await call(port, 'POST', '/v1.0/publish/nope/events', '{}', { 'content-type': 'application/json' });
  t.equal(unknown.status, 404);
  t.equal((JSON.parse(unknown.body) as { errorCode: string }).errorCode, 'ERR_PUBSUB_NOT_FOUND');
  const forbidden = await call(port, 'POST', '/v1.0/publish/events/secret', '{}', { 'content-type': 'application/json' });
  t.equal(forbidden.status, 403, 'publishingScopes lists the topics order may publish');
  t.equal((JSON.parse(forbidden.body) as { errorCode: string }).errorCode, 'ERR_PUBSUB_FORBIDDEN');
  const oversized = await call(port, 'POST', '/v1.0/publish/events/events', Buffer.alloc(5 * 1024 * 1024, 0x61), { 'content-type': 'text/plain' });
  t.equal(oversized.status, 413);
  const badBulk = await call(port, 'POST', '/v1.0-alpha1/publish/bulk/events/bulk', '{"not":"a list"}', { 'content-type': 'application/json' });
  t.equal(badBulk.status, 400);
  const bulk = await call(
    port,
    'POST',
    '/v1.0-alpha1/publish/bulk/events/bulk',
    JSON.stringify([
      { entryId: '1', event: { a: 1 }, contentType: 'application/json' },
      { entryId: '2', event: 'text', contentType: 'text/plain' },
    ]),
    { 'content-type': 'application/json' },
  );
  t.equal(bulk.status, 204);
  t.ok([malformed, unknown, forbidden, oversized].every((answer) => answer.ms < 2000), 'answered at once');
});

t.test('Redis down: publishes fail fast with ERR_PUBSUB_PUBLISH_MESSAGE, invoke keeps working; back up, publishing works', async (t) => {
  await redis.stop('SIGKILL');
  t.teardown(() => redis.start());
  const failed = await call(ports.orderOutbound, 'POST', '/v1.0/publish/events/events', '{"n":1000}', { 'content-type': 'application/json' });
  t.equal(failed.status, 500);
  t.equal((JSON.parse(failed.body) as { errorCode: string }).errorCode, 'ERR_PUBSUB_PUBLISH_MESSAGE');
  t.ok(failed.ms < 6000, `answered in ${failed.ms} ms`);
  const product = (await client.invoker.invoke('product-service', 'api/products/1', HttpMethod.GET)) as { url: string };
  t.equal(product.url, '/api/products/1', 'the sidecar stays ready for invoke traffic');
  await redis.start();
  await until('publishing recovers', async () => (await call(ports.orderOutbound, 'POST', '/v1.0/publish/events/events', '{"n":1001}', { 'content-type': 'application/json' })).status === 204);
  await until('the subscriber recovers', () => (received.get('events') ?? []).some((entry) => (entry.data as { n: number }).n === 1001));
});

t.test('at-least-once across a sidecar restart: nothing is acked before the app says SUCCESS', async (t) => {
  const inspector = new Redis(redis.url);
  inspector.on('error', () => {});
  t.teardown(() => inspector.disconnect());
  const total = 20;
  for (let n = 0; n < total; n++) await client.pubsub.publish('events', 'restart', { n });
  // Distinct messages, not attempts: the stream is read in batches, and a batch's retries come before the next batch.
  await until('the app has refused every message', () => refusedWhileHeld.size === total);
  const pending = async (): Promise<number> => Number(((await inspector.xpending('restart', 'order')) as [number])[0]);
  t.equal(await pending(), total, 'every message still pending: the app never said SUCCESS');
  // Every building block's runtime of this process stops with it (shutdown is process-wide), as at a real restart.
  await orderSidecar.stop();
  holdRestartTopic = false;
  const restarted = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
  t.teardown(() => restarted.stop());
  await until('every message after the restart', () => new Set((received.get('restart') ?? []).map((entry) => (entry.data as { n: number }).n)).size === total, 30_000);
  await until('all acked', async () => (await pending()) === 0, 30_000);
  t.pass('delivered and acked once the app accepted them');
});
