import t from 'tap';
import type { DestinationRuleSpec } from '../../gateway/config/kinds/destination-rule.js';
import type { Diagnostic } from '../../gateway/config/resource.js';
import type { ServiceEntrySpec } from '../../gateway/config/kinds/service-entry.js';
import type { WorkloadEntrySpec } from '../../gateway/config/kinds/workload-entry.js';
import { buildClusterDefinitions } from '../../gateway/upstream/cluster-definitions.js';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import { indexDestinationRules } from '../../gateway/upstream/destination-rules.js';
import { ENVOY_DEFAULT_CONNECTION_LIMIT, ENVOY_DEFAULT_MAX_RETRIES, resolvePolicy } from '../../gateway/upstream/policy.js';
import { buildServiceRegistry } from '../../gateway/upstream/registry.js';
import { makeResource } from '../helpers/resources.js';

const dr = (name: string, spec: DestinationRuleSpec, namespace = 'default') => makeResource('DestinationRule', name, spec, { namespace });
const se = (name: string, spec: ServiceEntrySpec, namespace = 'default') => makeResource('ServiceEntry', name, spec, { namespace });
const client = { namespace: 'default', labels: {} };

t.test('resolved defaults are Istio defaults, except the circuit breakers: Envoy thresholds (1024, 3 retries) rather than unlimited', async (t) => {
  const policy = resolvePolicy(undefined, undefined, 80);
  t.equal(policy.loadBalancer.algorithm, 'LEAST_REQUEST');
  t.equal(policy.connectionPool.connectTimeoutMs, 10_000);
  t.equal(policy.connectionPool.idleTimeoutMs, 3_600_000);
  t.equal(policy.connectionPool.maxConnections, ENVOY_DEFAULT_CONNECTION_LIMIT);
  t.equal(policy.connectionPool.http1MaxPendingRequests, ENVOY_DEFAULT_CONNECTION_LIMIT);
  t.equal(policy.connectionPool.http2MaxRequests, ENVOY_DEFAULT_CONNECTION_LIMIT);
  t.equal(policy.connectionPool.maxRetries, ENVOY_DEFAULT_MAX_RETRIES);
  t.equal(resolvePolicy({ connectionPool: { tcp: { maxConnections: 4_294_967_295 } } }, undefined, 80).connectionPool.maxConnections, 4_294_967_295, "Istio's unlimited stays one setting away");
  t.equal(policy.outlierDetection, null, 'no outlierDetection block: no ejection');
  t.equal(policy.tls.mode, 'DISABLE');
  const outlier = resolvePolicy({ outlierDetection: {} }, undefined, 80).outlierDetection;
  t.same(
    outlier && [outlier.consecutive5xxErrors, outlier.consecutiveGatewayErrors, outlier.intervalMs, outlier.baseEjectionTimeMs, outlier.maxEjectionPercent, outlier.minHealthPercent],
    [5, 0, 10_000, 30_000, 10, 0],
  );
  t.equal(resolvePolicy({ loadBalancer: { simple: 'LEAST_CONN' } }, undefined, 80).loadBalancer.algorithm, 'LEAST_REQUEST');
});

t.test('policy resolution: port-level settings replace the DR policy; subsets override per top-level field', async (t) => {
  const host = {
    connectionPool: { tcp: { maxConnections: 7 }, http: { http2MaxRequests: 9 } },
    loadBalancer: { simple: 'RANDOM' as const },
    portLevelSettings: [{ port: { number: 8080 }, outlierDetection: { consecutive5xxErrors: 2 } }],
  };
  const on80 = resolvePolicy(host, undefined, 80);
  t.same([on80.connectionPool.maxConnections, on80.connectionPool.http2MaxRequests, on80.loadBalancer.algorithm], [7, 9, 'RANDOM']);
  const on8080 = resolvePolicy(host, undefined, 8080);
  t.equal(on8080.connectionPool.maxConnections, ENVOY_DEFAULT_CONNECTION_LIMIT, 'port entry replaces: no inheritance');
  t.equal(on8080.loadBalancer.algorithm, 'LEAST_REQUEST');
  t.equal(on8080.outlierDetection?.consecutive5xxErrors, 2);
  const subset = resolvePolicy(host, { connectionPool: { http: { http1MaxPendingRequests: 3 } } }, 80);
  t.equal(subset.connectionPool.maxConnections, ENVOY_DEFAULT_CONNECTION_LIMIT, 'subset connectionPool discards the DR tcp block');
  t.equal(subset.connectionPool.http1MaxPendingRequests, 3);
  t.equal(subset.loadBalancer.algorithm, 'RANDOM', 'fields the subset omits come from the DR');
  const subsetPort = resolvePolicy(host, { loadBalancer: { simple: 'ROUND_ROBIN' }, portLevelSettings: [{ port: { number: 80 }, tls: { mode: 'SIMPLE' } }] }, 80);
  t.same([subsetPort.loadBalancer.algorithm, subsetPort.tls.mode], ['LEAST_REQUEST', 'SIMPLE'], "subset's port entry wins outright");
  t.not(on80.key, subset.key);
  t.equal(resolvePolicy(host, undefined, 80).key, on80.key);
});

