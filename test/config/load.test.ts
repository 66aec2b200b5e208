import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import t from 'tap';
import type { DestinationRuleSpec } from '../../gateway/config/kinds/destination-rule.js';
import type { GatewaySpec } from '../../gateway/config/kinds/gateway.js';
import type { MeshConfigSpec } from '../../gateway/config/kinds/mesh-config.js';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { loadConfig } from '../../gateway/config/load.js';
import { parseConfigText } from '../../gateway/config/parse-documents.js';
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import { validateResources } from '../../gateway/config/validate.js';
import { effectiveEdgeSettings } from '../../gateway/http/request-guard.js';

const registry = buildKindRegistry();
const where = (d: Diagnostic) => `${d.position.line}:${d.position.col} ${d.code}`;
const errors = (diagnostics: readonly Diagnostic[]) => diagnostics.filter((d) => d.severity === 'error');

t.test('the seed loads with zero errors and keeps every field', async (t) => {
  const result = await loadConfig('config/examples/seed-istio.yaml');
  t.same(result.diagnostics, []);
  t.same(errors(validateResources(result.resources)), []);
  t.same(
    result.resources.map((r) => `${r.apiVersion} ${r.kind} ${r.metadata.namespace}/${r.metadata.name} @${r.source.line}#${r.source.order}`),
    [
      'networking.istio.io/v1beta1 VirtualService default/product-service @4#0',
      'networking.istio.io/v1beta1 DestinationRule default/product-service @36#1',
      'security.istio.io/v1beta1 AuthorizationPolicy my-app/product-service-policy @67#2',
      'security.istio.io/v1beta1 PeerAuthentication my-app/default @97#3',
    ],
  );
  const dr = result.resources[1] as Resource<DestinationRuleSpec>;
  t.equal(dr.spec.trafficPolicy?.loadBalancer?.simple, 'LEAST_CONN');
  t.equal(dr.spec.trafficPolicy?.tls?.mode, 'ISTIO_MUTUAL');
  t.same(dr.spec.subsets?.map((s) => s.labels), [{ version: 'v1' }, { version: 'v2' }]);
  t.ok(Object.isFrozen(dr.spec), 'specs are immutable');
  t.same(result.resources[0]?.at(['spec', 'http', 1, 'retries', 'perTryTimeout']), { file: 'config/examples/seed-istio.yaml', line: 32, col: 9 });
  t.same(result.resources[0]?.at(['spec', 'http', 1, 'nope', 'deeper']), { file: 'config/examples/seed-istio.yaml', line: 21, col: 7 }, 'falls back to the nearest parent');
  t.match(result.hash, /^[0-9a-f]{64}$/);
  t.same(result.files, ['config/examples/seed-istio.yaml']);
});

t.test('the broken seed reports each mistake at its position', async (t) => {
  const result = await loadConfig('config/examples/broken');
  const all = [...result.diagnostics, ...validateResources(result.resources)].map(where);
  t.same(all, ['84:13 MG0101', '104:5 MG0104', '19:13 MG0213', '28:13 MG0203', '33:9 MG0215', '41:3 MG0213']);
  t.same(result.resources.map((r) => r.kind), ['VirtualService', 'DestinationRule'], 'resources with errors are excluded');
});

t.test('directory loading: sorted, non-recursive, dotfiles skipped, document order across files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const entry = (name: string) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ${name}}\nspec: {hosts: [${name}.example.com]}\n`;
  await writeFile(join(dir, 'b.yml'), entry('second'));
  await writeFile(join(dir, 'a.yaml'), `${entry('first')}---\n${entry('first-b')}`);
  await writeFile(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'third' }, spec: { hosts: ['third.example.com'] } }));
  await writeFile(join(dir, '.#a.yaml'), 'garbage: [');
  await writeFile(join(dir, 'notes.txt'), 'ignored');
  const result = await loadConfig(dir);
  t.same(result.diagnostics, []);
  t.same(result.files, [join(dir, 'a.yaml'), join(dir, 'b.yml'), join(dir, 'c.json')]);
  t.same(result.resources.map((r) => `${r.metadata.name}#${r.source.order}`), ['first#0', 'first-b#1', 'second#2', 'third#3']);
  const again = await loadConfig(dir);
  t.equal(again.hash, result.hash, 'same contents, same hash');
  await writeFile(join(dir, 'b.yml'), entry('changed'));
  t.not((await loadConfig(dir)).hash, result.hash, 'changed contents, new hash');
});

