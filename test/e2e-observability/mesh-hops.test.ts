/**
 * Observability across the hops of a real mini-mesh (ingress → order sidecar → order app → order
 * sidecar outbound → product sidecar → product app): ONE request gives ONE trace with each hop's span
 * parented on the previous one, Istio request metrics with both reporters and the right principals
 * (and a promtool-clean exposition), and one access-log line per hop tied together by x-request-id.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { tracingPlugin } from '../../plugins/tracing/index.js';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { readCompleteJsonLines } from '../helpers/json-lines.js';
import { makeTestPki } from '../helpers/pki.js';
import { allocateMeshPorts, meshYaml } from '../e2e-mesh/mesh-fixture.js';
import { OtlpReceiver } from '../observability/otlp-receiver.js';
import type { ReceivedSpan } from '../observability/otlp-receiver.js';

const PROMTOOL = '/usr/bin/promtool';

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

/** `00-<trace>-<parent>-<flags>` → its parts. */
function traceparentOf(value: unknown): { traceId: string; parentId: string } {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(String(value));
  return { traceId: match?.[1] ?? '', parentId: match?.[2] ?? '' };
}

const receiver = await OtlpReceiver.start();
t.teardown(() => receiver.close());
const pki = await makeTestPki();
const ports = await allocateMeshPorts();
const productApp = await startUpstream(undefined, 'product-service');
t.teardown(() => productApp.close());
// The order app does what the mesh needs from applications: copy traceparent and x-request-id to its outbound call.
const orderApp = await startUpstream((request, response) => {
  const headers: Record<string, string> = { host: 'product-service' };
  for (const name of ['traceparent', 'tracestate', 'x-request-id']) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  get(ports.orderOutbound, '/api/products/42', headers).then(
    (product) => response.writeHead(product.status, { 'content-type': 'application/json' }).end(product.body),
    (error: Error) => response.writeHead(500).end(error.message),
  );
}, 'order-service');
t.teardown(() => orderApp.close());

