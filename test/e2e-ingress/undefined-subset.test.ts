/**
 * A route to a subset no DestinationRule defines (Istio: 503 NC at run time, not a rejected config):
 * the config loads, that route answers 503 with flag NC (reason header, access log, metrics) while the
 * other routes serve; a reload that adds the subset makes the route work, one that removes it brings
 * the 503 back — each reload applied, never rejected.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { renderPrometheus } from '../../plugins/metrics/index.js';
import { eventually } from '../helpers/eventually.js';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { findSamples, parseSamples } from '../observability/prom-text.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, request, serviceEntryYaml, virtualServiceYaml } from './support.js';

const HOST = 'app.example.internal';
const [adminPort, gatewayPort] = await freePorts(2);
const v1 = await startUpstream((_request, response) => response.end('v1'), 'v1');
const v2 = await startUpstream((_request, response) => response.end('v2'), 'v2');
const logDir = await mkdtemp(join(tmpdir(), 'meshgate-nc-'));
const accessLogPath = join(logDir, 'access.jsonl');

function configYaml(subsets: readonly string[]): string {
  const destinationRule =
    subsets.length === 0
      ? ''
      : `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: app
spec:
  host: ${HOST}
  subsets:
${subsets.map((name) => `    - {name: ${name}, labels: {version: ${name}}}`).join('\n')}
`;
  return [
    meshConfigYaml(adminPort as number, '').replace('enabled: false', `enabled: true\n    path: ${accessLogPath}`),
    gatewayYaml('edge', httpServerYaml(gatewayPort as number, ['*'])),
    virtualServiceYaml(
      'app',
      ['*'],
      'edge',
      `    - name: canary
      match: [{uri: {prefix: /canary}}]
      route: [{destination: {host: ${HOST}, subset: v2}}]
    - name: stable
      route: [{destination: {host: ${HOST}, subset: v1}}]
`,
    ),
    serviceEntryYaml('app', HOST, [
      { port: v1.port, labels: { version: 'v1' } },
      { port: v2.port, labels: { version: 'v2' } },
    ]),
    destinationRule,
  ].join('');
}

const dir = await configDir(configYaml(['v1']));
const gateway = await startGateway(dir.file, { watch: true });
t.teardown(async () => {
  await gateway.stop();
  await v1.close();
  await v2.close();
  await dir.remove();
  await rm(logDir, { recursive: true, force: true });
});

async function accessLogLines(): Promise<Record<string, unknown>[]> {
  if (!existsSync(accessLogPath)) return [];
  const text = await readFile(accessLogPath, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function reloadTo(subsets: readonly string[], generation: number): Promise<void> {
  await dir.write(configYaml(subsets));
  await eventually(
    () => gateway.runtime.current().generation,
    (current) => current === generation,
  );
}

t.test('initial load: the config is accepted with a warning, the route answers 503 NC, the others serve', async (t) => {
  t.equal(gateway.runtime.current().generation, 1, 'the config loaded');
  t.match(gateway.runtime.current().diagnostics, [
    { code: 'MG0203', severity: 'warning', field: 'spec.http[0].route[0].destination.subset', message: /route "canary" sends to subset "v2" of host "app.example.internal", which no DestinationRule defines/ },
  ]);

  const canary = await request(gatewayPort as number, '/canary/1');
  t.equal(canary.status, 503);
  t.equal(canary.headers['x-meshgate-reason'], 'NC cluster_not_found');
  t.match(canary.body, /no upstream cluster for subset "v2" of host "app.example.internal"/);

  const stable = await request(gatewayPort as number, '/other');
  t.equal(stable.status, 200);
  t.equal(stable.body, 'v1', 'the route next to it is unaffected');

  const lines = await eventually(accessLogLines, (all) => all.some((line) => line['path'] === '/canary/1'));
  t.match(
    lines.find((line) => line['path'] === '/canary/1'),
    { response_code: 503, response_flags: 'NC', response_code_details: 'cluster_not_found', route_name: 'canary', upstream_cluster: null },
  );
  const samples = parseSamples((await renderPrometheus()).body);
  const nc = findSamples(samples, 'istio_requests_total', { response_flags: 'NC', response_code: '503' });
  t.ok(nc.length > 0 && (nc[0]?.value ?? 0) >= 1, 'istio_requests_total counts the NC reply');
});

t.test('a reload that defines the subset makes the route work; removing it brings 503 NC back', async (t) => {
  await reloadTo(['v1', 'v2'], 2);
  t.same(gateway.runtime.current().diagnostics.filter((d) => d.code === 'MG0203'), [], 'no warning once the subset exists');
  const served = await request(gatewayPort as number, '/canary/2');
  t.equal(served.status, 200);
  t.equal(served.body, 'v2');

  await reloadTo(['v1'], 3);
  t.match(gateway.runtime.current().diagnostics, [{ code: 'MG0203', severity: 'warning' }], 'the reload was applied, with the warning');
  const again = await request(gatewayPort as number, '/canary/3');
  t.equal(again.status, 503);
  t.equal(again.headers['x-meshgate-reason'], 'NC cluster_not_found');
  t.equal((await request(gatewayPort as number, '/other')).body, 'v1');
});
