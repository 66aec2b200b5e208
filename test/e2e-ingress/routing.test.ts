/**
 * The seed's routing story through the real gateway (config/examples/seed-istio.yaml; docs/routing.md: destinations and
 * weights, timeouts and retries, load balancing, connection pool, outlier detection): the product-service VirtualService and DestinationRule bound to an ingress
 * Gateway, subsets v1/v2 served by two upstream servers, with the seed's own durations (perTryTimeout 2s,
 * timeout 10s: a loaded machine never hits them by accident); the DestinationRule's ISTIO_MUTUAL is
 * dropped because the upstreams here are plain loopback servers. Its h2UpgradePolicy UPGRADE stays: to an
 * endpoint without a sidecar that is h2c with prior knowledge, as in Istio, so v1 and v2 also accept h2c
 * (as a sidecar's inbound port would; docs/grpc.md). The route timeout, LEAST_CONN, outlier
 * detection and connection-pool overflow get one small service each. Nothing here depends on how fast the
 * machine is: time bounds are lower bounds (a timer never fires early) or limits a slow machine only makes
 * easier to meet, outlier ejections run on a clock the test advances, and waits are for observed events.
 */
import t from 'tap';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Session } from 'node:http2';
import { serveH2cBeside } from '../../gateway/listeners/h2c.js';
import { startUpstream } from '../helpers/gateway.js';
import type { Upstream } from '../helpers/gateway.js';
import { eventually } from '../helpers/eventually.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, request, serviceEntryYaml, startScenario, virtualServiceYaml } from './support.js';

/** Test controls understood by the product upstreams: fail or hang on the first try, or on every try. */
function productHandler(version: string): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const firstTry = request.headers['x-envoy-attempt-count'] === '1';
    const failFirst = request.headers['x-fail-first'] === '1' && firstTry;
    const hang = request.headers['x-hang'] === 'always' || (request.headers['x-hang'] === 'first' && firstTry);
    request.resume();
    if (hang) return;
    response.statusCode = failFirst ? 503 : 200;
    response.end(version);
  };
}

const v1 = await startUpstream(productHandler('v1'), 'v1');
const v2 = await startUpstream(productHandler('v2'), 'v2');
const productSessions = new Set<Http2Session>();
for (const product of [v1, v2]) {
  serveH2cBeside(product.server, { maxConcurrentStreams: 100, idleTimeoutMs: 0, firstBytesTimeoutMs: 0 });
  product.server.on('session', (session: Http2Session) => productSessions.add(session));
}
t.teardown(() => {
  for (const session of productSessions) session.destroy();
});
const fast = await startUpstream((_request, res) => res.end('fast'), 'fast');
const slow = await startUpstream((_request, res) => void setTimeout(() => res.end('slow'), 300), 'slow');
const hanging = await startUpstream((request) => void request.resume(), 'hanging');
let badEndpointFails = true;
const healthy = await startUpstream((_request, res) => res.end('healthy'), 'healthy');
const failing = await startUpstream((_request, res) => {
  res.statusCode = badEndpointFails ? 500 : 200;
  res.end('failing');
}, 'failing');
const held: ServerResponse[] = [];
const holding = await startUpstream((_request, res) => void held.push(res), 'holding');
const upstreams: Upstream[] = [v1, v2, fast, slow, hanging, healthy, failing, holding];
t.teardown(() => Promise.all(upstreams.map((u) => u.close())));

const [admin = 0, port = 0] = await freePorts(2);

// The seed's short \`product-service\` (namespace default) is this service; a ServiceEntry host is never expanded.
const PRODUCT_SERVICE = 'product-service.default.svc.cluster.local';

const seedCopy = `---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: product-service
spec:
  hosts:
    - product-service
  gateways: [istio-system/edge]
  http:
    - match:
        - headers:
            x-canary:
              exact: "true"
      route:
        - destination:
            host: product-service
            subset: v2
    - route:
        - destination:
            host: product-service
            subset: v1
          weight: 90
        - destination:
            host: product-service
            subset: v2
          weight: 10
      retries:
        attempts: 3
        perTryTimeout: 2s
        retryOn: connect-failure,refused-stream,5xx
      timeout: 10s
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: product-service
spec:
  host: product-service
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
      http:
        h2UpgradePolicy: UPGRADE
        http1MaxPendingRequests: 100
        http2MaxRequests: 1000
    loadBalancer:
      simple: LEAST_CONN
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
    - name: v1
      labels:
        version: v1
    - name: v2
      labels:
        version: v2
`;

