import { execFile, execFileSync } from 'node:child_process';
import t from 'tap';
import type { PeerIdentity } from '../../gateway/pipeline/types.js';
import { BoundedCounter, LABEL_VALUE_MAX_LENGTH } from '../../gateway/metrics/registry.js';
import { recordAuthzDecision } from '../../plugins/authz/decision-metrics.js';
import {
  createMetricsPlugin,
  metricsPlugin,
  recordReload,
  renderPrometheus,
  renderStatsText,
  setCertificateExpiry,
  setConfigDiagnostics,
  setConfigGeneration,
  observeUpstreams,
} from '../../plugins/metrics/index.js';
import { ENVOY_DEFAULT_BUCKETS_MS } from '../../plugins/metrics/istio-metrics.js';
import { observeRateLimitBackend, rateLimitDecisionSeries } from '../../plugins/ratelimit/metrics.js';
import { MESH_CONFIG_API_VERSION } from '../../gateway/config/kinds/mesh-config.js';
import { afterResponses, buildPluginHarness } from '../helpers/plugin-harness.js';
import { makeResource } from '../helpers/resources.js';
import { findSamples, parseSamples } from './prom-text.js';
import type { Sample } from './prom-text.js';
import { RawHttpClient } from './raw-http.js';
import { scenarioPlugin } from './scenario-plugin.js';

const detailsEntry = makeResource('WorkloadEntry', 'details-v1', { address: '10.0.0.5', labels: { app: 'details', version: 'v1' } });

async function scrape(): Promise<Sample[]> {
  await afterResponses();
  return parseSamples((await renderPrometheus()).body);
}

