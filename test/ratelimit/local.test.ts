/**
 * Rate limiting with the in-process backend: admission counts, keys, evasion attempts, headers. The
 * windows run on `clock`, which only the tests move: a slow machine cannot split a burst across windows.
 */
import t from 'tap';
import type { FastifyInstance, FastifyRequest, InjectOptions } from 'fastify';
import type { Resource } from '../../gateway/config/resource.js';
import type { RequestAttributes } from '../../gateway/pipeline/types.js';
import { createRateLimitPlugin, rateLimitStats } from '../../plugins/ratelimit/index.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { fakeAuthAndRouting, rateLimitPolicy } from './fixtures/policies.js';

type TestScope = Pick<typeof t, 'same' | 'teardown'>;

let clock = 1_000_000;
const rateLimitPlugin = createRateLimitPlugin({ now: () => clock });

async function harness(
  t: TestScope,
  resources: readonly Resource[],
  attrs?: (request: FastifyRequest) => Partial<RequestAttributes>,
): Promise<FastifyInstance> {
  const built = await buildPluginHarness({ plugins: [fakeAuthAndRouting, rateLimitPlugin], resources, ...(attrs === undefined ? {} : { attrs }) });
  t.same(built.diagnostics, [], 'policies compile without diagnostics');
  t.teardown(() => built.app.close());
  return built.app;
}

/** Sends `count` requests one after the other; returns how many were admitted (200). */
async function admitted(app: FastifyInstance, count: number, request: (i: number) => InjectOptions = () => ({ url: '/' })): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i++) {
    const response = await app.inject(request(i));
    if (response.statusCode === 200) ok++;
  }
  return ok;
}

t.test('a burst admits exactly the limit, then 429 RL with Retry-After and draft headers', async (t) => {
  const app = await harness(t, [rateLimitPolicy('burst', { rules: [{ limits: [{ requests: 10, per: '1s' }] }] })]);
  t.equal(await admitted(app, 25), 10, '10 of 25 admitted');
  const limited = await app.inject({ url: '/' });
  t.equal(limited.statusCode, 429);
  t.equal(limited.headers['x-meshgate-reason'], 'RL rate_limited[default/burst]');
  t.equal(limited.headers['retry-after'], '1', 'Retry-After rounds the rest of a 1s window up to 1');
  t.equal(limited.headers['ratelimit-policy'], '"default/burst#0.0";q=10;w=1');
  t.equal(limited.headers['ratelimit'], '"default/burst#0.0";r=0;t=1');
  t.equal(limited.headers['x-envoy-ratelimited'], 'true');
  t.equal(limited.body, 'rate limited by default/burst\n');
  t.ok((rateLimitStats.decisions.get('default/burst')?.limited ?? 0) >= 16, 'limited decisions are counted per policy');
  clock += 999;
  t.equal(await admitted(app, 1), 0, 'still limited 1 ms before the window ends');
  clock += 1;
  t.equal(await admitted(app, 3), 3, 'the next window admits again');
});

t.test('two limits on one rule are both enforced; the refused short window does not use up the long one', async (t) => {
  const app = await harness(t, [
    rateLimitPolicy('two', { rules: [{ limits: [{ requests: 5, per: '1h' }, { requests: 3, per: '1s' }] }] }),
  ]);
  t.equal(await admitted(app, 6), 3, 'the per-second limit binds first');
  clock += 1000;
  t.equal(await admitted(app, 2), 2, 'the hourly limit then leaves 5 - 3 = 2');
  const limited = await app.inject({ url: '/' });
  t.equal(limited.headers['ratelimit-policy'], '"default/two#0.0";q=5;w=3600', 'the refusing limit is the hourly one');
  t.ok(Number(limited.headers['retry-after']) > 3500, 'Retry-After counts to the end of the hour window');
});

t.test('cost consumes several units per request', async (t) => {
  const app = await harness(t, [rateLimitPolicy('cost', { rules: [{ limits: [{ requests: 10, per: '1m', cost: 3 }] }] })]);
  t.equal(await admitted(app, 10), 3, '3 × 3 = 9 ≤ 10; the 4th would be 12');
});

t.test('headers on admitted responses when response.headers is true; custom status', async (t) => {
  const app = await harness(t, [
    rateLimitPolicy('hdr', {
      rules: [{ limits: [{ requests: 2, per: '1m' }, { requests: 1000, per: '1h' }] }],
      response: { headers: true, status: 503 },
    }),
    rateLimitPolicy('quiet', { rules: [{ limits: [{ requests: 100, per: '1m' }] }] }),
  ]);
  const first = await app.inject({ url: '/' });
  t.equal(first.statusCode, 200);
  t.equal(first.headers['ratelimit-policy'], '"default/hdr#0.0";q=2;w=60, "default/hdr#0.1";q=1000;w=3600');
  t.match(first.headers['ratelimit'], /^"default\/hdr#0\.0";r=1;t=60, "default\/hdr#0\.1";r=999;t=3600$/);
  await app.inject({ url: '/' });
  const limited = await app.inject({ url: '/' });
  t.equal(limited.statusCode, 503, 'response.status replaces 429');
  t.equal(limited.headers['x-meshgate-reason'], 'RL rate_limited[default/hdr]');
});

