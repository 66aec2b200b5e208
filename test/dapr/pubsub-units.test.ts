/**
 * The pure parts of pub/sub: CloudEvents envelopes (publish and delivery side), the reading of the
 * app's answers, the delivery engine's retries/backoff/dead letters on an injected timer, topic scopes,
 * routing rules and the parsing of `GET /dapr/subscribe`.
 */
import t from 'tap';
import { pino } from 'pino';
import { buildPublishedEvent, CloudEventError, eventForDelivery, metadataFlag } from '../../gateway/dapr/pubsub/cloudevent.js';
import type { EnvelopeClock, PublishInput } from '../../gateway/dapr/pubsub/cloudevent.js';
import { backoffMs, deliveryHandler, interpretAppAnswer } from '../../gateway/dapr/pubsub/delivery.js';
import type { AppAnswer, DeliveryTarget, RetryPolicy } from '../../gateway/dapr/pubsub/delivery.js';
import type { DeliveryRecord } from '../../gateway/pipeline/types.js';
import { compileTopicScopes } from '../../gateway/dapr/pubsub/scopes.js';
import { compileMatch, compileRoutes, RoutingRuleError } from '../../gateway/dapr/pubsub/routing.js';
import { parseProgrammaticSubscriptions } from '../../gateway/dapr/pubsub/subscriptions.js';
import { InMemoryBroker } from '../../gateway/dapr/pubsub/in-memory.js';
import type { BrokerMessage } from '../../gateway/dapr/pubsub/broker.js';
import { pubsubBlock } from '../../gateway/dapr/pubsub/index.js';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { parseConfigText } from '../../gateway/config/parse-documents.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { compileDapr } from '../../gateway/dapr/snapshot.js';
import type { ServiceRegistry } from '../../gateway/upstream/registry.js';

const silent = pino({ level: 'silent' });
const NOW = new Date('2026-12-05T12:00:00.000Z');
const clock: EnvelopeClock = { nowMs: () => NOW.getTime(), newId: () => 'fixed-id' };

function input(overrides: Partial<PublishInput>): PublishInput {
  return {
    pubsubName: 'order-pubsub',
    topic: 'order-created',
    body: Buffer.from('{"orderId":7}'),
    contentType: 'application/json',
    metadata: {},
    sourceAppId: 'order-service',
    traceparent: undefined,
    tracestate: undefined,
    ...overrides,
  };
}

const published = (overrides: Partial<PublishInput>): Record<string, unknown> => JSON.parse(buildPublishedEvent(input(overrides), clock).toString()) as Record<string, unknown>;

t.test('publish envelopes follow Dapr: JSON data parsed, text as string, binary as data_base64', async (t) => {
  t.same(published({}), {
    id: 'fixed-id',
    specversion: '1.0',
    source: 'order-service',
    type: 'com.dapr.event.sent',
    datacontenttype: 'application/json',
    time: NOW.toISOString(),
    data: { orderId: 7 },
    topic: 'order-created',
    pubsubname: 'order-pubsub',
  });
  t.same(published({ contentType: undefined, body: Buffer.from('hi') }).data, 'hi');
  t.equal(published({ contentType: undefined, body: Buffer.from('hi') }).datacontenttype, 'text/plain', 'no Content-Type means text/plain');
  const binary = published({ contentType: 'application/octet-stream', body: Buffer.from([0, 255, 1]) });
  t.equal(binary.data_base64, Buffer.from([0, 255, 1]).toString('base64'));
  t.notOk('data' in binary);
  t.equal(published({ body: Buffer.from('{broken') }).data, '{broken', 'JSON that does not parse is kept as a string');
});

t.test('a JSON body becomes the data as it came, not parsed and serialized again', async (t) => {
  const text = buildPublishedEvent(input({ body: Buffer.from('{"big": 12345678901234567890, "s": "\\u00e9"}') }), clock).toString();
  t.ok(text.endsWith(',"data":{"big": 12345678901234567890, "s": "\\u00e9"}}'), 'digits, spacing and escapes kept');
  t.same((JSON.parse(text) as { data: unknown }).data, { big: 12345678901234567000, s: 'é' });
  const notJson = buildPublishedEvent(input({ body: Buffer.from('{"a":1} trailing') }), clock).toString();
  t.equal((JSON.parse(notJson) as { data: unknown }).data, '{"a":1} trailing', 'a body that does not parse is a string');
});