const destinationRule = (name: string, host: string, trafficPolicy: string): string => `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ${name}
spec:
  host: ${host}
  trafficPolicy:
${trafficPolicy}`;

const routeTo = (host: string): string => `    - route:\n        - destination: {host: ${host}}\n`;

/** Clock of the gateway's outlier ejections: frozen unless a test advances it. */
let clock = 1_000_000;

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', httpServerYaml(port, ['*'])),
    serviceEntryYaml('product-service', PRODUCT_SERVICE, [
      { port: v1.port, labels: { version: 'v1' } },
      { port: v2.port, labels: { version: 'v2' } },
    ]),
    seedCopy,
    serviceEntryYaml('least', 'least.internal', [{ port: fast.port }, { port: slow.port }]),
    destinationRule('least', 'least.internal', '    loadBalancer: {simple: LEAST_CONN}\n'),
    virtualServiceYaml('least', ['least.example.com'], 'edge', routeTo('least.internal')),
    serviceEntryYaml('outlier', 'outlier.internal', [{ port: healthy.port }, { port: failing.port }]),
    destinationRule(
      'outlier',
      'outlier.internal',
      '    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 50}\n',
    ),
    virtualServiceYaml('outlier', ['outlier.example.com'], 'edge', routeTo('outlier.internal')),
    serviceEntryYaml('pool', 'pool.internal', [{ port: holding.port }]),
    destinationRule('pool', 'pool.internal', '    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}\n'),
    virtualServiceYaml('pool', ['pool.example.com'], 'edge', routeTo('pool.internal')),
    serviceEntryYaml('deadline', 'deadline.internal', [{ port: hanging.port }]),
    virtualServiceYaml(
      'deadline',
      ['deadline.example.com'],
      'edge',
      `${routeTo('deadline.internal')}      retries: {attempts: 10, perTryTimeout: 1s, retryOn: 5xx}\n      timeout: 3s\n`,
    ),
  ].join('\n'),
  { now: () => clock },
);

