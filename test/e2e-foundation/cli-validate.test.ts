/**
 * `meshgate validate` as operators call it: exit 0/1, the `file:line:col CODE kind namespace/name:
 * message` lines at exact positions, one verdict line last, `--output json` and `--strict`.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingressYaml, REPO_ROOT, runCli } from './fixtures.js';

// Every assertion waits on CLI children, each a Node start plus a config compile: on a loaded machine
// (load 20 on 2 cores) they take seconds each, more than the default per-file budget.
t.setTimeout(300_000);

const SEED = 'config/examples/seed-istio.yaml';
const BROKEN = 'config/examples/broken/seed-broken.yaml';

const BROKEN_ERRORS = [
  `${BROKEN}:33:9 MG0215 VirtualService default/product-service: spec.http[1].retries.retryOn: unknown retryOn policy "sometimes"`,
  `${BROKEN}:84:13 MG0101 AuthorizationPolicy my-app/product-service-policy: spec.rules[0].to[0].operation.method: unknown field "method" (did you mean "methods"?)`,
  `${BROKEN}:104:5 MG0104 PeerAuthentication my-app/default: spec.mtls.mode: the string "STRIKT" is not one of UNSET, DISABLE, PERMISSIVE, STRICT (did you mean "STRICT"?)`,
];
const SEED_WARNING = /^config\/examples\/[a-z/-]+\.yaml:19:13 MG0213 VirtualService default\/product-service: warning: spec\.http\[0\]\.route\[0\]\.destination\.host: host "product-service\.default\.svc\.cluster\.local" is not defined/;

// Every child spends most of its time loading modules: start them all at once, assert one by one.
const seedText = runCli(['validate', '-c', SEED]);
const brokenText = runCli(['validate', '-c', BROKEN]);
const brokenDir = runCli(['validate', '-c', 'config/examples/broken']);
const brokenJson = runCli(['validate', '-c', BROKEN, '--output', 'json']);
const seedJson = runCli(['validate', '-c', SEED, '-o', 'json']);
const seedStrict = runCli(['validate', '-c', SEED, '--strict']);

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

function byPosition(a: string, b: string): number {
  const key = (line: string) => line.split(' ')[0].split(':').slice(1).map(Number);
  const [la, ca] = key(a);
  const [lb, cb] = key(b);
  return la - lb || ca - cb;
}

t.test('validate on the seed: exit 0, warnings listed, one success line last', async (t) => {
  const { code, stdout, stderr } = await seedText;
  t.equal(code, 0, stderr);
  const out = lines(stdout);
  t.match(out[0], SEED_WARNING);
  t.equal(out.at(-1), 'configuration valid: 4 resources, 0 errors, 2 warnings');
  t.equal(out.filter((line) => line.startsWith('configuration')).length, 1, 'exactly one summary line');
});

t.test('validate on the broken seed: exit 1 and each error at its exact position', async (t) => {
  const { code, stdout } = await brokenText;
  t.equal(code, 1);
  const out = lines(stdout);
  const diagnostics = out.filter((line) => / MG\d{4} /.test(line));
  t.same(diagnostics, [...diagnostics].sort(byPosition), 'printed in file and line order');
  t.same(diagnostics.filter((line) => !line.includes(': warning: ')), BROKEN_ERRORS);
  t.equal(out.filter((line) => line.includes(': warning: ')).length, 3);
  t.equal(out.at(-1), 'configuration invalid: 3 errors, 3 warnings');
});

t.test('validate on the broken directory reads its YAML files (not the README)', async (t) => {
  const { code, stdout } = await brokenDir;
  t.equal(code, 1);
  t.equal(lines(stdout).filter((line) => line.startsWith(`${BROKEN}:`) && !line.includes('warning')).length, 3);
  t.notMatch(stdout, /README/);
});

t.test('--output json is one JSON array of diagnostics with positions', async (t) => {
  const broken = await brokenJson;
  t.equal(broken.code, 1);
  const diagnostics = JSON.parse(broken.stdout) as { code: string; severity: string; position: { file: string; line: number; col: number }; field?: string }[];
  t.equal(diagnostics.length, 6);
  t.match(
    diagnostics.find((d) => d.code === 'MG0203'),
    { severity: 'warning', position: { file: BROKEN, line: 28, col: 13 }, field: 'spec.http[1].route[1].destination.subset' },
    'an undefined subset is a warning (503 NC at run time), not an error',
  );
  const retryOn = diagnostics.find((d) => d.code === 'MG0215');
  t.same(retryOn?.position, { file: BROKEN, line: 33, col: 9 });
  t.equal(retryOn?.severity, 'error');
  const seed = await seedJson;
  t.equal(seed.code, 0);
  t.same((JSON.parse(seed.stdout) as { severity: string }[]).map((d) => d.severity), ['warning', 'warning']);
});

t.test('--strict turns warnings into a failure', async (t) => {
  const { code, stdout } = await seedStrict;
  t.equal(code, 1);
  t.equal(lines(stdout).at(-1), 'configuration invalid: 0 errors, 2 warnings (--strict: warnings count as errors)');
});

t.test('an undefined subset: valid with a warning naming the route and subset; --strict fails on it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-validate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const yaml = ingressYaml({ adminPort: 1, gatewayPort: 2, upstreamPort: 3 }).replace(
    'host: app.example.internal\n      headers',
    'host: app.example.internal\n            subset: canary\n      headers',
  );
  await writeFile(join(dir, 'mesh.yaml'), yaml);
  const [plain, strict] = await Promise.all([runCli(['validate', '-c', dir]), runCli(['validate', '-c', dir, '--strict'])]);
  const warning =
    /mesh\.yaml:\d+:\d+ MG0203 VirtualService default\/app: warning: spec\.http\[0\]\.route\[0\]\.destination\.subset: route "to-app" sends to subset "canary" of host "app\.example\.internal", which no DestinationRule defines; it answers 503 \(NC\) until one does/;
  t.equal(plain.code, 0, plain.stdout);
  t.match(plain.stdout, warning);
  t.equal(lines(plain.stdout).at(-1), 'configuration valid: 4 resources, 0 errors, 1 warning');
  t.equal(strict.code, 1);
  t.match(strict.stdout, warning);
  t.equal(lines(strict.stdout).at(-1), 'configuration invalid: 0 errors, 1 warning (--strict: warnings count as errors)');
});

t.test('a directory holding Kubernetes manifests, a JWKS and Istio-only kinds next to mesh resources is valid', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-validate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'mesh.yaml'), await readFile(join(REPO_ROOT, SEED), 'utf8'));
  await writeFile(join(dir, 'jwks.json'), '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}\n');
  await writeFile(
    join(dir, 'app.yaml'),
    ['apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: product-service, namespace: my-app}', 'spec: {replicas: 1}', '---',
      'apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: settings}', 'data: {a: b}', '---',
      'apiVersion: cert-manager.io/v1', 'kind: Certificate', 'metadata: {name: ingress-cert}', 'spec: {secretName: ingress-cert}', '---',
      'apiVersion: networking.istio.io/v1alpha3', 'kind: EnvoyFilter', 'metadata: {name: lua, namespace: istio-system}', 'spec: {configPatches: []}', ''].join('\n'),
  );
  const { code, stdout } = await runCli(['validate', '-c', dir]);
  t.equal(code, 0, stdout);
  t.match(stdout, /app\.yaml:2:1 MG0015 Deployment: info: not a mesh resource \(apps\/v1\); skipped/);
  t.match(stdout, /app\.yaml:7:1 MG0015 ConfigMap: info: not a mesh resource \(v1\); skipped/);
  t.match(stdout, /app\.yaml:12:1 MG0015 Certificate: info: not a mesh resource \(cert-manager\.io\/v1\); skipped/);
  t.match(stdout, /app\.yaml:17:1 MG0016 EnvoyFilter: warning: an Istio kind meshgate does not support; skipped/);
  t.match(stdout, /jwks\.json:1:1 MG0014: info: not a Kubernetes resource/);
  t.match(stdout.split('\n').filter((line) => line !== '').at(-1) ?? '', /^configuration valid: 4 resources, 0 errors, 3 warnings, 4 info$/);
});

t.test('did you mean: a misspelt gateway reference names the one that exists', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-validate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const yaml = ingressYaml({ adminPort: 1, gatewayPort: 2, upstreamPort: 3 });
  await writeFile(join(dir, 'mesh.yaml'), yaml.replace('gateways: [istio-system/edge]', 'gateways: [istio-system/egde]'));
  const { code, stdout } = await runCli(['validate', '-c', dir]);
  t.equal(code, 1);
  t.match(stdout, /MG0212 VirtualService default\/app: spec\.gateways\[0\]: Gateway "istio-system\/egde" does not exist \(did you mean "istio-system\/edge"\?\)/);
});