t.test('a file hashed in many pieces: the hash of its bytes, every document and line as read whole', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // 3 000 documents of 6 lines (~400 KB, several hashed pieces), multi-byte characters on every other line.
  const entry = (index: number) => `# café ${index} — ünïcödé\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n# ✓ ${index}\nmetadata: {name: entry-${index}}\nspec: {hosts: [entry-${index}.example.com]}\n`;
  const documents = Array.from({ length: 3_000 }, (_, index) => entry(index));
  const broken = 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: broken}\nspec: {hosts: [broken.example.com], resolution: NOPE}\n';
  const text = [...documents, broken].join('---\n');
  const file = join(dir, 'many.yaml');
  await writeFile(file, text);
  const result = await loadConfig(file);
  t.equal(result.hash, createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex'), 'sha256 of the file');
  t.equal(result.resources.length, 3_000);
  t.same(result.resources.at(-1)?.source, { file, line: 2_999 * 7 + 2, col: 1, order: 2_999 }, 'the last document starts where the file has it (past its comment)');
  t.same(
    result.diagnostics.map((d) => [d.code, d.position.line]),
    [['MG0104', 3_000 * 7 + 4]],
    'a problem in the last document is placed on its line',
  );
});

t.test('unreadable path and empty directory', async (t) => {
  const missing = await loadConfig('does/not/exist.yaml');
  t.same(missing.diagnostics.map((d) => `${d.code} ${d.severity}`), ['MG0001 error']);
  t.same(missing.resources, []);
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-empty-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const empty = await loadConfig(dir);
  t.same(empty.diagnostics.map((d) => `${d.code} ${d.severity}`), ['MG0011 warning']);
});

t.test('defaults: namespace, enum zero values, a whole default MeshConfig', async (t) => {
  const text = [
    'apiVersion: meshgate.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  tracing: {samplingPercent: 100}\n',
    'apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n    - port: {number: 443, name: https, protocol: HTTPS}\n      hosts: ["*"]\n      tls: {credentialName: shop}\n',
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: shop}\nspec: {}\n',
  ].join('---\n');
  const { resources, diagnostics } = parseConfigText(text, 'defaults.yaml', registry);
  t.same(diagnostics, []);
  const mesh = resources[0]?.spec as MeshConfigSpec;
  t.equal(resources[0]?.metadata.namespace, 'default');
  t.equal(mesh.trustDomain, 'cluster.local');
  t.equal(mesh.rootNamespace, 'istio-system');
  t.equal(mesh.pathNormalization, undefined, 'unset: the mode decides (MERGE_SLASHES at the ingress, BASE in a sidecar)');
  t.equal(effectiveEdgeSettings(mesh, 'sidecar').pathNormalization, 'BASE');
  t.equal(effectiveEdgeSettings(mesh, 'ingress').pathNormalization, 'MERGE_SLASHES');
  t.equal(mesh.maxRequestHeaders, 100);
  t.same(mesh.outboundTrafficPolicy, { mode: 'ALLOW_ANY' });
  t.same(mesh.ingress, { namespace: 'istio-system', serviceAccount: 'istio-ingressgateway', labels: { istio: 'ingressgateway' } });
  t.same(mesh.tracing, { samplingPercent: 100, trustIncomingContext: true }, 'given fields kept, missing ones defaulted');
  t.equal((resources[1]?.spec as GatewaySpec).servers[0]?.tls?.mode, 'PASSTHROUGH');
  t.same(resources[2]?.spec, { action: 'ALLOW' });
});

t.test('all problems of a document are reported, not just the first', async (t) => {
  const text = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: many}\nspec:\n  hots: x\n  subsets: [{nam: a}]\n  trafficPolicy: {loadBalancer: {simple: NOPE}}\n';
  const { resources, diagnostics } = parseConfigText(text, 'many.yaml', registry);
  t.same(resources, []);
  t.same(diagnostics.map(where), ['4:1 MG0102', '5:3 MG0101', '6:13 MG0102', '6:14 MG0101', '7:34 MG0104']);
  t.same(diagnostics.map((d) => d.field), ['spec.host', 'spec.hots', 'spec.subsets[0].name', 'spec.subsets[0].nam', 'spec.trafficPolicy.loadBalancer.simple']);
});