t.test('admitted responses carry no rate limit headers by default', async (t) => {
  const app = await harness(t, [rateLimitPolicy('plain', { rules: [{ limits: [{ requests: 5, per: '1m' }] }] })]);
  const response = await app.inject({ url: '/' });
  t.equal(response.statusCode, 200);
  t.notOk('ratelimit' in response.headers);
  t.notOk('ratelimit-policy' in response.headers);
});

t.test('key parts: header, claim (nested), request principal, peer principal, route', async (t) => {
  const app = await harness(
    t,
    [
      rateLimitPolicy('by-header', { rules: [{ match: { paths: ['/h'] }, key: [{ header: { name: 'X-Api-Key' } }], limits: [{ requests: 2, per: '1m' }] }] }),
      rateLimitPolicy('by-claim', { rules: [{ match: { paths: ['/c'] }, key: [{ claim: { name: 'org.id' } }], limits: [{ requests: 2, per: '1m' }] }] }),
      rateLimitPolicy('by-jwt', { rules: [{ match: { paths: ['/j'] }, key: [{ requestPrincipal: {} }], limits: [{ requests: 2, per: '1m' }] }] }),
      rateLimitPolicy('by-peer', { rules: [{ match: { paths: ['/p'] }, key: [{ principal: {} }], limits: [{ requests: 2, per: '1m' }] }] }),
      rateLimitPolicy('by-route', { rules: [{ match: { paths: ['/r/*'] }, key: [{ route: {} }], limits: [{ requests: 2, per: '1m' }] }] }),
    ],
    (request) => {
      const peer = request.headers['x-test-peer'];
      if (typeof peer !== 'string') return {};
      return {
        peer: { principal: `cluster.local/ns/default/sa/${peer}`, trustDomain: 'cluster.local', namespace: 'default', serviceAccount: peer, uri: `spiffe://cluster.local/ns/default/sa/${peer}`, certHash: '' },
      };
    },
  );
  const jwt = (sub: string, org: string): string => JSON.stringify({ principal: `https://issuer/${sub}`, claims: { sub, org: { id: org } } });

  t.equal(await admitted(app, 4, () => ({ url: '/h', headers: { 'x-api-key': 'alice' } })), 2, 'header key: alice gets 2');
  t.equal(await admitted(app, 4, () => ({ url: '/h', headers: { 'x-api-key': 'bob' } })), 2, 'header key: bob has his own 2');

  t.equal(await admitted(app, 4, (i) => ({ url: '/c', headers: { 'x-test-jwt': jwt(`user${i}`, 'acme') } })), 2, 'claim key: different subjects of one org share org.id quota');
  t.equal(await admitted(app, 4, () => ({ url: '/c', headers: { 'x-test-jwt': jwt('u', 'globex') } })), 2, 'claim key: another org has its own quota');

  t.equal(await admitted(app, 4, (i) => ({ url: '/j', headers: { 'x-test-jwt': jwt('same', `org${i}`) } })), 2, 'request principal key: one subject, one quota');
  t.equal(await admitted(app, 4, () => ({ url: '/j', headers: { 'x-test-jwt': jwt('other', 'x') } })), 2, 'request principal key: another subject');

  t.equal(await admitted(app, 4, () => ({ url: '/p', headers: { 'x-test-peer': 'sleep' } })), 2, 'peer principal key: sleep');
  t.equal(await admitted(app, 4, () => ({ url: '/p', headers: { 'x-test-peer': 'curl' } })), 2, 'peer principal key: curl has its own quota');

  t.equal(await admitted(app, 4, (i) => ({ url: `/r/${i}`, headers: { 'x-test-route': 'default/shop.0' } })), 2, 'route key: one route, one quota whatever the path');
  t.equal(await admitted(app, 4, () => ({ url: '/r/x', headers: { 'x-test-route': 'default/shop.1' } })), 2, 'route key: another route');
});

