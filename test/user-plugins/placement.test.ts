/**
 * Where user plugins run, observed through a real gateway: each probe appends its label to the
 * forwarded `x-order` and reports on the response what it saw. Phases are checked against the
 * built-in steps they must precede or follow (authn, authz, routing, faults), priorities within a
 * phase, and loading from a file path, a file URL and an installed package.
 */
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configDir, startGateway, startUpstream } from '../helpers/gateway.js';
import { freePorts, request } from '../e2e-ingress/support.js';
import { makeKey, sign } from '../authn/jwt-fixtures.js';
import { fixtureUrl, gatewayConfig, pluginYaml, shopRoutes } from './support.js';

const ISSUER = 'https://issuer.test';
const key = await makeKey('k1', 'ES256');
const token = await sign(key, { iss: ISSUER, sub: 'alice' });
const upstream = await startUpstream();
t.teardown(() => upstream.close());
const [adminPort, port] = (await freePorts(2)) as [number, number];

const probe = (label: string): string => `{ label: ${label} }`;
const yaml = gatewayConfig(
  adminPort,
  port,
  upstream.port,
  [
    shopRoutes(`    - name: fault
      match: [{uri: {prefix: /fault}}]
      fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }
      route: [{destination: {host: app.internal}}]
    - name: main
      route: [{destination: {host: app.internal}}]
`),
    `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  jwtRules:
    - issuer: ${ISSUER}
      jwks: '${JSON.stringify({ keys: [key.publicJwk] })}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: istio-system }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/denied"] } }] }]
`,
    // Declared out of order on purpose: placement comes from phase and priority, not file order.
    pluginYaml({ name: 'last', url: './plugins/probe-link.mjs', config: probe('last') }),
    pluginYaml({ name: 'stats-low', url: fixtureUrl('probe'), phase: 'STATS', priority: -5, config: probe('stats-low') }),
    pluginYaml({ name: 'stats', url: 'probe-package', phase: 'STATS', config: probe('stats') }),
    pluginYaml({ name: 'stats-high', url: fixtureUrl('probe'), phase: 'STATS', priority: 10, config: probe('stats-high'), kind: 'WasmPlugin' }),
    pluginYaml({ name: 'authz', url: fixtureUrl('probe'), phase: 'AUTHZ', config: probe('authz') }),
    pluginYaml({ name: 'authn', url: fixtureUrl('probe'), phase: 'AUTHN', config: probe('authn'), kind: 'WasmPlugin' }),
  ].join('\n'),
);
const dir = await configDir(yaml);
t.teardown(() => dir.remove());
// A relative path (to the config file) and an installed package, both re-exporting the compiled fixture.
await mkdir(join(dir.dir, 'plugins'));
await writeFile(join(dir.dir, 'plugins', 'probe-link.mjs'), `export { default } from '${fixtureUrl('probe')}';\n`);
await mkdir(join(dir.dir, 'node_modules', 'probe-package'), { recursive: true });
await writeFile(join(dir.dir, 'node_modules', 'probe-package', 'package.json'), JSON.stringify({ name: 'probe-package', type: 'module', exports: { '.': { import: './main.js' } } }));
await writeFile(join(dir.dir, 'node_modules', 'probe-package', 'main.js'), `export { default } from '${fixtureUrl('probe')}';\n`);
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());

const bearer = { authorization: `Bearer ${token}` };

t.test('a forwarded request passes every phase in order, priorities first within a phase', async (t) => {
  const before = upstream.received.length;
  const response = await request(port, '/shop', { headers: bearer });
  t.equal(response.status, 200);
  t.equal(upstream.received.length, before + 1);
  t.equal(upstream.received.at(-1)?.headers['x-order'], 'authn,authz,stats-high,stats,stats-low,last');
  t.equal(response.headers['x-probe-authn'], 'auth=none;route=none', 'AUTHN runs before the built-in authn: no JWT yet, no route');
  t.equal(response.headers['x-probe-authz'], `auth=${ISSUER}/alice;route=none`, 'AUTHZ runs after authn, before routing');
  t.equal(response.headers['x-probe-stats'], `auth=${ISSUER}/alice;route=default/shop.main`, 'STATS runs after routing');
  t.equal(response.headers['x-probe-last'], `auth=${ISSUER}/alice;route=default/shop.main`);
});

t.test('AUTHN runs before the built-in authn: a bad token is refused after it, before AUTHZ', async (t) => {
  const response = await request(port, '/shop', { headers: { authorization: 'Bearer not.a.jwt' } });
  t.equal(response.status, 401);
  t.ok(response.headers['x-probe-authn']);
  t.notOk(response.headers['x-probe-authz']);
});

t.test('AUTHZ runs before the built-in authorization; STATS only after it', async (t) => {
  const response = await request(port, '/denied', { headers: bearer });
  t.equal(response.status, 403);
  t.ok(response.headers['x-probe-authn']);
  t.ok(response.headers['x-probe-authz']);
  t.notOk(response.headers['x-probe-stats'], 'a request RBAC denies never reaches STATS');
});

t.test('STATS runs before faults, the plugins without a phase after them', async (t) => {
  const before = upstream.received.length;
  const response = await request(port, '/fault', { headers: bearer });
  t.equal(response.status, 503);
  t.ok(response.headers['x-probe-stats-low']);
  t.notOk(response.headers['x-probe-last'], 'an injected abort ends the request before the last phase');
  t.equal(upstream.received.length, before);
});

t.test('a plugin reply ends the pipeline with its reason and flag', async (t) => {
  const before = upstream.received.length;
  const response = await request(port, '/shop', { headers: { ...bearer, 'x-reply': 'authz' } });
  t.equal(response.status, 418);
  t.equal(response.headers['x-meshgate-reason'], 'UAEX plugin[istio-system/authz]{probe_reply}');
  t.notOk(response.headers['x-probe-stats']);
  t.equal(upstream.received.length, before);
});

t.test('config_dump shows the effective order on each listener', async (t) => {
  const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { plugins: Record<string, { listener: string; phases: Record<string, { plugin: string }[]> }[]> };
  const listeners = dump.plugins['user-plugins'] ?? [];
  t.equal(listeners.length, 1);
  const phases = listeners[0]?.phases ?? {};
  t.same(
    Object.fromEntries(Object.entries(phases).map(([phase, plugins]) => [phase, plugins.map((p) => p.plugin)])),
    {
      AUTHN: ['istio-system/authn'],
      AUTHZ: ['istio-system/authz'],
      STATS: ['istio-system/stats-high', 'istio-system/stats', 'istio-system/stats-low'],
      UNSPECIFIED_PHASE: ['istio-system/last'],
    },
  );
});