/** Runs `total` requests over `connections` keep-alive connections and counts the bodies. */
async function load(total: number, connections: number, host: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const counts = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next += 1;
      const res = await request(port, '/api/products', { host, headers, agent });
      const key = res.status === 200 ? res.body : `status ${res.status}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, worker));
  } finally {
    agent.destroy();
  }
  return counts;
}

t.test('x-canary: true always goes to v2', async (t) => {
  const counts = await load(200, 4, PRODUCT_SERVICE, { 'x-canary': 'true' });
  t.same([...counts], [['v2', 200]]);
});

t.test('without the header 10 000 requests split 90/10 within ±2 %', async (t) => {
  const counts = await load(10_000, 32, PRODUCT_SERVICE);
  const toV1 = counts.get('v1') ?? 0;
  const toV2 = counts.get('v2') ?? 0;
  t.equal(toV1 + toV2, 10_000, `only v1/v2 answered: ${JSON.stringify([...counts])}`);
  t.ok(Math.abs(toV1 / 10_000 - 0.9) <= 0.02, `v1 share ${toV1 / 100} %`);
});

t.test('retryOn 5xx: a 503 on the first try is retried and the client sees 200', async (t) => {
  const before = v1.received.length + v2.received.length;
  const res = await request(port, '/retry-me', { host: PRODUCT_SERVICE, headers: { 'x-fail-first': '1' } });
  t.equal(res.status, 200);
  const tries = [...v1.received, ...v2.received].filter((r) => r.url === '/retry-me');
  t.equal(v1.received.length + v2.received.length - before, 2);
  t.same(
    tries.map((r) => r.headers['x-envoy-attempt-count']),
    ['1', '2'],
  );
});

t.test('perTryTimeout: a try that hangs is retried within the route timeout', async (t) => {
  const started = performance.now();
  const res = await request(port, '/hang-first', { host: PRODUCT_SERVICE, headers: { 'x-hang': 'first' }, timeoutMs: 60_000 });
  const elapsed = performance.now() - started;
  t.equal(res.status, 200, 'the retry answered, before the 10 s route timeout');
  t.ok(elapsed >= 1990, `not before the 2 s per-try timeout (${Math.round(elapsed)} ms)`);
  const tries = [...v1.received, ...v2.received].filter((r) => r.url === '/hang-first');
  t.same(
    tries.map((r) => r.headers['x-envoy-attempt-count']),
    ['1', '2'],
  );
});

t.test('route timeout bounds every try: 504 UT at 3 s although 10 tries of 1 s were allowed', async (t) => {
  const started = performance.now();
  const res = await request(port, '/hang-always', { host: 'deadline.example.com', timeoutMs: 60_000 });
  const elapsed = performance.now() - started;
  t.equal(res.status, 504);
  t.equal(res.body, 'upstream request timeout\n');
  t.match(res.headers['x-meshgate-reason'], /^UT /);
  t.ok(elapsed >= 2990, `not before the route timeout (${Math.round(elapsed)} ms)`);
  // A try starts at most every second, so at most 4 fit before the route timeout; a slow machine starts fewer.
  const tries = hanging.received.filter((r) => r.url === '/hang-always').length;
  t.ok(tries >= 1 && tries <= 4, `${tries} tries, far from the 11 allowed: the route timeout ended them`);
});

t.test('LEAST_CONN sends most concurrent requests to the endpoint that answers fastest', async (t) => {
  const counts = await load(400, 8, 'least.example.com');
  const toFast = counts.get('fast') ?? 0;
  const toSlow = counts.get('slow') ?? 0;
  t.equal(toFast + toSlow, 400);
  t.ok(toFast > toSlow * 3, `fast ${toFast}, slow ${toSlow}`);
});

t.test('outlier detection ejects the failing endpoint, then lets it back after baseEjectionTime', async (t) => {
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) statuses.push((await request(port, '/', { host: 'outlier.example.com' })).status);
  t.equal(statuses.filter((s) => s === 500).length, 3, 'three consecutive 5xx eject the endpoint');
  const afterEjection = failing.received.length;
  for (let i = 0; i < 20; i++) t.equal((await request(port, '/', { host: 'outlier.example.com' })).status, 200);
  t.equal(failing.received.length, afterEjection, 'the ejected endpoint gets nothing while its ejection time has not passed');
  badEndpointFails = false;
  clock += 1000;
  // The next 100 ms interval sweep returns it; requests keep coming until one reaches it.
  const reached = await eventually(
    async () => {
      await request(port, '/', { host: 'outlier.example.com' });
      return failing.received.length;
    },
    (count) => count > afterEjection,
  );
  t.ok(reached > afterEjection, 'back in service after its ejection time');
});

t.test('connection-pool overflow is answered at once with 503 UO and x-envoy-overloaded', async (t) => {
  const first = request(port, '/1', { host: 'pool.example.com' });
  await eventually(
    () => held.length,
    (count) => count === 1,
  );
  const second = request(port, '/2', { host: 'pool.example.com' });
  const pending = await eventually(
    async () => JSON.parse((await request(admin, '/clusters')).body) as { clusters: { name: string; pending: number }[] },
    (view) => view.clusters.some((cluster) => cluster.name.endsWith('|pool.internal') && cluster.pending === 1),
  );
  t.ok(pending.clusters.some((cluster) => cluster.name.endsWith('|pool.internal') && cluster.pending === 1), 'the second request waits for the pool');
  // Queued, it would wait for the held request, which is answered only below: a reply at all proves it overflowed.
  const overflow = await request(port, '/3', { host: 'pool.example.com', timeoutMs: 60_000 });
  t.equal(overflow.status, 503);
  t.equal(overflow.headers['x-envoy-overloaded'], 'true');
  t.match(overflow.headers['x-meshgate-reason'], /^UO /);
  t.equal(held.length, 1, 'the pending request is not sent while the only connection is busy');
  held.shift()?.end('one');
  await eventually(
    () => held.length,
    (count) => count === 1,
  );
  held.shift()?.end('two');
  const answered = await Promise.all([first, second]);
  t.same(
    answered.map((r) => r.status),
    [200, 200],
  );
  t.equal(holding.received.filter((r) => r.url === '/3').length, 0, 'the overflowed request never reached the upstream');
});
