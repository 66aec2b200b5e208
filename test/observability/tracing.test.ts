import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { Test } from 'tap';
import { MESH_CONFIG_API_VERSION } from '../../gateway/config/kinds/mesh-config.js';
import fastifyPlugin from 'fastify-plugin';
import type { MeshPlugin, ProxyMode } from '../../gateway/pipeline/types.js';
import { renderPrometheus } from '../../plugins/metrics/index.js';
import { createTracingPlugin, traceIdOf } from '../../plugins/tracing/index.js';
import type { TracingPluginOptions } from '../../plugins/tracing/index.js';
import { otlpTracesUrl } from '../../plugins/tracing/schema.js';
import { afterResponses, buildPluginHarness } from '../helpers/plugin-harness.js';
import { makeResource } from '../helpers/resources.js';
import { OtlpReceiver } from './otlp-receiver.js';
import { findSamples, parseSamples } from './prom-text.js';
import { DETAILS_CLUSTER, scenarioPlugin } from './scenario-plugin.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

interface Echo {
  headers: Record<string, string>;
}

async function startTracing(
  t: Test,
  tracing: Record<string, unknown>,
  mode: ProxyMode = 'ingress',
  options: TracingPluginOptions = {},
  after: readonly MeshPlugin[] = [],
) {
  const plugin = createTracingPlugin({ env: {}, ...options });
  const meshConfig = makeResource('MeshConfig', 'mesh', { tracing }, { apiVersion: MESH_CONFIG_API_VERSION, namespace: 'istio-system' });
  const { app } = await buildPluginHarness({
    plugins: [plugin, scenarioPlugin, ...after],
    resources: [meshConfig],
    mode,
    workload: { name: 'istio-ingressgateway', namespace: 'istio-system' },
  });
  t.teardown(async () => {
    await app.close();
    await plugin.shutdown();
  });
  const send = async (url: string, headers: Record<string, string> = {}) => {
    const response = await app.inject({ method: 'GET', url, headers: { host: 'shop.example.com', 'user-agent': 'test-agent/1', ...headers } });
    return { status: response.statusCode, forwarded: response.statusCode === 200 ? (response.json() as Echo).headers : {} };
  };
  return { app, plugin, send };
}

async function receiver(t: Test): Promise<OtlpReceiver> {
  const started = await OtlpReceiver.start();
  t.teardown(() => started.close());
  return started;
}

t.test('trusted traceparent is continued; the forwarded traceparent is parented to the hop span', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url, trustIncomingContext: true });
  const { forwarded } = await send('/routed/items?secret=1', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=abc' });
  await plugin.flush();

  t.equal(otlp.spans.length, 1);
  const span = otlp.spans[0];
  t.equal(span?.traceId, TRACE_ID);
  t.equal(span?.parentSpanId, PARENT_ID);
  t.equal(span?.kind, 2, 'SERVER');
  t.equal(span?.name, 'default/details.0', 'named after the route');
  t.equal(span?.serviceName, 'istio-ingressgateway.istio-system');
  t.match(span?.attributes, {
    'http.request.method': 'GET',
    'url.path': '/routed/items',
    'url.scheme': 'http',
    'server.address': 'shop.example.com',
    'http.response.status_code': 200,
    'user_agent.original': 'test-agent/1',
    'meshgate.route': 'default/details.0',
    'meshgate.upstream_cluster': DETAILS_CLUSTER,
    'meshgate.upstream_host': '10.0.0.5:9080',
    'meshgate.response_flags': '-',
  });
  t.ok(typeof span?.attributes['network.peer.address'] === 'string');
  t.equal(forwarded['traceparent'], `00-${TRACE_ID}-${span?.spanId}-01`, 'upstream continues from this hop');
  t.equal(forwarded['tracestate'], 'vendor=abc');
  t.equal(otlp.contentTypes[0], 'application/json');
});