function get(path: string, host: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n${extra}\r\n`;
}

t.test('ingress: Istio series with source reporter labels, exact wire bytes and Envoy buckets', async (t) => {
  const { app } = await buildPluginHarness({
    plugins: [scenarioPlugin, metricsPlugin],
    resources: [detailsEntry],
    mode: 'ingress',
    workload: { name: 'istio-ingressgateway', namespace: 'istio-system', serviceAccount: 'istio-ingressgateway', labels: { app: 'istio-ingressgateway' } },
  });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const client = await RawHttpClient.connect((app.server.address() as { port: number }).port);
  t.teardown(() => client.close());

  const first = get('/routed/1', 'details.example.com');
  const second = get('/routed/2?token=abc', 'details.example.com', 'X-Padding: 0123456789\r\n');
  const firstReply = await client.exchange(first);
  const secondReply = await client.exchange(second);
  t.equal(firstReply.status, 200);

  const samples = await scrape();
  const where = {
    reporter: 'source',
    source_workload: 'istio-ingressgateway',
    source_workload_namespace: 'istio-system',
    source_principal: 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway',
    source_app: 'istio-ingressgateway',
    source_version: 'unknown',
    source_canonical_service: 'istio-ingressgateway',
    source_canonical_revision: 'latest',
    destination_workload: 'details-v1',
    destination_workload_namespace: 'default',
    destination_principal: 'unknown',
    destination_app: 'details',
    destination_version: 'v1',
    destination_service: 'details.default.svc.cluster.local',
    destination_service_name: 'details',
    destination_service_namespace: 'default',
    destination_canonical_service: 'details',
    destination_canonical_revision: 'v1',
    request_protocol: 'http',
    response_code: '200',
    response_flags: '-',
    connection_security_policy: 'unknown',
    grpc_response_status: '',
  };
  const requests = findSamples(samples, 'istio_requests_total', where);
  t.equal(requests.length, 1, 'one series with every expected label');
  t.equal(requests[0]?.value, 2);
  t.same(Object.keys(requests[0]?.labels ?? {}).sort(), Object.keys(where).sort(), 'no label beyond the Istio set');

  const received = findSamples(samples, 'istio_request_bytes_sum', where)[0]?.value;
  t.equal(received, Buffer.byteLength(first) + Buffer.byteLength(second), 'request bytes = bytes written by the client');
  const sent = findSamples(samples, 'istio_response_bytes_sum', where)[0]?.value;
  t.equal(sent, firstReply.responseBytes + secondReply.responseBytes, 'response bytes = bytes read by the client');

  const buckets = findSamples(samples, 'istio_request_duration_milliseconds_bucket', where).map((sample) => sample.labels['le']);
  t.same(buckets, [...ENVOY_DEFAULT_BUCKETS_MS.map(String), '+Inf'], 'Envoy default buckets in ms');
  t.equal(findSamples(samples, 'istio_request_duration_milliseconds_count', where)[0]?.value, 2);
  t.notOk(JSON.stringify(samples).includes('/routed'), 'no raw path in any label');
  t.notOk(JSON.stringify(samples).includes('abc'), 'no query value in any label');
});

t.test('local replies carry their response flag and code; Host header stands in for an unknown service', async (t) => {
  const { app } = await buildPluginHarness({ plugins: [scenarioPlugin, metricsPlugin], resources: [], workload: { name: 'edge-a' } });
  t.teardown(() => app.close());
  const noRoute = await app.inject({ method: 'GET', url: '/no-route', headers: { host: 'shop.example.com:8080' } });
  t.equal(noRoute.statusCode, 404);
  await app.inject({ method: 'GET', url: '/overflow', headers: { host: 'shop.example.com' } });
  await app.inject({ method: 'POST', url: '/grpc', headers: { host: 'shop.example.com', 'content-type': 'application/grpc' }, payload: '' });

  const samples = await scrape();
  const nr = findSamples(samples, 'istio_requests_total', { source_workload: 'edge-a', response_code: '404' });
  t.equal(nr.length, 1);
  t.equal(nr[0]?.labels['response_flags'], 'NR');
  t.equal(nr[0]?.labels['destination_service'], 'shop.example.com');
  t.equal(nr[0]?.labels['destination_service_namespace'], 'unknown');
  const uo = findSamples(samples, 'istio_requests_total', { source_workload: 'edge-a', response_code: '503' });
  t.equal(uo[0]?.labels['response_flags'], 'UO');
  t.equal(uo[0]?.labels['destination_service'], 'details.default.svc.cluster.local', 'the cluster names the service');
  const grpc = findSamples(samples, 'istio_requests_total', { source_workload: 'edge-a', request_protocol: 'grpc' });
  t.equal(grpc.length, 1);
  t.equal(grpc[0]?.labels['grpc_response_status'], '14');
  t.equal(grpc[0]?.labels['response_flags'], '-');
});

t.test('sidecar inbound over mTLS reports as destination with the peer identity', async (t) => {
  const peer: PeerIdentity = {
    principal: 'cluster.local/ns/foo/sa/sleep',
    trustDomain: 'cluster.local',
    namespace: 'foo',
    serviceAccount: 'sleep',
    uri: 'spiffe://cluster.local/ns/foo/sa/sleep',
    certHash: 'ab',
  };
  const { app } = await buildPluginHarness({
    plugins: [scenarioPlugin, metricsPlugin],
    resources: [],
    mode: 'sidecar',
    workload: { name: 'httpbin-v1', namespace: 'default', serviceAccount: 'httpbin', labels: { app: 'httpbin', version: 'v1' } },
    attrs: (request) => (request.headers['x-test-plaintext'] === undefined ? { peer } : {}),
  });
  t.teardown(() => app.close());
  await app.inject({ method: 'GET', url: '/inbound', headers: { host: 'httpbin.default.svc.cluster.local:8000' } });
  await app.inject({ method: 'GET', url: '/inbound', headers: { host: 'httpbin.default.svc.cluster.local:8000', 'x-test-plaintext': '1' } });
  await app.inject({ method: 'GET', url: '/routed', headers: { host: 'details', 'x-test-plaintext': '1' } });

  const samples = await scrape();
  const mtls = findSamples(samples, 'istio_requests_total', { destination_workload: 'httpbin-v1', connection_security_policy: 'mutual_tls' });
  t.equal(mtls.length, 1);
  t.match(mtls[0]?.labels, {
    reporter: 'destination',
    source_principal: 'spiffe://cluster.local/ns/foo/sa/sleep',
    source_workload_namespace: 'foo',
    source_workload: 'unknown',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/httpbin',
    destination_app: 'httpbin',
    destination_version: 'v1',
    destination_service: 'httpbin.default.svc.cluster.local',
    destination_service_name: 'httpbin',
    destination_service_namespace: 'default',
  });
  const plaintext = findSamples(samples, 'istio_requests_total', { destination_workload: 'httpbin-v1', connection_security_policy: 'none' });
  t.equal(plaintext[0]?.labels['source_principal'], 'unknown');
  t.equal(plaintext[0]?.labels['destination_principal'], 'unknown', 'no handshake, no proven identity');
  const outbound = findSamples(samples, 'istio_requests_total', { source_workload: 'httpbin-v1', reporter: 'source' });
  t.equal(outbound.length, 1, 'sidecar outbound reports as source');
  t.equal(outbound[0]?.labels['destination_service'], 'details.default.svc.cluster.local');
  t.equal(outbound[0]?.labels['destination_workload'], 'unknown', 'no WorkloadEntry at the upstream address');
});

t.test('MeshConfig metrics.enabled: false records no Istio series (meshgate series stay)', async (t) => {
  const meshConfig = makeResource('MeshConfig', 'mesh', { metrics: { enabled: false } }, { apiVersion: MESH_CONFIG_API_VERSION, namespace: 'istio-system' });
  const { app } = await buildPluginHarness({ plugins: [scenarioPlugin, metricsPlugin], resources: [meshConfig], workload: { name: 'edge-unmetered' } });
  t.teardown(() => app.close());
  const reply = await app.inject({ method: 'GET', url: '/routed/1', headers: { host: 'details.example.com' } });
  t.equal(reply.statusCode, 200);
  const samples = await scrape();
  t.equal(findSamples(samples, 'istio_requests_total', { source_workload: 'edge-unmetered' }).length, 0);
  t.ok(findSamples(samples, 'meshgate_build_info', {}).length > 0, 'meshgate series are still rendered');
});

t.test('cardinality cap collapses new label sets into overflow and counts them; values are truncated', async (t) => {
  const { app } = await buildPluginHarness({ plugins: [scenarioPlugin, createMetricsPlugin({ maxSeries: 2 })], resources: [], workload: { name: 'edge-capped' } });
  t.teardown(() => app.close());
  const droppedBefore = findSamples(await scrape(), 'meshgate_metric_series_dropped_total', { metric: 'istio_requests_total' })[0]?.value ?? 0;
  const longHost = `${'a'.repeat(300)}.example.com`;
  for (const host of [longHost, 'b.example.com', 'c.example.com', 'd.example.com', 'c.example.com']) {
    await app.inject({ method: 'GET', url: '/no-route', headers: { host } });
  }
  const samples = await scrape();
  const capped = findSamples(samples, 'istio_requests_total', { source_workload: 'edge-capped' });
  t.equal(capped.length, 2, 'only the cap of distinct series');
  t.ok(capped.some((sample) => sample.labels['destination_service']?.length === LABEL_VALUE_MAX_LENGTH), 'long value truncated');
  const overflow = findSamples(samples, 'istio_requests_total', { reporter: 'overflow', destination_service: 'overflow' });
  t.equal(overflow[0]?.value, 3, 'the three requests beyond the cap land in overflow');
  const droppedAfter = findSamples(samples, 'meshgate_metric_series_dropped_total', { metric: 'istio_requests_total' })[0]?.value ?? 0;
  t.equal(droppedAfter - droppedBefore, 3);

  const tiny = new BoundedCounter({ name: 'meshgate_test_capped_total', help: 'Test counter with a cap of one series.', labelNames: ['who'], maxSeries: 1 });
  tiny.inc({ who: 'first' });
  tiny.inc({ who: 'second' });
  const tinySamples = findSamples(await scrape(), 'meshgate_test_capped_total');
  t.same(tinySamples.map((sample) => sample.labels['who']).sort(), ['first', 'overflow']);
});

t.test('meshgate series are set by the typed functions', async (t) => {
  setConfigGeneration(7);
  recordReload('applied');
  recordReload('rejected');
  setConfigDiagnostics([
    { code: 'MG0101', severity: 'warning', message: 'w', position: { file: 'f', line: 1, col: 1 } },
    { code: 'MG0102', severity: 'warning', message: 'w', position: { file: 'f', line: 2, col: 1 } },
  ]);
  recordAuthzDecision('default/deny-all', 'DENY', 'denied');
  rateLimitDecisionSeries('default/per-ip', 'limited').inc();
  observeUpstreams(() => [{ name: 'outbound|80||a', active: 1, ejections: 2, connectFailures: 3 }]);
  setCertificateExpiry('spiffe://cluster.local/ns/default/sa/x', new Date('2030-01-01T00:00:00Z'));
  const samples = await scrape();
  t.equal(findSamples(samples, 'meshgate_config_generation')[0]?.value, 7);
  t.equal(findSamples(samples, 'meshgate_config_reloads_total', { result: 'rejected' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_config_diagnostics', { severity: 'warning' })[0]?.value, 2);
  t.equal(findSamples(samples, 'meshgate_config_diagnostics', { severity: 'error' })[0]?.value, 0);
  t.equal(findSamples(samples, 'meshgate_authz_decisions_total', { policy: 'default/deny-all', action: 'DENY', result: 'denied' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_ratelimit_decisions_total', { policy: 'default/per-ip', result: 'limited' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_upstream_requests_active', { cluster: 'outbound|80||a' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_outlier_ejections_total', { cluster: 'outbound|80||a' })[0]?.value, 2);
  t.equal(findSamples(samples, 'meshgate_upstream_connect_errors_total', { cluster: 'outbound|80||a' })[0]?.value, 3, 'connect failures read from the cluster, retried ones included');
  t.equal(findSamples(samples, 'meshgate_certificate_expiry_timestamp_seconds')[0]?.value, 1893456000);
  t.equal(findSamples(samples, 'meshgate_build_info')[0]?.labels['node_version'], process.versions.node);

  const stats = await renderStatsText();
  t.match(stats, /^meshgate_config_generation: 7$/m);
  t.match(stats, /^istio_request_duration_milliseconds\{.*reporter=source.*\}: count=\d+ sum=[\d.]+ mean=[\d.]+$/m);
});

t.test('the rate limiter store state and its fallback decisions are exported (read at scrape time)', async (t) => {
  const backend = { state: 'down' as 'down' | 'up', errors: 4, fallbackDecisions: 3, transitions: 1 };
  observeRateLimitBackend(() => backend);
  let samples = await scrape();
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_state', { state: 'down' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_state', { state: 'up' })[0]?.value, 0);
  t.equal(findSamples(samples, 'meshgate_ratelimit_fallback_decisions_total')[0]?.value, 3);
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_errors_total')[0]?.value, 4);
  backend.state = 'up';
  backend.fallbackDecisions = 5;
  backend.transitions = 2;
  samples = await scrape();
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_state', { state: 'up' })[0]?.value, 1);
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_state', { state: 'down' })[0]?.value, 0);
  t.equal(findSamples(samples, 'meshgate_ratelimit_fallback_decisions_total')[0]?.value, 5, 'counts what was added since the last scrape');
  t.equal(findSamples(samples, 'meshgate_ratelimit_backend_transitions_total')[0]?.value, 2);
});

function promtoolPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const promtool = promtoolPath();
const promtoolSkip = promtool === null ? 'promtool is not installed (Debian package `prometheus`): exposition lint not run' : false;

t.test('promtool check metrics accepts the exposition', { skip: promtoolSkip }, async (t) => {
  if (promtool === null) return;
  const { contentType, body } = await renderPrometheus();
  t.match(contentType, /^text\/plain; version=0\.0\.4/);
  const problems = await new Promise<string>((resolve) => {
    const child = execFile(promtool, ['check', 'metrics'], { timeout: 30_000 }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
    child.stdin?.end(body);
  });
  // Istio's own name is not in base units; that is the one lint problem we must keep for compatibility.
  t.comment(`promtool said: ${problems.trim()}`);
  const unexpected = problems
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('istio_request_duration_milliseconds use base unit "seconds"'));
  t.same(unexpected, [], 'no lint problem besides Istio\'s millisecond histogram name');
});
