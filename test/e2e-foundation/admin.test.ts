/**
 * The admin API of a running gateway (in-process, real sockets): liveness and readiness, the config
 * dump with provenance, server info, reload (POST only), Prometheus metrics, clusters and certificates.
 */
import t from 'tap';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { eventually, ingressYaml, invalidIngressYaml, json, request } from './fixtures.js';

const upstream = await startUpstream();
const adminPort = await freePort();
const gatewayPort = await freePort();
const config = { adminPort, gatewayPort, upstreamPort: upstream.port };
const dir = await configDir(ingressYaml(config));
/** 1-based line of each document's `apiVersion` (the line above its `kind:`). */
const yamlLines = ingressYaml(config).split('\n');
const documentLine = (kind: string): number => yamlLines.indexOf(`kind: ${kind}`);
const gateway = await startGateway(dir.file);
const admin = `http://127.0.0.1:${adminPort}`;

t.teardown(async () => {
  await gateway.stop();
  await upstream.close();
  await dir.remove();
});

t.test('/live and /ready answer 200 once the first snapshot is active', async (t) => {
  t.same((await json(`${admin}/live`)).body, { live: true });
  const ready = await json(`${admin}/ready`);
  t.equal(ready.status, 200);
  t.same(ready.body, { ready: true, generation: 1 });
  const proxied = await request(`http://127.0.0.1:${gatewayPort}/hello`);
  t.equal(proxied.status, 200, 'the gateway serves while ready');
});

t.test('/server_info', async (t) => {
  const { status, body } = await json(`${admin}/server_info`);
  t.equal(status, 200);
  t.match(body, { mode: 'ingress', state: 'LIVE', generation: 1, version: String, uptimeSeconds: Number });
});

t.test('/config_dump: generation, hash, resources with file:line provenance, diagnostics', async (t) => {
  const { status, body } = await json(`${admin}/config_dump`);
  t.equal(status, 200);
  t.equal(body.generation, 1);
  t.match(body.hash, /^[0-9a-f]{64}$/);
  t.same(body.files, [dir.file]);
  const resources = body.resources as { kind: string; namespace: string; name: string; source: string; status: string }[];
  t.same(
    resources.map((r) => [r.kind, `${r.namespace}/${r.name}`, r.source, r.status]),
    [
      ['MeshConfig', 'istio-system/mesh', `${dir.file}:1:1`, 'valid'],
      ['Gateway', 'istio-system/edge', `${dir.file}:${documentLine('Gateway')}:1`, 'valid'],
      ['VirtualService', 'default/app', `${dir.file}:${documentLine('VirtualService')}:1`, 'valid'],
      ['ServiceEntry', 'default/app', `${dir.file}:${documentLine('ServiceEntry')}:1`, 'valid'],
    ],
  );
  t.same(body.listeners, [{ address: `127.0.0.1:${gatewayPort}`, protocol: 'http', servers: ['istio-system/edge/0'] }]);
  t.same(body.diagnostics, []);
  t.same(body.lastRejected, []);
  const clusters = body.clusters as { name: string; endpoints: number }[];
  t.ok(clusters.some((c) => c.name.includes('app.example.internal') && c.endpoints === 1), 'the ServiceEntry cluster is listed');
});

t.test('POST /reload: unchanged, rejected (422, diagnostics in the dump), applied; GET is 405', async (t) => {
  const unchanged = await json(`${admin}/reload`, 'POST');
  t.equal(unchanged.status, 200);
  t.match(unchanged.body, { ok: true, generation: 1, message: 'unchanged' });

  await dir.write(invalidIngressYaml(config));
  const rejected = await json(`${admin}/reload`, 'POST');
  t.equal(rejected.status, 422);
  t.match(rejected.body, { ok: false, generation: 1, errors: 1, message: 'configuration rejected' });
  const dump = (await json(`${admin}/config_dump`)).body;
  t.equal(dump.generation, 1, 'the old snapshot is still the active one');
  t.match(dump.lastRejected, [{ code: 'MG0207', severity: 'error', at: new RegExp(`^${dir.file}:\\d+:\\d+$`) }]);

  await dir.write(ingressYaml({ ...config, version: '2' }));
  const applied = await json(`${admin}/reload`, 'POST');
  t.equal(applied.status, 200);
  t.match(applied.body, { ok: true, generation: 2, message: 'applied' });
  t.same((await json(`${admin}/config_dump`)).body.lastRejected, [], 'a good reload clears the rejection');
  t.equal((await request(`http://127.0.0.1:${gatewayPort}/`)).headers['x-config-version'], '2');

  for (const method of ['GET', 'PUT', 'DELETE']) {
    const response = await request(`${admin}/reload`, { method });
    t.equal(response.status, 405, `${method} /reload`);
    t.equal(response.headers.allow, 'POST');
  }
  t.equal((await request(`${admin}/shutdown`)).status, 405, 'GET /shutdown');
});

t.test('/stats/prometheus exposes the config generation and reload counters', async (t) => {
  const response = await request(`${admin}/stats/prometheus`);
  t.equal(response.status, 200);
  t.match(response.headers['content-type'], /^text\/plain/);
  t.match(response.body, /^meshgate_config_generation 2$/m);
  t.match(response.body, /^meshgate_config_reloads_total\{result="rejected"\} 1$/m);
  t.match(response.body, /^meshgate_config_reloads_total\{result="applied"\} 1$/m);
  t.match(response.body, /^meshgate_build_info\{/m);
});

t.test('/clusters lists endpoints with health', async (t) => {
  const { status, body } = await json(`${admin}/clusters`);
  t.equal(status, 200);
  const clusters = body.clusters as { name: string; endpoints: unknown[] }[];
  const app = clusters.find((c) => c.name.includes('app.example.internal'));
  t.ok(app, 'app cluster present');
  t.match(app?.endpoints, [{ address: `127.0.0.1:${upstream.port}`, healthy: true, ejectedUntil: null, ejectedForMs: 0, totalFailures: 0 }]);
});

t.test('/certs shows the proxy identity and its expiry', async (t) => {
  const { status, body } = await json(`${admin}/certs`);
  t.equal(status, 200);
  t.match(body.identity, { principal: 'cluster.local/ns/istio-system/sa/istio-ingressgateway' });
  t.ok(Number(body.secondsToExpiry) > 0);
  t.ok(Array.isArray(body.trustBundle) && (body.trustBundle as unknown[]).length >= 1);
});

t.test('/ready turns 503 while draining, before the admin port closes', async (t) => {
  // The upstream holds its answer until the test has looked at the draining state.
  let answer = (): void => undefined;
  const slow = await startUpstream((_request, response) => {
    answer = () => response.end('slow');
  });
  t.teardown(() => slow.close());
  await dir.write(ingressYaml({ ...config, upstreamPort: slow.port, version: '3' }));
  t.match((await json(`${admin}/reload`, 'POST')).body, { ok: true, generation: 3 });
  const inFlight = request(`http://127.0.0.1:${gatewayPort}/slow`);
  t.ok(await eventually(() => slow.received.length === 1, 20_000), 'the request reached the upstream');
  const stopped = gateway.stop();
  t.ok(await eventually(async () => (await json(`${admin}/ready`)).status === 503, 20_000), '/ready turned 503');
  t.same((await json(`${admin}/ready`)).body, { ready: false, reason: 'draining' });
  t.match((await json(`${admin}/server_info`)).body, { state: 'DRAINING' });
  answer();
  t.equal((await inFlight).status, 200, 'the in-flight request finished');
  await stopped;
});