t.test('untrusted edge ignores client trace context and starts a new trace', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url, trustIncomingContext: false });
  const { forwarded } = await send('/routed/a', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID });
  await plugin.flush();
  const span = otlp.spans[0];
  t.not(span?.traceId, TRACE_ID);
  t.equal(span?.parentSpanId, '');
  t.equal(forwarded['traceparent'], `00-${span?.traceId}-${span?.spanId}-01`);
  t.notOk('x-b3-traceid' in forwarded, 'client B3 headers are not forwarded');
});

t.test('sidecars always trust the incoming context (the switch is for the edge)', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url, trustIncomingContext: false }, 'sidecar');
  await send('/inbound', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` });
  await plugin.flush();
  t.equal(otlp.spans[0]?.traceId, TRACE_ID);
});

t.test('B3 multi and single headers are extracted and propagated in the same format', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 0, otlpEndpoint: otlp.url });
  const multi = await send('/routed/m', { 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' });
  const single = await send('/routed/s', { b3: `${TRACE_ID}-${PARENT_ID}-1` });
  await plugin.flush();
  t.equal(otlp.spans.length, 2, 'sampled parents are followed even at 0% sampling');
  const [multiSpan, singleSpan] = otlp.spans;
  t.equal(multiSpan?.traceId, '0000000000000000a3ce929d0e0e4736', '64-bit B3 trace id padded');
  t.equal(multiSpan?.parentSpanId, PARENT_ID);
  t.equal(multi.forwarded['x-b3-traceid'], multiSpan?.traceId);
  t.equal(multi.forwarded['x-b3-spanid'], multiSpan?.spanId);
  t.equal(multi.forwarded['x-b3-sampled'], '1');
  t.equal(multi.forwarded['traceparent'], `00-${multiSpan?.traceId}-${multiSpan?.spanId}-01`);
  t.equal(singleSpan?.traceId, TRACE_ID);
  t.equal(singleSpan?.parentSpanId, PARENT_ID);
  t.equal(single.forwarded['b3'], `${TRACE_ID}-${singleSpan?.spanId}-1`);
});

t.test('sampling: unsampled roots export nothing but still propagate; malformed context starts a new trace', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 0, otlpEndpoint: otlp.url });
  const root = await send('/routed/r');
  const unsampledParent = await send('/routed/u', { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` });
  const malformed = await send('/routed/x', { traceparent: `00-${'0'.repeat(32)}-${PARENT_ID}-01` });
  await plugin.flush();
  t.equal(otlp.spans.length, 0);
  t.match(root.forwarded['traceparent'], /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  t.match(unsampledParent.forwarded['traceparent'], new RegExp(`^00-${TRACE_ID}-(?!${PARENT_ID})[0-9a-f]{16}-00$`));
  t.notMatch(malformed.forwarded['traceparent'], /^00-0{32}/);
});

t.test('client-controlled attribute values are cut to 1024 characters; span times are real', async (t) => {
  const otlp = await receiver(t);
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url });
  const before = Date.now();
  await send(`/routed/${'p'.repeat(3000)}`, { 'user-agent': 'u'.repeat(5000) });
  await plugin.flush();
  const span = otlp.spans[0];
  t.equal((span?.attributes['user_agent.original'] as string).length, 1024);
  t.equal((span?.attributes['url.path'] as string).length, 1024);
  const startMs = Number(BigInt(span?.startTimeUnixNano ?? '0') / 1_000_000n);
  t.ok(startMs >= before - 5 && startMs <= Date.now(), 'start time is when the request came in');
  t.ok(BigInt(span?.endTimeUnixNano ?? '0') >= BigInt(span?.startTimeUnixNano ?? '0'), 'ends after it starts');
});

t.test('local replies are spans too, with their response flag; the access log sees the trace id', async (t) => {
  const otlp = await receiver(t);
  let seenTraceId = '';
  const probe: MeshPlugin<null> = {
    name: 'probe',
    compile: () => null,
    register: fastifyPlugin(async (app) => {
      app.addHook('onResponse', async (request) => {
        seenTraceId = traceIdOf(request);
      });
    }),
  };
  const { app, plugin } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', {}, [probe]);
  await app.inject({ method: 'GET', url: '/no-route', headers: { host: 'shop.example.com' } });
  await plugin.flush();
  const span = otlp.spans[0];
  t.equal(span?.attributes['http.response.status_code'], 404);
  t.equal(span?.attributes['meshgate.response_flags'], 'NR');
  t.equal(span?.name, 'shop.example.com/*', 'authority-based name without a route');
  t.equal(seenTraceId, span?.traceId);
});