t.test('a missing key part: one shared "missing" bucket by default, or the rule is skipped', async (t) => {
  const app = await harness(t, [
    rateLimitPolicy('bucket', { rules: [{ match: { paths: ['/bucket'] }, key: [{ claim: { name: 'sub' } }], limits: [{ requests: 2, per: '1m' }] }] }),
    rateLimitPolicy('skip', { rules: [{ match: { paths: ['/skip'] }, key: [{ header: { name: 'x-api-key' } }], missingKey: 'skip', limits: [{ requests: 2, per: '1m' }] }] }),
  ]);
  t.equal(await admitted(app, 5, () => ({ url: '/bucket' })), 2, 'anonymous requests share one bucket: dropping the JWT does not escape the limit');
  t.equal(await admitted(app, 5, () => ({ url: '/bucket', headers: { 'x-test-jwt': JSON.stringify({ principal: 'i/s', claims: { sub: 's' } }) } })), 2, 'an authenticated subject has its own bucket');
  t.equal(await admitted(app, 5, () => ({ url: '/skip' })), 5, 'missingKey skip: requests without the header are not limited by the rule');
  t.equal(await admitted(app, 5, () => ({ url: '/skip', headers: { 'x-api-key': 'k' } })), 2);
});

t.test('evasion: rotating X-Forwarded-For from an untrusted hop gets no new quota', async (t) => {
  // The core only believes XFF from trusted hops; here no hop is trusted, so remoteIp stays the socket peer.
  const app = await harness(t, [rateLimitPolicy('per-ip', { rules: [{ key: [{ remoteIp: {} }], limits: [{ requests: 3, per: '1m' }] }] })]);
  t.equal(await admitted(app, 10, (i) => ({ url: '/', headers: { 'x-forwarded-for': `203.0.113.${i}` } })), 3);
});

t.test('the remoteIp key is the core-computed client IP: distinct clients get distinct quotas', async (t) => {
  const app = await harness(
    t,
    [rateLimitPolicy('per-ip', { rules: [{ key: [{ remoteIp: {} }], limits: [{ requests: 3, per: '1m' }] }] })],
    (request) => ({ remoteIp: String(request.headers['x-test-client-ip']) }),
  );
  t.equal(await admitted(app, 5, () => ({ url: '/', headers: { 'x-test-client-ip': '198.51.100.1' } })), 3);
  t.equal(await admitted(app, 5, () => ({ url: '/', headers: { 'x-test-client-ip': '198.51.100.2' } })), 3);
});

t.test('evasion: path variants are matched on the normalised path, hosts case-insensitively', async (t) => {
  const app = await harness(
    t,
    [rateLimitPolicy('api', { rules: [{ match: { hosts: ['api.example.com'], paths: ['/v1/*'], methods: ['GET'] }, limits: [{ requests: 3, per: '1m' }] }] })],
    // What the core's normaliser hands to policies: dot segments resolved, query stripped.
    (request) => ({ path: new URL(request.raw.url ?? '/', 'http://normaliser').pathname }),
  );
  const variants = ['/v1/items', '/public/../v1/items', '/v1/./items', '/v1/items?x=1', '/v1//items'];
  const hosts = ['api.example.com', 'API.Example.COM'];
  t.equal(await admitted(app, 10, (i) => ({ url: variants[i % variants.length] ?? '/', headers: { host: hosts[i % 2] ?? '' } })), 3);
  t.equal(await admitted(app, 3, () => ({ url: '/v1/items', method: 'POST', headers: { host: 'api.example.com' } })), 3, 'methods: POST is not matched');
  t.equal(await admitted(app, 3, () => ({ url: '/v2/items', headers: { host: 'api.example.com' } })), 3, 'paths: /v2 is not matched');
});

t.test('header match patterns and policy scope (namespace, selector, root namespace)', async (t) => {
  const built = await buildPluginHarness({
    plugins: [rateLimitPlugin],
    workload: { namespace: 'shop', labels: { app: 'api' } },
    resources: [
      rateLimitPolicy('free-tier', { rules: [{ match: { headers: { 'X-Tier': ['free*'] } }, limits: [{ requests: 1, per: '1m' }] }] }, 'shop'),
      rateLimitPolicy('other-ns', { rules: [{ limits: [{ requests: 1, per: '1m' }] }] }, 'billing'),
      rateLimitPolicy('other-app', { selector: { matchLabels: { app: 'web' } }, rules: [{ limits: [{ requests: 1, per: '1m' }] }] }, 'shop'),
      rateLimitPolicy('mesh-wide', { selector: { matchLabels: { app: 'api' } }, rules: [{ limits: [{ requests: 5, per: '1m' }] }] }, 'istio-system'),
    ],
  });
  t.teardown(() => built.app.close());
  const app = built.app;
  t.equal(await admitted(app, 3, () => ({ url: '/', headers: { 'x-tier': 'free-trial' } })), 1, 'free* tier limited to 1');
  t.equal(await admitted(app, 4, () => ({ url: '/', headers: { 'x-tier': 'gold' } })), 4, 'other tiers only see the mesh-wide limit');
  const last = await app.inject({ url: '/' });
  t.equal(last.statusCode, 429, 'the mesh-wide policy (root namespace, selector matches) applies: 1 + 4 = 5 admitted (refused requests do not count against later policies)');
  t.equal(last.headers['x-meshgate-reason'], 'RL rate_limited[istio-system/mesh-wide]');
});