t.test('the envelope written as text in one go has the bytes the general path gives, trace context and odd names included', async (t) => {
  const cases: Partial<PublishInput>[] = [
    {},
    { contentType: undefined, body: Buffer.from('hi "there"') },
    { contentType: 'application/octet-stream', body: Buffer.from([0, 255, 1]) },
    { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'k=v' },
    { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    { topic: 'a"b\\c', pubsubName: 'p\u00e9', sourceAppId: 'app\n1', contentType: 'text/plain; charset="utf-8"' },
  ];
  for (const overrides of cases) {
    const plain = buildPublishedEvent(input(overrides), clock).toString();
    // An override to the value the envelope has anyway takes the general path and changes nothing.
    const general = buildPublishedEvent(input({ ...overrides, metadata: { 'cloudevent.id': 'fixed-id' } }), clock).toString();
    t.equal(plain, general, JSON.stringify(overrides));
  }
});

t.test('rawPayload publishes the bytes as they are', async (t) => {
  const bytes = Buffer.from('not an envelope');
  t.equal(buildPublishedEvent(input({ body: bytes, metadata: { rawPayload: 'true' } }), clock), bytes);
  t.ok(metadataFlag('"true"'), 'the JS SDK JSON-stringifies metadata values');
  t.notOk(metadataFlag('false'));
});

t.test('a cloudevents+json body is the envelope; topic/pubsubname are overwritten, missing fields filled', async (t) => {
  const event = published({
    contentType: 'application/cloudevents+json',
    body: Buffer.from(JSON.stringify({ id: 'mine', source: 'elsewhere', specversion: '1.0', type: 'custom', data: 1, topic: 'wrong' })),
  });
  t.equal(event.id, 'mine');
  t.equal(event.source, 'elsewhere');
  t.equal(event.type, 'custom');
  t.equal(event.topic, 'order-created');
  t.equal(event.time, NOW.toISOString());
  t.throws(() => buildPublishedEvent(input({ contentType: 'application/cloudevents+json', body: Buffer.from('[1]') }), clock), CloudEventError);
  t.throws(() => buildPublishedEvent(input({ contentType: 'application/cloudevents+json', body: Buffer.from('{') }), clock), /not valid JSON/);
});

t.test('trace context and cloudevent.* metadata overrides', async (t) => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const event = published({ traceparent, tracestate: 'k=v', metadata: { 'cloudevent.id': 'given', 'cloudevent.type': 'order.v1', 'cloudevent.subject': 's' } });
  t.equal(event.traceparent, traceparent);
  t.equal(event.traceid, traceparent);
  t.equal(event.tracestate, 'k=v');
  t.equal(event.id, 'given');
  t.equal(event.type, 'order.v1');
  t.equal(event.subject, 's');
  t.equal(published({ metadata: { ttlInSeconds: '60' } }).expiration, new Date(NOW.getTime() + 60_000).toISOString());
  t.throws(() => published({ metadata: { ttlInSeconds: 'soon' } }), /ttlInSeconds/);
});

t.test('delivery side: raw subscriptions wrap any bytes, others need a JSON object, expired events are flagged', async (t) => {
  const raw = eventForDelivery(Buffer.from('abc'), { rawPayload: true, pubsubName: 'p', topic: 't' }, clock);
  t.equal(raw.envelope.data_base64, Buffer.from('abc').toString('base64'));
  t.equal(raw.envelope.datacontenttype, 'application/octet-stream');
  t.throws(() => eventForDelivery(Buffer.from('abc'), { rawPayload: false, pubsubName: 'p', topic: 't' }, clock), CloudEventError);
  const expired = eventForDelivery(Buffer.from(JSON.stringify({ id: 'x', expiration: '2026-12-05T11:59:59Z' })), { rawPayload: false, pubsubName: 'p', topic: 't' }, clock);
  t.ok(expired.expired);
});

t.test("the app's answers are read as Dapr reads them", async (t) => {
  const answer = (status: number, body = ''): AppAnswer => ({ status, body: Buffer.from(body) });
  t.equal(interpretAppAnswer(answer(200)).verdict, 'success');
  t.equal(interpretAppAnswer(answer(204)).verdict, 'success');
  t.equal(interpretAppAnswer(answer(200, 'ok')).verdict, 'success', 'a 2xx that is not JSON');
  t.equal(interpretAppAnswer(answer(200, '{"status":"SUCCESS"}')).verdict, 'success');
  t.equal(interpretAppAnswer(answer(200, '{}')).verdict, 'success');
  t.equal(interpretAppAnswer(answer(200, '{"status":"RETRY"}')).verdict, 'retry');
  t.equal(interpretAppAnswer(answer(200, '{"status":"DROP"}')).verdict, 'drop');
  t.equal(interpretAppAnswer(answer(200, '{"status":"MAYBE"}')).verdict, 'retry');
  t.equal(interpretAppAnswer(answer(404)).verdict, 'drop');
  t.equal(interpretAppAnswer(answer(500)).verdict, 'retry');
  t.equal(interpretAppAnswer(answer(429)).verdict, 'retry');
});