t.test('DR lookup: client ns, then service ns, then root; merging; exportTo', async (t) => {
  const rules = [
    dr('root', { host: 'api.example.com', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'istio-system'),
    dr('svc-ns', { host: 'api.example.com', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } }, subsets: [{ name: 'v1', labels: { v: '1' } }] }, 'backend'),
    dr('svc-ns-2', { host: 'api.example.com', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } }, subsets: [{ name: 'v1', labels: { v: 'x' } }, { name: 'v2', labels: { v: '2' } }] }, 'backend'),
    dr('hidden', { host: 'api.example.com', exportTo: ['.'], trafficPolicy: { loadBalancer: { simple: 'PASSTHROUGH' } } }, 'other'),
    dr('wild', { host: '*.example.com', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'default'),
  ];
  const index = indexDestinationRules(rules, client, 'istio-system');
  const fromDefault = index.lookup('api.example.com', 'backend');
  t.same(fromDefault?.sources, ['default/wild'], 'the client namespace is searched first (wildcard match there)');
  const fromOther = indexDestinationRules(rules, { namespace: 'ops', labels: {} }, 'istio-system').lookup('api.example.com', 'backend');
  t.same(fromOther?.sources, ['backend/svc-ns', 'backend/svc-ns-2']);
  t.equal(fromOther?.trafficPolicy?.loadBalancer?.simple, 'ROUND_ROBIN', 'first trafficPolicy wins');
  t.same(fromOther?.subsets.get('v1')?.labels, { v: '1' }, 'first subset of a name wins');
  t.ok(fromOther?.subsets.has('v2'));
  const rootOnly = indexDestinationRules(rules, { namespace: 'ops', labels: {} }, 'istio-system').lookup('api.example.com', 'nowhere');
  t.same(rootOnly?.sources, ['istio-system/root']);
  const otherView = indexDestinationRules(rules, { namespace: 'ops', labels: {} }, 'istio-system').lookup('api.example.com', 'other');
  t.same(otherView?.sources, ['istio-system/root'], 'exportTo "." hides the rule from other namespaces');
});