t.test('a client that goes away before the response ends the hop span with DC; an unsampled request watches nothing', async (t) => {
  const otlp = await receiver(t);
  let reached: () => void = () => undefined;
  const held: MeshPlugin<null> = {
    name: 'held',
    compile: () => null,
    register: fastifyPlugin(async (app) => {
      // Holds /routed/held without an answer, as a slow upstream would.
      app.addHook('onRequest', (request, _reply, done) => {
        if (request.url === '/routed/held') reached();
        else done();
      });
    }),
  };
  const { app, plugin } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', {}, [held]);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const client = connect(port, '127.0.0.1');
  t.teardown(() => client.destroy());
  await new Promise<void>((resolve) => {
    reached = resolve;
    client.write('GET /routed/held HTTP/1.1\r\nHost: shop.example.com\r\n\r\n');
  });
  client.destroy();
  const deadline = Date.now() + 10_000;
  while (otlp.spans.length === 0 && Date.now() < deadline) {
    await plugin.flush();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const span = otlp.spans[0];
  t.equal(span?.attributes['meshgate.response_flags'], 'DC', 'downstream connection termination');
  t.equal(span?.attributes['http.response.status_code'], 0);

  // The watch costs a listener on the request: only a sampled one carries it.
  const closeListeners: number[] = [];
  const counted: MeshPlugin<null> = {
    name: 'counted',
    compile: () => null,
    register: fastifyPlugin(async (app) => {
      app.addHook('preHandler', async (request) => {
        closeListeners.push(request.raw.listenerCount('close'));
      });
    }),
  };
  const unsampled = await startTracing(t, { samplingPercent: 0, otlpEndpoint: otlp.url }, 'ingress', {}, [counted]);
  const sampled = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', {}, [counted]);
  await unsampled.send('/routed/counted');
  await sampled.send('/routed/counted');
  const [withoutSpan, withSpan] = closeListeners;
  t.equal(withSpan, (withoutSpan ?? 0) + 1, 'one close listener more on a sampled request than on an unsampled one');
});

t.test('disabled (no endpoint): no spans, incoming trace headers forwarded untouched', async (t) => {
  const { send } = await startTracing(t, { samplingPercent: 100 });
  const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`;
  const { forwarded } = await send('/routed/a', { traceparent, 'x-b3-traceid': 'abc' });
  t.equal(forwarded['traceparent'], traceparent);
  t.equal(forwarded['x-b3-traceid'], 'abc');
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function dropped(reason: string): Promise<number> {
  await afterResponses();
  return findSamples(parseSamples((await renderPrometheus()).body), 'meshgate_tracing_spans_dropped_total', { reason })[0]?.value ?? 0;
}

t.test('an unreachable collector never slows or fails requests; lost spans are counted', async (t) => {
  const port = await closedPort();
  const failedBefore = await dropped('export_failed');
  const { plugin, send } = await startTracing(
    t,
    { samplingPercent: 100, otlpEndpoint: `http://127.0.0.1:${port}/v1/traces` },
    'ingress',
    { limits: { exportTimeoutMillis: 1000, scheduledDelayMillis: 50 } },
  );
  const started = Date.now();
  for (let i = 0; i < 20; i++) t.equal((await send(`/routed/${i}`)).status, 200);
  // Held up, each request would wait for a 1 s export timeout.
  t.ok(Date.now() - started < 10_000, 'requests are not held up by export');
  await plugin.flush().catch(() => undefined);
  const deadline = Date.now() + 20_000;
  while ((await dropped('export_failed')) - failedBefore < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal((await dropped('export_failed')) - failedBefore, 20);
});

t.test('the export queue is bounded: spans beyond it are dropped and counted', async (t) => {
  const otlp = await receiver(t);
  otlp.hold();
  const fullBefore = await dropped('queue_full');
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', {
    limits: { maxQueueSize: 3, maxExportBatchSize: 2 },
  });
  for (let i = 0; i < 3; i++) await send(`/routed/${i}`);
  // A batch of 2 leaves at once and hangs at the slow collector: it still holds memory.
  const deadline = Date.now() + 20_000;
  while (otlp.spans.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  for (let i = 3; i < 6; i++) t.equal((await send(`/routed/${i}`)).status, 200);
  t.equal((await dropped('queue_full')) - fullBefore, 3, 'queued + in flight never exceeds the bound');
  otlp.release();
  await plugin.flush();
  t.equal(otlp.spans.length, 3);
});