interface Harness {
  readonly posts: { path: string; body: string; headers: Readonly<Record<string, string>> }[];
  readonly sleeps: number[];
  readonly deadLetters: { topic: string; data: string }[];
  /** Deliveries as the observer saw them when they settled. */
  readonly reports: DeliveryRecord[];
  readonly started: DeliveryRecord[];
  handle(message: BrokerMessage): Promise<'ack' | 'nack'>;
}

function harness(answers: Array<AppAnswer | Error>, target: Partial<DeliveryTarget> = {}, policy: RetryPolicy = { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 150 }): Harness {
  const state = { posts: [] as Harness['posts'], sleeps: [] as number[], deadLetters: [] as Harness['deadLetters'], reports: [] as DeliveryRecord[], started: [] as DeliveryRecord[] };
  const handle = deliveryHandler(
    { pubsubName: 'ps', topic: 'orders', rawPayload: false, deadLetterTopic: undefined, route: () => '/orders', ...target },
    {
      app: {
        post: async (path, body, headers) => {
          state.posts.push({ path, body: body.toString(), headers });
          const next = answers.shift() ?? { status: 200, body: Buffer.alloc(0) };
          if (next instanceof Error) throw next;
          return next;
        },
      },
      policy,
      timer: { sleep: async (ms) => void state.sleeps.push(ms) },
      clock,
      publishDeadLetter: async (topic, data) => void state.deadLetters.push({ topic, data: data.toString() }),
      logger: silent,
      appAddress: '127.0.0.1:9',
      observer: () => ({
        started: (delivery) => {
          state.started.push(delivery);
          // A tracing hook makes the delivery a hop of its own: the app gets the hop's context.
          if (delivery.publisherTraceparent !== '') delivery.traceparent = `${delivery.publisherTraceparent}-hop`;
        },
        finished: (delivery) => void state.reports.push(delivery),
      }),
    },
  );
  return { ...state, handle };
}

const message = (data: unknown = { id: 'e1', data: { n: 1 }, traceparent: '00-aa-bb-01' }): BrokerMessage => ({
  brokerId: '1-0',
  data: Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)),
  metadata: { priority: 'high', 'Bad Header': 'x', 'content-type': 'text/evil' },
});

t.test('delivery: success on the first try posts the CloudEvent with Dapr headers and acks', async (t) => {
  const h = harness([{ status: 200, body: Buffer.from('{"status":"SUCCESS"}') }]);
  t.equal(await h.handle(message()), 'ack');
  t.equal(h.posts.length, 1);
  t.equal(h.posts[0]?.path, '/orders');
  t.same(JSON.parse(h.posts[0]?.body ?? ''), { id: 'e1', data: { n: 1 }, traceparent: '00-aa-bb-01' });
  t.equal(h.posts[0]?.headers['content-type'], 'application/cloudevents+json', 'broker metadata cannot override the content type');
  t.equal(h.posts[0]?.headers['pubsubname'], 'ps');
  t.equal(h.posts[0]?.headers['traceparent'], '00-aa-bb-01-hop', 'the app gets the traceparent the started hook set');
  t.equal(h.posts[0]?.headers['priority'], 'high', 'broker metadata becomes headers');
  t.notOk('bad header' in (h.posts[0]?.headers ?? {}), 'names that are not header tokens are left out');
  t.equal(h.started.length, 1, 'started once, before the post');
  t.match(h.reports[0], { result: 'delivered', attempts: 1, status: 200, eventId: 'e1', path: '/orders', appAddress: '127.0.0.1:9', publisherTraceparent: '00-aa-bb-01', pubsubName: 'ps', topic: 'orders' });
  t.equal(h.reports[0]?.receivedBytes, '{"status":"SUCCESS"}'.length);
  t.equal(h.reports[0]?.sentBytes, Buffer.byteLength(h.posts[0]?.body ?? ''));
  t.ok((h.reports[0]?.endMs ?? NaN) >= (h.reports[0]?.startMs ?? NaN), 'settled after it started');
});

