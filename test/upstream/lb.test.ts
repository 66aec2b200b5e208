import t from 'tap';
import { Pool } from 'undici';
import { UpstreamEndpoint } from '../../gateway/upstream/endpoint.js';
import { computeHashKey } from '../../gateway/upstream/hash-key.js';
import { createLoadBalancer } from '../../gateway/upstream/lb.js';
import type { HealthPolicy } from '../../gateway/upstream/lb.js';
import { resolvePolicy } from '../../gateway/upstream/policy.js';
import type { LoadBalancerSettings } from '../../gateway/config/kinds/destination-rule.js';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import { forward } from '../../gateway/upstream/forward.js';
import { definition, endpoint, readAll, request, seeded, startUpstream } from './fixtures.js';

/** Endpoints whose pools never connect: LB tests only look at the choice. */
function endpoints(t: { teardown(fn: () => unknown): void }, weights: number[]): UpstreamEndpoint[] {
  const list = weights.map(
    (weight, i) =>
      new UpstreamEndpoint(
        { address: `10.0.0.${i + 1}`, port: 80, labels: {}, weight, serviceAccount: '', locality: '', namespace: 'default' },
        new Pool(`http://10.0.0.${i + 1}:80`),
      ),
  );
  t.teardown(() => Promise.all(list.map((e) => e.pool.close())));
  return list;
}

function settings(lb: LoadBalancerSettings) {
  return resolvePolicy({ loadBalancer: lb }, undefined, 80).loadBalancer;
}

function counts(list: UpstreamEndpoint[], pick: () => UpstreamEndpoint | null, n: number): number[] {
  const result = list.map(() => 0);
  for (let i = 0; i < n; i++) {
    const chosen = pick();
    if (chosen !== null) result[list.indexOf(chosen)] += 1;
  }
  return result;
}

const NEVER_PANIC: HealthPolicy = { panics: () => false };

t.test('ROUND_ROBIN: exact rotation, weighted in proportion', async (t) => {
  const equal = endpoints(t, [1, 1, 1]);
  const rr = createLoadBalancer(equal, settings({ simple: 'ROUND_ROBIN' }), null, seeded(1));
  t.same(counts(equal, () => rr.pick(null, null), 300), [100, 100, 100]);
  const weighted = endpoints(t, [1, 2, 5]);
  const wrr = createLoadBalancer(weighted, settings({ simple: 'ROUND_ROBIN' }), null, seeded(1));
  t.same(counts(weighted, () => wrr.pick(null, null), 800), [100, 200, 500]);
});

t.test('RANDOM: weighted, within bounds (seeded)', async (t) => {
  const list = endpoints(t, [1, 3]);
  const lb = createLoadBalancer(list, settings({ simple: 'RANDOM' }), null, seeded(42));
  const [a, b] = counts(list, () => lb.pick(null, null), 4000);
  t.ok((a ?? 0) > 850 && (a ?? 0) < 1150, `weight 1 got ${a}`);
  t.ok((b ?? 0) > 2850 && (b ?? 0) < 3150, `weight 3 got ${b}`);
});

t.test('LEAST_REQUEST (default): prefers hosts with fewer active requests', async (t) => {
  const list = endpoints(t, [1, 1, 1, 1]);
  const lb = createLoadBalancer(list, settings({}), null, seeded(7));
  (list[0] as UpstreamEndpoint).active = 50;
  const result = counts(list, () => lb.pick(null, null), 3000);
  t.ok((result[0] ?? 0) < 100, `busy host got ${result[0]}`);
  for (const n of result.slice(1)) t.ok(n > 800 && n < 1200, `idle host got ${n}`);
});

t.test('ejected hosts are skipped; panic mode uses all; retries avoid tried hosts', async (t) => {
  const list = endpoints(t, [1, 1, 1]);
  (list[0] as UpstreamEndpoint).ejected = true;
  const lb = createLoadBalancer(list, settings({ simple: 'ROUND_ROBIN' }), NEVER_PANIC, seeded(3));
  t.equal(counts(list, () => lb.pick(null, null), 60)[0], 0);
  const panicking = createLoadBalancer(list, settings({ simple: 'ROUND_ROBIN' }), { panics: () => true }, seeded(3));
  t.equal(counts(list, () => panicking.pick(null, null), 60)[0], 20);
  const second = list[1] as UpstreamEndpoint;
  const random = createLoadBalancer(list, settings({ simple: 'RANDOM' }), NEVER_PANIC, seeded(5));
  // Envoy re-selects up to 5 times: the tried host still wins 1 time in 2^6 with two usable hosts.
  const triedAgain = counts(list, () => random.pick(null, [second]), 640)[1] ?? 0;
  t.ok(triedAgain < 25, `tried host chosen again ${triedAgain} times of 640 (expected about 10)`);
  for (const e of list) e.ejected = true;
  t.equal(lb.pick(null, null), null, 'all ejected and no panic → nothing (503 UH)');
});