t.test('plugin kinds are validated with their own schema; core kinds cannot be redefined', async (t) => {
  const extra = buildKindRegistry([
    { group: 'meshgate.dev', versions: ['v1alpha1'], kind: 'Widget', spec: Type.Object({ size: Type.Integer() }, { additionalProperties: false }) },
    { group: 'networking.istio.io', versions: ['v1'], kind: 'Gateway', spec: Type.Object({}) },
  ]);
  const widget = (size: string) => `apiVersion: meshgate.dev/v1alpha1\nkind: Widget\nmetadata: {name: w}\nspec: {size: ${size}}\n`;
  t.same(parseConfigText(widget('3'), 'w.yaml', extra).diagnostics, []);
  t.same(parseConfigText(widget('"big"'), 'w.yaml', extra).diagnostics.map(where), ['4:8 MG0103']);
  t.same(parseConfigText(widget('3'), 'w.yaml', registry).diagnostics.map(where), ['2:1 MG0006'], 'unknown without the plugin');
  t.equal(extra.lookup('networking.istio.io/v1', 'Gateway')?.origin, 'core');
});

t.test('directResponse bodies: > 100 KB warns, > 1 MB is an error', async (t) => {
  const vs = (body: string) =>
    `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: big}\nspec:\n  http:\n    - directResponse:\n        status: 200\n        body: {string: "${body}"}\n`;
  for (const [size, expected] of [[100 * 1024, []], [100 * 1024 + 1, ['8:9 MG0210']], [1024 * 1024 + 1, ['8:9 MG0209']]] as const) {
    const { resources, diagnostics } = parseConfigText(vs('x'.repeat(size)), 'big.yaml', registry);
    t.same(diagnostics, []);
    t.same(validateResources(resources).map(where), expected, `${size} bytes`);
  }
});

t.test('a load reuses what the last load read of an unchanged document, and lets go of documents gone from the config', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-load-generations-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'config.yaml');
  const entry = (name: string, host: string): string => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ${name}}\nspec:\n  hosts: [${host}]\n`;
  const specOf = (resources: readonly Resource[], name: string): unknown => resources.find((resource) => resource.metadata.name === name)?.spec;
  const load = async (text: string): Promise<readonly Resource[]> => {
    await writeFile(path, text);
    return (await loadConfig(path)).resources;
  };
  const first = await load(`${entry('kept', 'kept.example.com')}---\n${entry('edited', 'v1.example.com')}`);
  const second = await load(`${entry('kept', 'kept.example.com')}---\n${entry('edited', 'v2.example.com')}`);
  t.ok(specOf(second, 'kept') === specOf(first, 'kept'), 'an unchanged document is not read again');
  const third = await load(`${entry('kept', 'kept.example.com')}---\n${entry('edited', 'v1.example.com')}`);
  t.ok(specOf(third, 'kept') === specOf(first, 'kept'), 'nor on the load after');
  t.ok(specOf(third, 'edited') !== specOf(first, 'edited'), 'the text the last load no longer had was let go: read again');
  t.same(specOf(third, 'edited'), specOf(first, 'edited'), 'to the same values');
});

t.test("a VirtualService's own problems come from the last load when its document did not change; what depends on other resources is checked again", async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'meshgate-validate-reuse-'));
  t.teardown(() => rm(directory, { recursive: true, force: true }));
  const path = join(directory, 'config.yaml');
  const virtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  http:
    - retries: {attempts: 2, retryOn: "5xx,bogus"}
      route: [{destination: {host: shop.internal}}]
`;
  const serviceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop}
spec: {hosts: [shop.internal], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}
`;
  const problems = async (text: string): Promise<string[]> => {
    await writeFile(path, text);
    const { resources } = await loadConfig(path);
    return validateResources(resources).map((d) => `${d.position.line}:${d.position.col} ${d.code} ${d.field ?? ''}`);
  };
  t.same(await problems(virtualService), ['7:30 MG0215 spec.http[0].retries.retryOn', '8:30 MG0213 spec.http[0].route[0].destination.host']);
  t.same(
    await problems(`# three lines above\n# the unchanged document\n# and a ServiceEntry after it\n${virtualService}---\n${serviceEntry}`),
    ['10:30 MG0215 spec.http[0].retries.retryOn'],
    'the retryOn problem at its new line; the host now defined, its warning gone',
  );
});
