/**
 * The state API through a meshgate sidecar, driven by the official JS SDK (@dapr/dapr, HTTP mode) and
 * by raw HTTP for bad input, against a private redis-server: the seed's sequence with its Component
 * documents as written (only the addresses changed), Dapr's Redis layout and concurrency rules, TTL,
 * transactions, bulk get, the in-memory store, metadata, API tokens, and a Redis outage that fails
 * state calls at once while invocation keeps working.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { CommunicationProtocolEnum, DaprClient, HttpMethod, StateConcurrencyEnum } from '@dapr/dapr';
import { Redis } from 'ioredis';
import t from 'tap';
import { startMesh } from '../e2e-mesh/mesh-fixture.js';
import type { Mesh } from '../e2e-mesh/mesh-fixture.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import type { PrivateRedis } from '../helpers/redis-server.js';

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

function call(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const typed = body === undefined ? headers : { 'content-type': 'application/json', ...headers };
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: typed, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text, ms: performance.now() - started }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function daprErrorOf(answer: Answer): { errorCode: string; message: string } {
  return JSON.parse(answer.body) as { errorCode: string; message: string };
}

/** The seed's two Components, as written in its Go example; only the addresses changed. */
function seedComponents(redisPort: number): string {
  return `
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: order-store
  namespace: my-app
spec:
  type: state.redis
  version: v1
  metadata:
    - name: redisHost
      value: 127.0.0.1:${redisPort}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: order-pubsub
  namespace: my-app
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
    - name: host
      value: amqp://127.0.0.1:5672
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: scratch, namespace: my-app }
spec: { type: state.in-memory, version: v1, metadata: [{ name: keyPrefix, value: name }] }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: product-only, namespace: my-app }
spec: { type: state.in-memory }
scopes: [product]
`;
}

/** Generous for a loaded machine; the point is "not after retries and timeouts". */
const FAST_MS = 2000;

let redis: PrivateRedis;
let mesh: Mesh;
let raw: Redis;
let client: DaprClient;
let port: number;

t.before(async () => {
  redis = await startPrivateRedis();
  mesh = await startMesh({ extraYaml: seedComponents(redis.port) });
  port = mesh.ports.orderOutbound;
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // The outage test stops the server under this client too.
  raw.on('error', () => undefined);
  await raw.connect();
  client = new DaprClient({ daprHost: '127.0.0.1', daprPort: String(port), communicationProtocol: CommunicationProtocolEnum.HTTP });
});

t.teardown(async () => {
  await client.stop();
  raw.disconnect();
  await mesh.close();
  await redis.dispose();
});

t.test("the seed's sequence through the JS SDK: invoke product-service, save order-<id> in order-store, read it back", async (t) => {
  await client.start();
  const product = (await client.invoker.invoke('product-service', 'api/products/456', HttpMethod.GET)) as { upstream: string; url: string };
  t.equal(product.upstream, 'product-service');
  t.equal(product.url, '/api/products/456');
  const order = { id: 'order-123', productId: 'product-456', quantity: 2, total: 39.8 };
  const saved = await client.state.save('order-store', [{ key: `order-${order.id}`, value: order }]);
  t.same(saved, {}, 'saved without error');
  t.same(await client.state.get('order-store', `order-${order.id}`), order);
  const stored = await raw.hgetall('order||order-order-123');
  t.same(stored, { data: '{"id":"order-123","productId":"product-456","quantity":2,"total":39.8}', version: '1' }, "Dapr's layout: one hash, data and version, key prefixed with the app id");
});

t.test('get: 200 with the bytes and ETag, 204 for a missing key; save bumps the version', async (t) => {
  await client.state.save('order-store', [{ key: 'k', value: { b: 1, a: [true, null] } }]);
  const first = await call(port, 'GET', '/v1.0/state/order-store/k');
  t.equal(first.status, 200);
  t.equal(first.body, '{"a":[true,null],"b":1}', "the value's JSON text, keys sorted as Go writes them");
  t.equal(first.headers.etag, '1');
  t.match(first.headers['content-type'], /^application\/json/);
  await client.state.save('order-store', [{ key: 'k', value: 'text' }]);
  const second = await call(port, 'GET', '/v1.0/state/order-store/k');
  t.same([second.body, second.headers.etag], ['"text"', '2']);
  const missing = await call(port, 'GET', '/v1.0/state/order-store/nope');
  t.same([missing.status, missing.body], [204, '']);
  t.equal(await client.state.get('order-store', 'nope'), '', 'the SDK reads a 204 as ""');
});