t.test('ring hash: stable per key, ~1/N remapped when a host joins, ejected host skipped', async (t) => {
  const list = endpoints(t, [1, 1, 1, 1, 1]);
  const ring = settings({ consistentHash: { httpHeaderName: 'x-user' } });
  const lb = createLoadBalancer(list.slice(0, 4), ring, NEVER_PANIC, seeded(9));
  const keys = Array.from({ length: 2000 }, (_, i) => computeHashKey(ring.hashKey, { headers: { 'x-user': `user-${i}` }, sourceIp: '', path: '/' }).hash);
  const before = keys.map((hash) => lb.pick(hash, null));
  t.same(keys.map((hash) => lb.pick(hash, null)), before, 'same key → same host');
  const perHost = counts(list.slice(0, 4), () => null, 0);
  for (const e of before) if (e !== null) perHost[list.indexOf(e)] += 1;
  for (const n of perHost) t.ok(n > 300 && n < 700, `ring share ${n}`);
  const grown = createLoadBalancer(list, ring, NEVER_PANIC, seeded(9));
  const moved = keys.filter((hash, i) => grown.pick(hash, null) !== before[i]).length;
  t.ok(moved > 200 && moved < 650, `${moved} of 2000 keys moved (expected about 1/5)`);
  const victim = list[0] as UpstreamEndpoint;
  victim.ejected = true;
  const afterEjection = keys.map((hash) => lb.pick(hash, null));
  t.notOk(afterEjection.includes(victim));
  t.ok(afterEjection.every((e, i) => before[i] === victim || e === before[i]), 'keys of other hosts do not move');
  t.equal(computeHashKey(ring.hashKey, { headers: {}, sourceIp: '', path: '/' }).hash, null, 'no header → no affinity');
});

t.test('cookie affinity: generated Set-Cookie when ttl is set and the cookie is absent; the cookie pins the host', async (t) => {
  const source = settings({ consistentHash: { httpCookie: { name: 'affinity', path: '/', ttl: '60s' } } }).hashKey;
  const first = computeHashKey(source, { headers: {}, sourceIp: '192.0.2.7', path: '/' });
  t.match(first.setCookie, /^affinity="[0-9a-f]{8}"; Max-Age=60; Path=\/; HttpOnly$/);
  const value = /"([0-9a-f]+)"/.exec(first.setCookie ?? '')?.[1] ?? '';
  const next = computeHashKey(source, { headers: { cookie: `a=b; affinity="${value}"` }, sourceIp: '198.51.100.1', path: '/' });
  t.equal(next.hash, first.hash, 'the generated cookie hashes like the first request');
  t.equal(next.setCookie, undefined);
  const noTtl = settings({ consistentHash: { httpCookie: { name: 'affinity' } } }).hashKey;
  t.same(computeHashKey(noTtl, { headers: {}, sourceIp: '192.0.2.7', path: '/' }), { hash: null, setCookie: undefined });
  const query = settings({ consistentHash: { httpQueryParameterName: 'u' } }).hashKey;
  t.equal(
    computeHashKey(query, { headers: {}, sourceIp: '', path: '/x?u=1' }).hash,
    computeHashKey(query, { headers: {}, sourceIp: '', path: '/y?a=2&u=1' }).hash,
  );
});

t.test('end to end: cookie affinity through forward() returns setCookie and keeps one backend', async (t) => {
  const servers = await Promise.all(['a', 'b', 'c'].map((name) => startUpstream((_req, res) => res.end(name))));
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const cluster = manager
    .update([definition(servers.map((s) => endpoint(s.port)), { loadBalancer: { consistentHash: { httpCookie: { name: 'sticky', ttl: '0s' } } } })])
    .get('svc.test');
  if (cluster === undefined) throw new Error('no cluster');
  const first = await forward(cluster, request());
  if (first.kind !== 'response') throw new Error('expected a response');
  const backend = await readAll(first.body);
  t.match(first.setCookie, /^sticky="[0-9a-f]+"; HttpOnly$/, 'ttl 0s: session cookie');
  const cookie = (first.setCookie ?? '').split(';')[0] ?? '';
  for (let i = 0; i < 5; i++) {
    const again = await forward(cluster, request({ headers: { host: 'svc.test', cookie }, sourceIp: `10.9.9.${i}` }));
    t.equal(again.kind === 'response' ? await readAll(again.body) : '', backend);
    t.equal(again.kind === 'response' ? again.setCookie : 'x', undefined);
  }
});