t.test('delivery: RETRY, 5xx and connection errors retry with exponential, capped backoff, then the broker keeps the message', async (t) => {
  const h = harness([{ status: 200, body: Buffer.from('{"status":"RETRY"}') }, { status: 503, body: Buffer.alloc(0) }, new Error('ECONNREFUSED')]);
  t.equal(await h.handle(message()), 'nack', 'no dead-letter topic: nack, never ack');
  t.equal(h.posts.length, 3, 'bounded by maxAttempts');
  t.same(h.sleeps, [100, 150], 'backoff doubles and is capped');
  t.match(h.reports[0], { result: 'returned-to-broker', attempts: 3, status: 0 }, 'the last answer was a connection error');
  t.equal(h.reports.length, 1, 'one report per message, not per post');
  t.equal(backoffMs({ maxAttempts: 9, initialBackoffMs: 100, maxBackoffMs: 5000 }, 4), 800);
});

t.test('delivery: exhausted retries go to the dead-letter topic and are acked', async (t) => {
  const h = harness([{ status: 500, body: Buffer.alloc(0) }, { status: 500, body: Buffer.alloc(0) }, { status: 500, body: Buffer.alloc(0) }], { deadLetterTopic: 'orders-dead' });
  t.equal(await h.handle(message()), 'ack');
  t.same(h.deadLetters.map((d) => d.topic), ['orders-dead']);
  t.equal(h.reports[0]?.result, 'dead-lettered');
});

t.test('delivery: DROP and 404 drop at once (to the dead-letter topic when there is one)', async (t) => {
  const dropped = harness([{ status: 200, body: Buffer.from('{"status":"DROP"}') }]);
  t.equal(await dropped.handle(message()), 'ack');
  t.equal(dropped.posts.length, 1, 'no retry after DROP');
  t.equal(dropped.reports[0]?.result, 'dropped');
  const missing = harness([{ status: 404, body: Buffer.alloc(0) }], { deadLetterTopic: 'dl' });
  t.equal(await missing.handle(message()), 'ack');
  t.equal(missing.deadLetters.length, 1);
});

t.test('delivery: a message that is not a CloudEvent is never retried; expired events are dropped unseen', async (t) => {
  const bad = harness([]);
  t.equal(await bad.handle(message('not json')), 'ack');
  t.equal(bad.posts.length, 0);
  const badWithDl = harness([], { deadLetterTopic: 'dl' });
  t.equal(await badWithDl.handle(message('not json')), 'ack');
  t.same(badWithDl.deadLetters, [{ topic: 'dl', data: 'not json' }]);
  const expired = harness([]);
  t.equal(await expired.handle(message({ id: 'old', expiration: '2020-01-01T00:00:00Z' })), 'ack');
  t.equal(expired.posts.length, 0);
  t.equal(expired.reports[0]?.result, 'expired');
});

t.test('topic scopes: allowedTopics, publishingScopes, subscriptionScopes, protectedTopics', async (t) => {
  const metadata = {
    allowedTopics: 'orders,payments,audit',
    publishingScopes: 'checkout=orders;auditor=',
    subscriptionScopes: 'billing=orders,payments',
    protectedTopics: 'audit',
  };
  const checkout = compileTopicScopes(metadata, 'checkout');
  t.ok(checkout.mayPublish('orders'));
  t.notOk(checkout.mayPublish('payments'), 'listed apps publish only their topics');
  t.ok(checkout.maySubscribe('payments'), 'not listed under subscriptionScopes: any allowed topic');
  t.notOk(checkout.maySubscribe('audit'), 'protected topics need an explicit scope');
  t.notOk(checkout.mayPublish('shipping'), 'not in allowedTopics');
  const auditor = compileTopicScopes(metadata, 'auditor');
  t.notOk(auditor.mayPublish('orders'), '"app=" allows nothing');
  const open = compileTopicScopes({}, 'anyone');
  t.ok(open.mayPublish('whatever') && open.maySubscribe('whatever'));
  t.throws(() => compileTopicScopes({ publishingScopes: 'broken' }, 'x'), /publishingScopes/);
});

t.test('routing: first matching rule, else default; unsupported CEL is refused', async (t) => {
  const route = compileRoutes({
    rules: [
      { match: 'event.type == "widget"', path: '/widgets' },
      { match: "event.data.kind == 'big' && event.type != \"x\" || event.data.priority == 1", path: 'priority' },
    ],
    defaultPath: '/other',
  });
  t.equal(route?.({ type: 'widget' }), '/widgets');
  t.equal(route?.({ type: 'y', data: { kind: 'big' } }), '/priority', 'paths get a leading slash');
  t.equal(route?.({ type: 'y', data: { priority: 1 } }), '/priority');
  t.equal(route?.({ type: 'y' }), '/other');
  t.equal(compileRoutes({ rules: [{ match: 'event.type == "a"', path: '/a' }], defaultPath: null })?.({ type: 'b' }), '', 'no match and no default: dropped');
  t.equal(compileRoutes({ rules: [], defaultPath: null }), null);
  t.throws(() => compileMatch('size(event.data) > 3'), RoutingRuleError);
  t.throws(() => compileMatch('(event.type == "a")'), /parentheses/);
  t.ok(compileMatch('event.type == "a && b"')({ type: 'a && b' }), 'operators inside strings are text');
});