t.test('ETags: first-write, last-write, mismatch 409, invalid 400, delete with If-Match', async (t) => {
  const save = (items: unknown) => call(port, 'POST', '/v1.0/state/order-store', JSON.stringify(items));
  t.equal((await save([{ key: 'e', value: 1 }])).status, 204);
  const mismatch = await save([{ key: 'e', value: 2, etag: '7' }]);
  t.equal(mismatch.status, 409);
  t.match(daprErrorOf(mismatch), { errorCode: 'ERR_STATE_SAVE', message: /etag mismatch/ });
  t.equal((await save([{ key: 'e', value: 2, etag: '1' }])).status, 204, 'the current ETag wins');
  t.equal((await save([{ key: 'e', value: 3, etag: '1', options: { concurrency: 'last-write' } }])).status, 204, 'last-write ignores the ETag');
  const invalid = await save([{ key: 'e', value: 4, etag: 'not-a-number' }]);
  t.equal(invalid.status, 400);
  t.equal(daprErrorOf(invalid).errorCode, 'ERR_STATE_SAVE');

  t.equal((await save([{ key: 'fw', value: 1, options: { concurrency: 'first-write' } }])).status, 204);
  t.equal((await save([{ key: 'fw', value: 2 }])).status, 409, 'an item written first-write refuses a write without ETag');
  t.equal((await save([{ key: 'fw', value: 2, etag: '1' }])).status, 204);
  t.equal(await raw.hget('order||fw', 'first-write'), '0');

  const wrongDelete = await call(port, 'DELETE', '/v1.0/state/order-store/e', undefined, { 'if-match': '1' });
  t.equal(wrongDelete.status, 409);
  t.equal(daprErrorOf(wrongDelete).errorCode, 'ERR_STATE_DELETE');
  const current = (await call(port, 'GET', '/v1.0/state/order-store/e')).headers.etag as string;
  t.equal((await call(port, 'DELETE', '/v1.0/state/order-store/e', undefined, { 'if-match': current })).status, 204);
  t.equal(await raw.exists('order||e'), 0);
  const sdkDelete = await client.state.delete('order-store', 'fw', { etag: '2', concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE });
  t.same(sdkDelete, {}, 'the SDK deletes with If-Match');
  t.equal(await raw.exists('order||fw'), 0);
});

t.test('TTL: metadata.ttlInSeconds expires the key in Redis, a later save without it keeps the expiry, ≤ 0 persists', async (t) => {
  t.equal((await call(port, 'POST', '/v1.0/state/order-store?metadata.ttlInSeconds=100', JSON.stringify([{ key: 'ttl', value: 1 }]))).status, 204);
  t.ok((await raw.ttl('order||ttl')) > 90);
  await client.state.save('order-store', [{ key: 'ttl', value: 3 }]);
  t.ok((await raw.ttl('order||ttl')) > 90, 'a save without TTL keeps the expiry');
  await client.state.save('order-store', [{ key: 'ttl', value: 2, metadata: { ttlInSeconds: '0' } }]);
  t.equal(await raw.ttl('order||ttl'), -1, 'persisted');
  const bad = await call(port, 'POST', '/v1.0/state/order-store?metadata.ttlInSeconds=soon', JSON.stringify([{ key: 'ttl', value: 1 }]));
  t.equal(bad.status, 400);
});

t.test('bulk get and transactions', async (t) => {
  await client.state.save('order-store', [
    { key: 'b1', value: { n: 1 } },
    { key: 'b2', value: 'two' },
  ]);
  const bulk = await client.state.getBulk('order-store', ['b1', 'b2', 'missing']);
  t.same(bulk, [
    { key: 'b1', data: { n: 1 }, etag: '1' },
    { key: 'b2', data: 'two', etag: '1' },
    { key: 'missing' },
  ]);
  await client.state.transaction('order-store', [
    { operation: 'upsert', request: { key: 't1', value: { x: 1 } } },
    { operation: 'delete', request: { key: 'b1' } },
  ]);
  t.same(await client.state.get('order-store', 't1'), { x: 1 });
  t.equal(await raw.exists('order||b1'), 0);
  const badOperation = await call(port, 'POST', '/v1.0/state/order-store/transaction', JSON.stringify({ operations: [{ operation: 'merge', request: { key: 'x' } }] }));
  t.equal(badOperation.status, 400);
  t.equal(daprErrorOf(badOperation).errorCode, 'ERR_NOT_SUPPORTED_STATE_OPERATION');
  const conflict = await call(port, 'POST', '/v1.0/state/order-store/transaction', JSON.stringify({ operations: [{ operation: 'upsert', request: { key: 't1', value: 2, etag: '9' } }] }));
  t.equal(conflict.status, 500);
  t.equal(daprErrorOf(conflict).errorCode, 'ERR_STATE_TRANSACTION');
  t.equal((await call(port, 'POST', '/v1.0/state/order-store/transaction', JSON.stringify({ operations: [] }))).status, 204);
});

