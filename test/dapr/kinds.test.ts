/**
 * dapr.io Component and Subscription load as Dapr writes them (top-level `scopes` and `auth` beside
 * spec), are validated with positions, resolve secrets from env, files and mounted secret directories,
 * and are scoped to the sidecar's namespace and app id.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildKindRegistry } from '../../gateway/config/kinds/index.js';
import { normalizeSubscription } from '../../gateway/config/kinds/dapr-subscription.js';
import { parseConfigText } from '../../gateway/config/parse-documents.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import { compileDapr } from '../../gateway/dapr/snapshot.js';
import { DAPR_BUILDING_BLOCKS } from '../../gateway/dapr/api/building-blocks.js';
import type { DaprBuildingBlock } from '../../gateway/dapr/api/building-block.js';
import type { ServiceRegistry } from '../../gateway/upstream/registry.js';

const registry = buildKindRegistry();
const codes = (diagnostics: readonly Diagnostic[]) => diagnostics.map((d) => `${d.position.line} ${d.code} ${d.field ?? ''}`);
const emptyRegistry: ServiceRegistry = { services: [], lookup: () => undefined };
const stateBlock: DaprBuildingBlock = { name: 'state-test', componentTypes: ['state.redis', 'state.in-memory'], compile: () => null, register: () => undefined };
const workload = { name: 'order', namespace: 'my-app', labels: {}, serviceAccount: 'order', principal: '' };

const SEED_COMPONENTS = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: order-store
spec:
  type: state.redis
  version: v1
  metadata:
    - name: redisHost
      value: redis:6379
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: order-pubsub
spec:
  type: pubsub.rabbitmq
  version: v1
  metadata:
    - name: host
      value: amqp://rabbitmq:5672
`;

t.test("the seed's two Components load as written", async (t) => {
  const parsed = parseConfigText(SEED_COMPONENTS, 'seed.yaml', registry);
  t.same(parsed.diagnostics, []);
  t.same(parsed.resources.map((r) => `${r.apiVersion} ${r.kind} ${r.metadata.name}`), ['dapr.io/v1alpha1 Component order-store', 'dapr.io/v1alpha1 Component order-pubsub']);
  t.same(parsed.resources[0]?.topLevel, {}, 'dapr.io kinds carry their top-level fields, here none');
});

t.test('scopes and auth are accepted beside spec for dapr.io kinds only', async (t) => {
  const parsed = parseConfigText(
    `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: s, namespace: my-app }
spec: { type: state.in-memory, version: v1 }
scopes: [order, 7]
auth: { secretStore: env, extra: 1 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: x }
spec: { hosts: [x.example.com] }
scopes: [order]
`,
    'f.yaml',
    registry,
  );
  t.same(codes(parsed.diagnostics), ['5 MG0103 scopes[1]', '6 MG0101 auth.extra', '12 MG0010 scopes']);
  t.same(parsed.resources, [], 'a document with an error yields no resource');
});

t.test('Subscription v1alpha1 and v2alpha1 have their own shapes and one normalised view', async (t) => {
  const parsed = parseConfigText(
    `apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: orders, namespace: my-app }
spec:
  pubsubname: order-pubsub
  topic: order-created
  routes:
    rules: [{ match: 'event.type == "big"', path: /big }]
    default: /orders
  deadLetterTopic: dead
  bulkSubscribe: { enabled: true, maxMessagesCount: 10 }
  metadata: { rawPayload: "true" }
scopes: [order]
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: { name: old, namespace: my-app }
spec: { pubsubname: order-pubsub, topic: t, route: /t }
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: { name: wrong, namespace: my-app }
spec: { pubsubname: order-pubsub, topic: t, routes: { default: /t } }
`,
    'subs.yaml',
    registry,
  );
  t.same(codes(parsed.diagnostics), ['23 MG0102 spec.route', '23 MG0101 spec.routes']);
  const [v2, v1] = parsed.resources.map(normalizeSubscription);
  t.same(v2, {
    name: 'orders',
    namespace: 'my-app',
    pubsubname: 'order-pubsub',
    topic: 'order-created',
    rules: [{ match: 'event.type == "big"', path: '/big' }],
    defaultPath: '/orders',
    metadata: { rawPayload: 'true' },
    deadLetterTopic: 'dead',
    bulkSubscribe: { enabled: true, maxMessagesCount: 10 },
    scopes: ['order'],
  });
  t.same(v1?.defaultPath, '/t');
  t.same(v1?.rules, []);
});

t.test('components: namespace, scopes, secrets and the checks that name file and line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-dapr-kinds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ redis: { password: 'from-file' } }));
  await mkdir(join(dir, 'creds', 'redis-secret'), { recursive: true });
  await writeFile(join(dir, 'creds', 'redis-secret', 'password'), 'from-mount\n');
  const yaml = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: envstore, namespace: my-app }
spec: { type: secretstores.local.env, metadata: [{ name: prefix, value: APP_ }] }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: filestore, namespace: my-app }
spec: { type: secretstores.local.file, metadata: [{ name: secretsFile, value: secrets.json }] }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: a, namespace: my-app }
spec:
  type: state.redis
  metadata:
    - { name: redisHost, value: "127.0.0.1:1" }
    - { name: redisPassword, secretKeyRef: { name: PASS } }
    - { name: redisDB, value: 3 }
auth: { secretStore: envstore }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: b, namespace: my-app }
spec:
  type: state.redis
  metadata: [{ name: redisPassword, secretKeyRef: { name: "redis:password" } }]
auth: { secretStore: filestore }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: c, namespace: my-app }
spec:
  type: state.redis
  metadata: [{ name: redisPassword, secretKeyRef: { name: redis-secret, key: password } }, { name: user, envRef: USER_VAR }]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: scoped-out, namespace: my-app }
spec: { type: state.in-memory }
scopes: [someone-else]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: elsewhere, namespace: other }
spec: { type: state.in-memory }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: kafka, namespace: my-app }
spec: { type: bindings.kafka }
`;
  const parsed = parseConfigText(yaml, join(dir, 'c.yaml'), registry);
  t.same(parsed.diagnostics, []);
  const compile = (env: Record<string, string>) => {
    const diagnostics: Diagnostic[] = [];
    const dapr = compileDapr({ resources: parsed.resources, workload, registry: emptyRegistry, credentialsDirectory: join(dir, 'creds'), configDirectory: dir, env, diagnostics, blocks: [stateBlock] });
    return { dapr, diagnostics };
  };
  const good = compile({ APP_PASS: 's3cret', USER_VAR: 'me', DAPR_API_TOKEN: 'tok' });
  t.same(codes(good.diagnostics), ['51 MG1301 spec.type']);
  t.equal(good.dapr?.appId, 'order');
  t.equal(good.dapr?.apiToken, 'tok');
  t.same(good.dapr?.components.all.map((c) => c.name), ['envstore', 'filestore', 'a', 'b', 'c'], 'other namespaces, scoped-out and unserved types are not loaded');
  t.same(good.dapr?.components.get('a')?.metadata, { redisHost: '127.0.0.1:1', redisPassword: 's3cret', redisDB: '3' });
  t.same(good.dapr?.components.get('b')?.metadata, { redisPassword: 'from-file' });
  t.same(good.dapr?.components.get('c')?.metadata, { redisPassword: 'from-mount', user: 'me' });

  const missing = compile({});
  t.same(codes(missing.diagnostics).filter((c) => c.includes('MG1303')), ['18 MG1303 spec.metadata[1].secretKeyRef', '35 MG1303 spec.metadata[1].envRef']);
  t.same(missing.dapr?.components.all.map((c) => c.name), ['envstore', 'filestore', 'b']);
  t.equal(missing.diagnostics[0]?.position.file, join(dir, 'c.yaml'));
});

t.test('bad metadata shapes and unknown secret stores are errors for any proxy', async (t) => {
  const parsed = parseConfigText(
    `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: a }
spec:
  type: state.redis
  metadata:
    - { name: redisHost, value: "x:1" }
    - { name: redisHost, value: "y:1" }
    - { name: redisPassword, value: p, envRef: P }
    - { name: keyPrefix }
auth: { secretStore: nope }
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: { name: s }
spec: { pubsubname: missing, topic: t, routes: { default: /x } }
`,
    'bad.yaml',
    registry,
  );
  t.same(parsed.diagnostics, []);
  const diagnostics: Diagnostic[] = [];
  compileDapr({ resources: parsed.resources, workload: null, registry: emptyRegistry, credentialsDirectory: '/nonexistent', configDirectory: '/nonexistent', env: {}, diagnostics, blocks: [stateBlock] });
  t.same(codes(diagnostics).sort(), ['16 MG1305 spec.pubsubname', '8 MG1302 spec.metadata[1].name', '9 MG1302 spec.metadata[2]', '10 MG1302 spec.metadata[3]'].sort());
  const sidecar: Diagnostic[] = [];
  const ok = parseConfigText('apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: { name: a }\nspec: { type: state.redis }\nauth: { secretStore: nope }\n', 'b.yaml', registry);
  compileDapr({ resources: ok.resources, workload: { ...workload, namespace: 'default' }, registry: emptyRegistry, credentialsDirectory: '/x', configDirectory: '/x', env: {}, diagnostics: sidecar, blocks: [stateBlock] });
  t.same(codes(sidecar), ['5 MG1304 auth.secretStore']);
});

t.test('the app id: the workload name, or its dapr.io/app-id annotation', async (t) => {
  const parsed = parseConfigText(
    `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: order, namespace: my-app, annotations: { dapr.io/app-id: order-service } }
spec: { address: 127.0.0.1 }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: bad, namespace: my-app, annotations: { dapr.io/app-id: a.b } }
spec: { address: 127.0.0.1 }
`,
    'w.yaml',
    registry,
  );
  const base = { registry: emptyRegistry, credentialsDirectory: '/x', configDirectory: '/x', env: {}, blocks: [stateBlock] };
  const diagnostics: Diagnostic[] = [];
  t.equal(compileDapr({ ...base, resources: parsed.resources, workload, diagnostics })?.appId, 'order-service');
  t.equal(compileDapr({ ...base, resources: parsed.resources, workload: { ...workload, name: 'bad' }, diagnostics })?.appId, 'bad');
  t.same(codes(diagnostics), ['8 MG1306 metadata.annotations.dapr.io/app-id']);
});

t.test('invocation resolves app ids to registry hosts: short names, appId.namespace, FQDNs', async (t) => {
  const services = [
    { host: 'product-service', namespace: 'my-app' },
    { host: 'billing.shop.svc.cluster.local', namespace: 'shop' },
    { host: 'audit.my-app.svc.cluster.local', namespace: 'my-app' },
  ] as unknown as ServiceRegistry['services'];
  const dapr = compileDapr({ resources: [], workload, registry: { services, lookup: () => undefined }, credentialsDirectory: '/x', configDirectory: '/x', env: {}, diagnostics: [], blocks: [] });
  t.equal(dapr?.invokeHost('product-service'), 'product-service');
  t.equal(dapr?.invokeHost('Product-Service.my-app'), 'product-service');
  t.equal(dapr?.invokeHost('product-service.other'), null);
  t.equal(dapr?.invokeHost('billing.shop'), 'billing.shop.svc.cluster.local');
  t.equal(dapr?.invokeHost('audit'), 'audit.my-app.svc.cluster.local');
  t.equal(dapr?.invokeHost('nobody'), null);
});

t.test('without a sidecar (validate, ingress) the building blocks still check inline Component metadata', async (t) => {
  const parsed = parseConfigText(
    `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: order-store, namespace: anywhere }
spec:
  type: state.redis
  metadata:
    - { name: redisHost, value: no-port }
    - { name: redisDB, value: two }
    - { name: ttlInSeconds, value: "1.5" }
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: from-secret }
spec:
  type: state.redis
  metadata: [{ name: redisHost, secretKeyRef: { name: host } }]
`,
    'v.yaml',
    registry,
  );
  const diagnostics: Diagnostic[] = [];
  t.equal(compileDapr({ resources: parsed.resources, workload: null, registry: emptyRegistry, credentialsDirectory: '/x', configDirectory: '/x', env: {}, diagnostics, blocks: DAPR_BUILDING_BLOCKS }), null);
  t.same(codes(diagnostics).sort(), ['7 MG1302 spec.metadata[0]', '8 MG1302 spec.metadata[1]', '9 MG1302 spec.metadata[2]'], 'values from secrets are left to the sidecar that resolves them');
});