t.test('registry: STATIC endpoints with port mapping, weights; workloadSelector; subsets become clusters', async (t) => {
  const entries = [
    se('static', {
      hosts: ['static.example.com'],
      resolution: 'STATIC',
      ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 8080 }],
      endpoints: [
        { address: '127.0.0.2', labels: { v: '1' } },
        { address: '127.0.0.3', ports: { http: 9090 }, weight: 0, labels: { v: '2' } },
        { address: '127.0.0.4', weight: 5, labels: { v: '2' } },
      ],
    }),
    se('selected', { hosts: ['sel.example.com'], resolution: 'STATIC', location: 'MESH_INTERNAL', ports: [{ number: 80, name: 'http' }], workloadSelector: { labels: { app: 'sel' } } }),
  ];
  const workloads = [
    makeResource<WorkloadEntrySpec>('WorkloadEntry', 'a', { address: '10.1.0.1', labels: { app: 'sel' }, serviceAccount: 'sel' }),
    makeResource<WorkloadEntrySpec>('WorkloadEntry', 'b', { address: '10.1.0.2', labels: { app: 'other' } }),
    makeResource<WorkloadEntrySpec>('WorkloadEntry', 'c', { address: '10.1.0.3', labels: { app: 'sel' } }, { namespace: 'elsewhere' }),
  ];
  const registry = buildServiceRegistry({ serviceEntries: entries, workloadEntries: workloads, clientNamespace: 'default' });
  const stat = registry.lookup('STATIC.example.com');
  t.same(
    stat?.endpoints.get(80)?.map((e) => [e.address, e.port, e.weight]),
    [['127.0.0.2', 8080, 1], ['127.0.0.3', 9090, 1], ['127.0.0.4', 8080, 5]],
  );
  const sel = registry.lookup('sel.example.com');
  t.same(sel?.endpoints.get(80)?.map((e) => [e.address, e.serviceAccount]), [['10.1.0.1', 'sel']]);
  const rules = indexDestinationRules([dr('s', { host: 'static.example.com', subsets: [{ name: 'v2', labels: { v: '2' } }] })], client, 'istio-system');
  const definitions = buildClusterDefinitions(registry, rules, 'DO_NOT_UPGRADE');
  t.same(definitions.map((d) => d.name), ['outbound|80||static.example.com', 'outbound|80|v2|static.example.com', 'outbound|80||sel.example.com']);
  t.same(definitions.find((d) => d.subset === 'v2')?.endpoints.map((e) => e.address), ['127.0.0.3', '127.0.0.4']);
});

t.test('registry: DNS resolution of the host itself (localhost) happens in the background', async (t) => {
  const registry = buildServiceRegistry({
    serviceEntries: [se('dns', { hosts: ['localhost'], resolution: 'DNS', ports: [{ number: 8080, name: 'http' }] })],
    workloadEntries: [],
    clientNamespace: 'default',
  });
  t.same(registry.lookup('localhost')?.endpoints.get(8080)?.map((e) => e.address), ['localhost']);
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const set = manager.update(buildClusterDefinitions(registry, indexDestinationRules([], client, 'istio-system'), 'DO_NOT_UPGRADE'));
  await manager.dnsSettled();
  t.same(set.get('localhost', 8080)?.endpoints.map((e) => e.key), ['127.0.0.1:8080']);
});

t.test('registry: exportTo hides ServiceEntries from other namespaces; NONE resolution is passthrough', async (t) => {
  const registry = buildServiceRegistry({
    serviceEntries: [
      se('private', { hosts: ['private.example.com'], exportTo: ['.'], ports: [{ number: 80, name: 'http' }] }, 'team'),
      se('wild', { hosts: ['*.ext.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }] }),
    ],
    workloadEntries: [],
    clientNamespace: 'default',
  });
  t.equal(registry.lookup('private.example.com'), undefined);
  t.equal(registry.lookup('a.b.ext.com')?.resolution, 'NONE');
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const set = manager.update(buildClusterDefinitions(registry, indexDestinationRules([], client, 'istio-system'), 'DO_NOT_UPGRADE'));
  t.equal(set.get('api.ext.com', 443)?.passthrough, true);
  t.equal(set.get('ext.com', 443), undefined);
});

t.test('registry: a host defined twice is served by the oldest ServiceEntry; the later one gets MG0219', async (t) => {
  const diagnostics: Diagnostic[] = [];
  const registry = buildServiceRegistry({
    serviceEntries: [
      se('first', { hosts: ['api.example.com'], resolution: 'STATIC', ports: [{ number: 80, name: 'http' }], endpoints: [{ address: '127.0.0.2' }] }),
      se('second', { hosts: ['API.example.com', 'other.example.com'], resolution: 'STATIC', ports: [{ number: 80, name: 'http' }], endpoints: [{ address: '127.0.0.3' }] }),
    ],
    workloadEntries: [],
    clientNamespace: 'default',
    diagnostics,
  });
  t.same(registry.lookup('api.example.com')?.endpoints.get(80)?.map((e) => e.address), ['127.0.0.2']);
  t.equal(registry.lookup('other.example.com')?.source, 'default/second', 'the later entry still defines its other hosts');
  t.same(
    diagnostics.map((d) => [d.code, d.severity, d.name, d.field]),
    [['MG0219', 'warning', 'second', 'spec.hosts']],
  );
});
