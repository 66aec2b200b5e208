/**
 * The messages a sidecar delivers to its app are observed like the requests it proxies: one span per
 * delivery, child of the publisher's context carried in the CloudEvent (and the parent of what the app
 * does), one access-log line, and the delivery counters. One sidecar publishes and subscribes through
 * a `pubsub.in-memory` component; an OTLP receiver, an access-log file and the admin port show the rest.
 */
import t from 'tap';
import http from 'node:http';
import { join } from 'node:path';
import { accessLogPlugin } from '../../plugins/access-log/index.js';
import { tracingPlugin } from '../../plugins/tracing/index.js';
import { allocateMeshPorts, meshYaml } from '../e2e-mesh/mesh-fixture.js';
import { eventually } from '../helpers/eventually.js';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { readCompleteJsonLines } from '../helpers/json-lines.js';
import { makeTestPki } from '../helpers/pki.js';
import { OtlpReceiver } from '../observability/otlp-receiver.js';

/** OTLP's span kinds (SpanKind + 1). */
const OTLP_SERVER = 2;
const OTLP_CONSUMER = 5;
const PUBLISHER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PUBLISHER_SPAN = '00f067aa0ba902b7';

function request(port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 30_000 }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
    });
    sent.on('timeout', () => sent.destroy(new Error(`no answer from 127.0.0.1:${port}${path}`)));
    sent.on('error', reject);
    sent.end(body);
  });
}

const receiver = await OtlpReceiver.start();
t.teardown(() => receiver.close());
const pki = await makeTestPki();
const ports = await allocateMeshPorts();
const deliveries: { traceparent: string; event: { id: string; traceparent?: string } }[] = [];
const orderApp = await startUpstream((incoming, response) => {
  let body = '';
  incoming.setEncoding('utf8');
  incoming.on('data', (chunk: string) => (body += chunk));
  incoming.on('end', () => {
    if (incoming.url === '/deliveries') {
      deliveries.push({ traceparent: String(incoming.headers.traceparent), event: JSON.parse(body) as { id: string } });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"SUCCESS"}');
      return;
    }
    // GET /dapr/subscribe: no programmatic subscriptions.
    response.writeHead(200, { 'content-type': 'application/json' }).end('[]');
  });
}, 'order-service');
t.teardown(() => orderApp.close());
const productApp = await startUpstream(undefined, 'product-service');
t.teardown(() => productApp.close());

const dir = await configDir('');
t.teardown(() => dir.remove());
const accessLogPath = join(dir.dir, 'access.log');
const yaml = meshYaml(pki, ports, { product: productApp.port, order: orderApp.port }).replace(
  '  accessLog: { enabled: false }',
  `  accessLog: { enabled: true, path: ${accessLogPath} }\n  tracing: { samplingPercent: 100, otlpEndpoint: "${receiver.url}" }`,
);
await dir.write(`${yaml}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: events, namespace: my-app }
spec: { type: pubsub.in-memory, version: v1, metadata: [] }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: orders, namespace: my-app }
spec: { pubsubname: events, topic: orders, routes: { default: /deliveries } }
scopes: [order]
`);
const sidecar = await startGateway(dir.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
t.teardown(() => sidecar.stop());

// The subscription starts in the background once the snapshot is active; an in-memory publish before it reaches no one.
await eventually(
  () => sidecar.logs.some((line) => line['msg'] === 'pubsub: subscribed' && line['topic'] === 'orders'),
  (subscribed) => subscribed,
);
const published = await request(ports.orderOutbound, 'POST', '/v1.0/publish/events/orders', { 'content-type': 'application/json', traceparent: `00-${PUBLISHER_TRACE}-${PUBLISHER_SPAN}-01` }, '{"orderId":7}');
await eventually(
  () => deliveries.length,
  (count) => count > 0,
);
const delivered = deliveries[0];

t.test('the event reaches the app', async (t) => {
  t.equal(published.status, 204);
  t.ok(delivered, 'delivered');
});

t.test('a CONSUMER span per delivery, child of the publisher span, parent of the app', async (t) => {
  await tracingPlugin.flush();
  const spans = await eventually(
    async () => {
      await tracingPlugin.flush();
      return receiver.spans.filter((span) => span.traceId === PUBLISHER_TRACE);
    },
    (found) => found.some((span) => span.kind === OTLP_CONSUMER),
  );
  const publish = spans.find((span) => span.kind === OTLP_SERVER && span.parentSpanId === PUBLISHER_SPAN && span.attributes['url.path'] === '/v1.0/publish/events/orders');
  t.ok(publish, 'the publish call has its hop span, continuing the caller’s trace');
  const consumer = spans.filter((span) => span.kind === OTLP_CONSUMER);
  t.equal(consumer.length, 1, 'one delivery span');
  const span = consumer[0];
  t.equal(span?.parentSpanId, publish?.spanId, 'its parent is the span the CloudEvent’s traceparent names');
  t.equal(delivered?.event.traceparent, `00-${PUBLISHER_TRACE}-${publish?.spanId ?? ''}-01`, 'the CloudEvent carries the publish hop’s context');
  t.equal(delivered?.traceparent, `00-${PUBLISHER_TRACE}-${span?.spanId ?? ''}-01`, 'the app’s traceparent names the delivery span');
  t.equal(span?.name, 'pubsub/events/orders');
  t.match(span?.attributes, {
    'messaging.destination.name': 'orders',
    'messaging.message.id': delivered?.event.id,
    'url.path': '/deliveries',
    'http.response.status_code': 200,
    'meshgate.delivery.result': 'delivered',
    'meshgate.delivery.attempts': 1,
  });
});

t.test('one access-log line for the delivery, tied to the event and the trace', async (t) => {
  const lines = await eventually(
    async () => {
      await accessLogPlugin.flush();
      return (await readCompleteJsonLines(accessLogPath)).filter((line) => line['route_name'] === 'pubsub/events/orders');
    },
    (found) => found.length > 0,
  );
  t.equal(lines.length, 1);
  t.match(lines[0], {
    method: 'POST',
    path: '/deliveries',
    protocol: 'HTTP/1.1',
    authority: `127.0.0.1:${orderApp.port}`,
    upstream_host: `127.0.0.1:${orderApp.port}`,
    response_code: 200,
    response_code_details: 'pubsub_delivered',
    request_id: delivered?.event.id,
    trace_id: PUBLISHER_TRACE,
    bytes_received: '{"status":"SUCCESS"}'.length,
  });
});

t.test('the delivery is counted', async (t) => {
  const exposition = await request(ports.admins[2] as number, 'GET', '/stats/prometheus', {});
  t.match(exposition.body, /meshgate_pubsub_deliveries_total\{pubsub="events",topic="orders",result="delivered"\} 1\n/);
  t.match(exposition.body, /meshgate_pubsub_delivery_attempts_total\{pubsub="events",topic="orders"\} 1\n/);
});