const dir = await configDir('');
t.teardown(() => dir.remove());
const accessLogPath = join(dir.dir, 'access.log');
const yaml = meshYaml(pki, ports, { product: productApp.port, order: orderApp.port }).replace(
  '  accessLog: { enabled: false }',
  `  accessLog: { enabled: true, path: ${accessLogPath} }\n  tracing: { samplingPercent: 100, otlpEndpoint: "${receiver.url}" }`,
);
await dir.write(yaml);
const ingress = await startGateway(dir.file);
const productSidecar = await startGateway(dir.file, { mode: 'sidecar', workload: 'my-app/product', adminAddress: `127.0.0.1:${ports.admins[1]}` });
const orderSidecar = await startGateway(dir.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
t.teardown(() => Promise.all([ingress.stop(), productSidecar.stop(), orderSidecar.stop()]));

const reply = await get(ports.ingress, '/orders/1', { host: 'shop.example.com' });

t.test('the request crosses every hop', async (t) => {
  t.equal(reply.status, 200, reply.body);
  t.equal((JSON.parse(reply.body) as { url: string }).url, '/api/products/42');
});

t.test('one request, one trace, each hop parented on the previous one', async (t) => {
  await tracingPlugin.flush();
  let trace: ReceivedSpan[] = [];
  for (let attempt = 0; attempt < 50; attempt++) {
    const root = receiver.spans.find((span) => span.parentSpanId === '' && span.serviceName === 'ingressgateway.istio-system');
    trace = root === undefined ? [] : receiver.spans.filter((span) => span.traceId === root.traceId);
    if (trace.length >= 4) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
    await tracingPlugin.flush();
  }
  t.equal(new Set(receiver.spans.map((span) => span.traceId)).size, 1, 'every exported span belongs to the one trace');
  t.equal(trace.length, 4, 'ingress, order inbound, order outbound, product inbound');
  const chain: ReceivedSpan[] = [];
  let next = trace.find((span) => span.parentSpanId === '');
  while (next !== undefined && chain.length < 5) {
    chain.push(next);
    const parent: ReceivedSpan = next;
    next = trace.find((span) => span.parentSpanId === parent.spanId);
  }
  t.same(
    chain.map((span) => span.serviceName),
    ['ingressgateway.istio-system', 'order.my-app', 'order.my-app', 'product.my-app'],
    'ingress span → order sidecar inbound → order sidecar outbound → product sidecar inbound',
  );
  t.ok(chain.every((span) => span.kind === 2), 'every hop span is a SERVER span');

  const orderSaw = traceparentOf(orderApp.received.at(-1)?.headers.traceparent);
  t.equal(orderSaw.parentId, chain[1]?.spanId, 'the order app’s parent is the order sidecar inbound span');
  const productSaw = traceparentOf(productApp.received.at(-1)?.headers.traceparent);
  t.equal(productSaw.traceId, chain[0]?.traceId, 'the product app is in the same trace');
  t.equal(productSaw.parentId, chain[3]?.spanId, 'the product app’s parent is the product sidecar span');
});

t.test('istio_requests_total on each proxy: reporters, principals, code and flags; promtool accepts the exposition', async (t) => {
  const ingressPrincipal = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway';
  const orderPrincipal = 'spiffe://cluster.local/ns/my-app/sa/order-service';
  const productPrincipal = 'spiffe://cluster.local/ns/my-app/sa/product-service';
  const expectations: [number, string, RegExp[]][] = [
    [ports.admins[0] as number, 'ingress', [/reporter="source"/, new RegExp(`source_principal="${ingressPrincipal}"`), /destination_workload="order",/]],
    [ports.admins[2] as number, 'order sidecar', [/reporter="destination"/, new RegExp(`source_principal="${ingressPrincipal}"`), /source_workload="unknown",/, new RegExp(`destination_principal="${orderPrincipal}"`)]],
    [ports.admins[2] as number, 'order sidecar outbound', [/reporter="source"/, new RegExp(`source_principal="${orderPrincipal}"`), /destination_workload="product",/]],
    [ports.admins[1] as number, 'product sidecar', [/reporter="destination"/, new RegExp(`source_principal="${orderPrincipal}"`), /source_workload="order",/, new RegExp(`destination_principal="${productPrincipal}"`)]],
  ];
  for (const [admin, name, patterns] of expectations) {
    const metrics = await get(admin, '/stats/prometheus', {});
    t.equal(metrics.status, 200);
    const series = metrics.body
      .split('\n')
      .filter((line) => line.startsWith('istio_requests_total{'))
      .filter((line) => patterns.every((pattern) => pattern.test(line)));
    t.equal(series.length, 1, `${name}: one series ${patterns.map(String).join(' ')}`);
    t.match(series[0] ?? '', /response_code="200"/, `${name}: response_code`);
    t.match(series[0] ?? '', /response_flags="-"/, `${name}: response_flags`);
    t.match(series[0] ?? '', / 1$/, `${name}: counted once`);
  }
  if (!existsSync(PROMTOOL)) {
    t.comment('promtool is not installed: exposition check skipped');
    return;
  }
  const exposition = (await get(ports.admins[0] as number, '/stats/prometheus', {})).body;
  const output = await new Promise<string>((resolve) => {
    const child = execFile(PROMTOOL, ['check', 'metrics'], { timeout: 30_000 }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
    child.stdin?.end(exposition);
  });
  // Istio's own histogram name is not in base units; keeping it is the point of compatibility.
  const problems = output.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('istio_request_duration_milliseconds use base unit "seconds"'));
  t.same(problems, [], 'promtool check metrics finds nothing else');
});

t.test('access log: one JSON line per hop, all carrying the request id the apps saw', async (t) => {
  const requestId = String(productApp.received.at(-1)?.headers['x-request-id']);
  t.equal(orderApp.received.at(-1)?.headers['x-request-id'], requestId, 'the order app saw the same request id');
  let lines: Record<string, unknown>[] = [];
  // The proxies hand their lines to the file at least every 500 ms; a loaded CI machine can take longer.
  for (const deadline = Date.now() + 5000; lines.length < 4 && Date.now() < deadline; ) {
    lines = await readCompleteJsonLines(accessLogPath);
    if (lines.length < 4) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.equal(lines.length, 4, 'one line per hop (ingress, order inbound, order outbound, product inbound)');
  for (const line of lines) {
    t.equal(line.request_id, requestId, `${String(line.route_name)}: request id`);
    t.equal(line.response_code, 200);
    t.equal(line.response_flags, '-');
    t.match(String(line.upstream_cluster), /\S/, `${String(line.route_name)}: upstream cluster ${String(line.upstream_cluster)}`);
    t.match(String(line.upstream_host), /^127\.0\.0\.1:\d+$/, `${String(line.route_name)}: upstream host`);
    t.ok(Number.isInteger(line.upstream_service_time_ms) && Number(line.upstream_service_time_ms) >= 0, `${String(line.route_name)}: upstream service time of a relayed response`);
    t.ok(Number(line.bytes_sent) > 0 && Number(line.bytes_received) > 0, `${String(line.route_name)}: wire bytes`);
  }
  const byHost = new Map(lines.map((line) => [String(line.upstream_host), line]));
  t.ok(byHost.has(`127.0.0.1:${ports.orderInbound}`), 'the ingress line names the order sidecar as upstream host');
  t.ok(byHost.has(`127.0.0.1:${orderApp.port}`), 'the order inbound line names the order app');
  t.ok(byHost.has(`127.0.0.1:${ports.productInbound}`), 'the order outbound line names the product sidecar');
  t.ok(byHost.has(`127.0.0.1:${productApp.port}`), 'the product inbound line names the product app');
  t.match(String(byHost.get(`127.0.0.1:${ports.orderInbound}`)?.route_name), /^istio-system\/edge/, 'the ingress line names its route');
});