t.test('bad input answers with Dapr errors', async (t) => {
  const cases: [string, string, string | Buffer, number, string][] = [
    ['malformed JSON', '/v1.0/state/order-store', '[{"key": "a", ', 400, 'ERR_MALFORMED_REQUEST'],
    ['not an array', '/v1.0/state/order-store', '{"key": "a"}', 400, 'ERR_MALFORMED_REQUEST'],
    ['missing key', '/v1.0/state/order-store', '[{"value": 1}]', 400, 'ERR_MALFORMED_REQUEST'],
    ['a key containing ||', '/v1.0/state/order-store', '[{"key": "a||b", "value": 1}]', 400, 'ERR_MALFORMED_REQUEST'],
    ['unknown store', '/v1.0/state/nope', '[{"key": "a", "value": 1}]', 400, 'ERR_STATE_STORE_NOT_FOUND'],
    ['a store scoped to another app', '/v1.0/state/product-only', '[{"key": "a", "value": 1}]', 400, 'ERR_STATE_STORE_NOT_FOUND'],
    ['bulk without keys', '/v1.0/state/order-store/bulk', '{"keys": "a"}', 400, 'ERR_MALFORMED_REQUEST'],
    ['oversized body', '/v1.0/state/order-store', Buffer.alloc(5 * 1024 * 1024, 0x20), 413, 'ERR_MALFORMED_REQUEST'],
  ];
  for (const [what, path, body, status, code] of cases) {
    const answer = await call(port, 'POST', path, body);
    t.equal(answer.status, status, what);
    t.equal(daprErrorOf(answer).errorCode, code, what);
  }
  const keyGet = await call(port, 'GET', '/v1.0/state/order-store/a%7C%7Cb');
  t.equal(keyGet.status, 400, 'get of a key containing ||');
  const save = await client.state.save('nope', [{ key: 'a', value: 1 }]);
  t.match(save, { error: Error }, 'the SDK reports the unknown store');
  // The order sidecar serves a pub/sub component, so it asks its app for GET /dapr/subscribe: that one is Dapr's own call.
  const reachedApps = [...mesh.orderApp.received.filter((r) => r.url !== '/dapr/subscribe'), ...mesh.productApp.received.filter((r) => r.url.startsWith('/v1.0'))];
  t.same(reachedApps.map((r) => r.url), [], 'no Dapr call reached an app');
});

t.test('the in-memory store, its key prefix, and metadata', async (t) => {
  await client.state.save('scratch', [{ key: 'm', value: { in: 'memory' } }]);
  t.same(await client.state.get('scratch', 'm'), { in: 'memory' });
  t.equal(await raw.exists('scratch||m'), 0, 'not in Redis');
  t.equal((await call(port, 'POST', '/v1.0/state/scratch', JSON.stringify([{ key: 'm', value: 1, etag: '5' }]))).status, 409, 'same ETag rules as Redis');
  const metadata = await client.metadata.get();
  t.equal(metadata.id, 'order');
  t.same(
    metadata.components.map((c) => [c.name, c.type, c.capabilities]),
    [
      ['order-store', 'state.redis', ['ETAG', 'TRANSACTIONAL', 'TTL']],
      ['order-pubsub', 'pubsub.rabbitmq', []],
      ['scratch', 'state.in-memory', ['ETAG', 'TRANSACTIONAL', 'TTL']],
    ],
    'the loaded components (the scoped store belongs to product)',
  );
  await client.metadata.set('team', 'orders');
  t.equal((await client.metadata.get()).extended.team, 'orders');
  const answer = JSON.parse((await call(port, 'GET', '/v1.0/metadata')).body) as { appConnectionProperties?: unknown };
  t.same(answer.appConnectionProperties, { port: mesh.orderApp.port, protocol: 'http', channelAddress: '127.0.0.1' }, "the app channel: the Sidecar's inbound defaultEndpoint");
});