t.test('GET /dapr/subscribe answers: SDK shape, routes, bad entries skipped with a reason', async (t) => {
  const body = Buffer.from(
    JSON.stringify([
      { pubsubname: 'ps', topic: 'orders', route: '/ps--orders--default', metadata: { rawPayload: '"true"' } },
      { pubsubname: 'ps', topic: 'rules', routes: { rules: [{ match: 'event.type == "a"', path: '/a' }], default: '/d' }, deadLetterTopic: 'dl' },
      { pubsubname: 'ps', topic: 'noroute' },
      'junk',
      { topic: 'nopubsub', route: '/x' },
    ]),
  );
  const { subscriptions, problems } = parseProgrammaticSubscriptions(body);
  t.same(subscriptions.map((s) => [s.topic, s.defaultPath, s.rules.length, s.deadLetterTopic]), [
    ['orders', '/ps--orders--default', 0, null],
    ['rules', '/d', 1, 'dl'],
  ]);
  t.equal(subscriptions[0]?.metadata['rawPayload'], '"true"');
  t.equal(problems.length, 3);
  t.match(parseProgrammaticSubscriptions(Buffer.from('{')).problems[0], /not JSON/);
});

t.test('in-memory broker: a copy per group, round-robin inside a group, nack redelivers', async (t) => {
  const broker = new InMemoryBroker({ redeliverInterval: '10ms' }, silent);
  t.teardown(() => broker.close());
  const got: string[] = [];
  let failOnce = true;
  await broker.subscribe({ topic: 't', consumerGroup: 'a', metadata: {} }, async (m) => {
    got.push(`a1:${m.data.toString()}`);
    return 'ack';
  });
  await broker.subscribe({ topic: 't', consumerGroup: 'a', metadata: {} }, async (m) => {
    got.push(`a2:${m.data.toString()}`);
    return 'ack';
  });
  await broker.subscribe({ topic: 't', consumerGroup: 'b', metadata: {} }, async (m) => {
    if (failOnce) {
      failOnce = false;
      return 'nack';
    }
    got.push(`b:${m.data.toString()}`);
    return 'ack';
  });
  await broker.publish('t', Buffer.from('1'), {});
  await broker.publish('t', Buffer.from('2'), {});
  for (let waited = 0; got.length < 4 && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(got.filter((g) => g.startsWith('a')).sort(), ['a1:1', 'a2:2']);
  t.same(got.filter((g) => g.startsWith('b')).sort(), ['b:1', 'b:2']);
});

t.test('compiling a sidecar: bad broker metadata is MG1302 at the field, an unsupported rule MG1320 at its match', async (t) => {
  const registry = buildKindRegistry();
  const parsed = parseConfigText(
    `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: events, namespace: my-app }
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - { name: redisHost, value: "127.0.0.1:6379" }
    - { name: processingTimeout, value: "soon" }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: mem, namespace: my-app }
spec: { type: pubsub.in-memory, version: v1 }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: s, namespace: my-app }
spec:
  pubsubname: mem
  topic: t
  routes:
    rules:
      - { match: 'event.type == "a"', path: /a }
      - { match: 'size(event.data) > 2', path: /b }
`,
    'pubsub.yaml',
    registry,
  );
  t.same(parsed.diagnostics, []);
  const diagnostics: Diagnostic[] = [];
  const emptyRegistry: ServiceRegistry = { services: [], lookup: () => undefined };
  const workload = { name: 'order', namespace: 'my-app', labels: {}, serviceAccount: 'order', principal: '' };
  compileDapr({ resources: parsed.resources, workload, registry: emptyRegistry, credentialsDirectory: '/x', configDirectory: '/x', env: {}, diagnostics, blocks: [pubsubBlock] });
  t.same(
    diagnostics.map((d) => `${d.position.line} ${d.code} ${d.field ?? ''}`),
    ['9 MG1302 spec.metadata[1]', '25 MG1320 spec.routes.rules[1].match'],
  );
  t.match(diagnostics[0]?.message, /processingTimeout/);
});