t.test('a collector that refuses, or answers after the export timeout, loses the batch: counted, and the queue frees up', async (t) => {
  const otlp = await receiver(t);
  otlp.status = 503;
  const failedBefore = await dropped('export_failed');
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', {
    limits: { maxQueueSize: 2, maxExportBatchSize: 2, exportTimeoutMillis: 200 },
  });
  for (let i = 0; i < 2; i++) await send(`/routed/${i}`);
  await plugin.flush();
  t.equal((await dropped('export_failed')) - failedBefore, 2, 'a 503 answer fails the batch');
  otlp.status = 200;
  otlp.hold();
  for (let i = 2; i < 4; i++) await send(`/routed/${i}`);
  const started = Date.now();
  await plugin.flush();
  // The collector holds the batch until released below, so only the 200 ms timeout can end the flush.
  t.ok(Date.now() - started < 10_000, 'the export gives up at its timeout');
  t.equal((await dropped('export_failed')) - failedBefore, 4, 'an unanswered batch fails at the timeout');
  otlp.release();
  const fullBefore = await dropped('queue_full');
  for (let i = 4; i < 6; i++) t.equal((await send(`/routed/${i}`)).status, 200);
  await plugin.flush();
  t.equal((await dropped('queue_full')) - fullBefore, 0, 'failed batches no longer count against the queue bound');
  t.equal(otlp.spans.length, 4, 'the refused batch never arrived; the late one did, only its answer came too late');
});

t.test('OTLP export: JSON over HTTP POST, with the headers of OTEL_EXPORTER_OTLP_TRACES_HEADERS or else OTEL_EXPORTER_OTLP_HEADERS', async (t) => {
  const otlp = await receiver(t);
  const env = { OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=ignored', OTEL_EXPORTER_OTLP_TRACES_HEADERS: ' X-Tenant = acme ,authorization=Bearer%20abc%2C1,broken,=x,content-type=text/plain,bad=%E0%A4%A' };
  const { plugin, send } = await startTracing(t, { samplingPercent: 100, otlpEndpoint: otlp.url }, 'ingress', { env });
  await send('/routed/1');
  await plugin.flush();
  t.equal(otlp.spans.length, 1);
  const headers = otlp.requestHeaders[0] ?? {};
  t.equal(headers['x-tenant'], 'acme', 'names are trimmed and lower-cased, the traces variable wins');
  t.equal(headers['authorization'], 'Bearer abc,1', 'values are percent-decoded');
  t.equal(headers['content-type'], 'application/json', 'the content type is not the environment\'s to change');
  t.notOk('bad' in headers, 'a pair with invalid percent-encoding is skipped');
  t.equal(headers['connection'] ?? 'keep-alive', 'keep-alive');

  const generic = await receiver(t);
  const second = await startTracing(t, { samplingPercent: 100, otlpEndpoint: generic.url }, 'ingress', { env: { OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=shared' } });
  await second.send('/routed/2');
  await second.plugin.flush();
  t.equal(generic.requestHeaders[0]?.['x-tenant'], 'shared');
});

t.test('collector URL resolution', async (t) => {
  t.equal(otlpTracesUrl('http://c:4318', {}), 'http://c:4318/v1/traces');
  t.equal(otlpTracesUrl('http://c:4318/custom', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }), 'http://c:4318/custom');
  t.equal(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t/v1/traces', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }), 'http://t/v1/traces');
  t.equal(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318/' }), 'http://x:4318/v1/traces');
  t.equal(otlpTracesUrl(undefined, {}), '');
});