t.test('Redis down: state calls fail at once with Dapr errors, invocation and health carry on; back up: state works again', async (t) => {
  await redis.stop();
  const get = await call(port, 'GET', '/v1.0/state/order-store/k');
  t.equal(get.status, 500);
  t.equal(daprErrorOf(get).errorCode, 'ERR_STATE_GET');
  t.ok(get.ms < FAST_MS, `failed in ${get.ms.toFixed(0)} ms`);
  const save = await call(port, 'POST', '/v1.0/state/order-store', JSON.stringify([{ key: 'k', value: 1 }]));
  t.same([save.status, daprErrorOf(save).errorCode], [500, 'ERR_STATE_SAVE']);
  t.ok(save.ms < FAST_MS);
  t.equal((await call(port, 'GET', '/v1.0/healthz')).status, 204, 'the sidecar stays healthy');
  t.equal((await call(port, 'GET', '/v1.0/invoke/product-service/method/api/products/1')).status, 200, 'invocation is unaffected');
  await redis.start();
  // The restarted server is empty (no persistence): "back" is a 204 for the key instead of a 500.
  const deadline = Date.now() + 15_000;
  let back = await call(port, 'GET', '/v1.0/state/order-store/k');
  while (back.status === 500 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    back = await call(port, 'GET', '/v1.0/state/order-store/k');
  }
  t.equal(back.status, 204, 'reconnected by itself');
  await client.state.save('order-store', [{ key: 'k', value: 'again' }]);
  t.equal(await client.state.get('order-store', 'k'), 'again');
});

t.test('Components hot-reload and show in /config_dump with their scopes', async (t) => {
  const admin = mesh.ports.admins[2] as number;
  const dump = JSON.parse((await call(admin, 'GET', '/config_dump')).body) as { resources: { kind: string; name: string; scopes?: string[]; source: string }[] };
  const scoped = dump.resources.find((r) => r.kind === 'Component' && r.name === 'product-only');
  t.same(scoped?.scopes, ['product']);
  t.match(scoped?.source, /mesh\.yaml:\d+:\d+$/);
  const original = await readFile(mesh.config.file, 'utf8');
  await mesh.config.write(`${original}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: late, namespace: my-app }
spec: { type: state.in-memory }
`);
  t.equal((await call(admin, 'POST', '/reload')).status, 200);
  t.same(await client.state.save('late', [{ key: 'a', value: 1 }]), {}, 'a Component added by a reload serves at once');
  await mesh.config.write(original);
  t.equal((await call(admin, 'POST', '/reload')).status, 200);
  t.equal((await call(port, 'GET', '/v1.0/state/late/a')).status, 400, 'and is gone after it is removed');
  t.equal((await call(port, 'GET', '/v1.0/state/order-store/k')).status, 200, 'unchanged stores keep serving');
});

t.test('DAPR_API_TOKEN: every call but the health checks needs dapr-api-token, which is not forwarded', async (t) => {
  process.env.DAPR_API_TOKEN = 'secret-token';
  t.teardown(() => {
    delete process.env.DAPR_API_TOKEN;
  });
  await mesh.config.write(`${await readFile(mesh.config.file, 'utf8')}\n# token\n`);
  t.equal((await call(mesh.ports.admins[2] as number, 'POST', '/reload')).status, 200);
  const refused = await call(port, 'GET', '/v1.0/metadata');
  t.equal(refused.status, 401);
  t.equal(daprErrorOf(refused).errorCode, 'ERR_UNAUTHORIZED');
  t.equal((await call(port, 'GET', '/v1.0/invoke/product-service/method/api/products/1')).status, 401, 'invocation too');
  t.equal((await call(port, 'GET', '/v1.0/healthz')).status, 204, 'health checks are exempt');
  const withToken = await call(port, 'GET', '/v1.0/invoke/product-service/method/api/products/2', undefined, { 'dapr-api-token': 'secret-token' });
  t.equal(withToken.status, 200);
  t.equal(mesh.productApp.received.at(-1)?.headers['dapr-api-token'], undefined, 'the token stays with the sidecar');
});
