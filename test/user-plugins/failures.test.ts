/**
 * Isolation: a plugin hook that throws or rejects answers only its own request (500, flag PLUGIN, the
 * plugin named in the reason and the metric); FAIL_OPEN skips it; a plugin scoped to one route never
 * touches another route's requests.
 */
import t from 'tap';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { freePorts, request } from '../e2e-ingress/support.js';
import { fixtureUrl, gatewayConfig, pluginYaml, shopRoutes } from './support.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());
const [adminPort, port] = (await freePorts(2)) as [number, number];
const yaml = gatewayConfig(
  adminPort,
  port,
  upstream.port,
  [
    shopRoutes(`    - name: fragile
      match: [{uri: {prefix: /fragile}}]
      route: [{destination: {host: app.internal}}]
    - name: other
      route: [{destination: {host: app.internal}}]
`),
    pluginYaml({
      name: 'boom',
      url: fixtureUrl('probe'),
      phase: 'STATS',
      config: '{ label: boom }',
      extra: '  targetRefs: [{ kind: VirtualService, name: shop, namespace: default, sectionName: fragile }]\n',
    }),
    pluginYaml({ name: 'soft', url: fixtureUrl('probe'), failStrategy: 'FAIL_OPEN', config: '{ label: soft }' }),
  ].join('\n'),
);
const dir = await configDir(yaml);
t.teardown(() => dir.remove());
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());

async function metricValue(series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.slice(series.length).trim());
}

t.test('a throwing or rejecting FAIL_CLOSE plugin answers its request with 500 naming it', async (t) => {
  const before = upstream.received.length;
  for (const header of ['x-fail', 'x-fail-async']) {
    const response = await request(port, '/fragile', { headers: { [header]: 'boom' } });
    t.equal(response.status, 500, header);
    t.equal(response.headers['x-meshgate-reason'], 'PLUGIN plugin_failed[istio-system/boom]');
    t.match(response.body, /plugin istio-system\/boom failed/);
  }
  t.equal(upstream.received.length, before, 'nothing was forwarded');
  t.equal(await metricValue('meshgate_plugin_errors_total{plugin="istio-system/boom",outcome="local_reply"}'), 2);
  const logged = gateway.logs.filter((line) => line.plugin === 'istio-system/boom' && line.msg === 'plugin hook failed');
  t.equal(logged.length, 2, 'each failure is logged with the plugin name');
});

t.test('the same failure trigger on another route does nothing: the plugin is not placed there', async (t) => {
  const response = await request(port, '/elsewhere', { headers: { 'x-fail': 'boom' } });
  t.equal(response.status, 200);
  t.equal(upstream.received.at(-1)?.headers['x-order'], 'soft');
});

t.test('requests of the fragile route without the trigger pass through it', async (t) => {
  const responses = await Promise.all([1, 2, 3].map(() => request(port, '/fragile/ok')));
  t.same(responses.map((r) => r.status), [200, 200, 200]);
  t.equal(upstream.received.at(-1)?.headers['x-order'], 'boom,soft');
});

t.test('a failing FAIL_OPEN plugin is skipped for that request and counted', async (t) => {
  const before = await metricValue('meshgate_plugin_errors_total{plugin="istio-system/soft",outcome="skipped"}');
  const response = await request(port, '/fragile/x', { headers: { 'x-fail-async': 'soft' } });
  t.equal(response.status, 200);
  t.equal(upstream.received.at(-1)?.headers['x-order'], 'boom', 'the request reached the upstream without soft\'s edit');
  t.equal(await metricValue('meshgate_plugin_errors_total{plugin="istio-system/soft",outcome="skipped"}'), before + 1);
});
