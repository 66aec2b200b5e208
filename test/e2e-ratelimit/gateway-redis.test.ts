/**
 * RateLimitPolicy through a real in-process ingress with a private redis-server: quota shared by path
 * and case variants of one route, X-Forwarded-For from an untrusted hop ignored, 429 headers, Redis
 * outage in both failure modes, recovery, and the decisions on the admin metrics endpoint.
 */
import t from 'tap';
import http from 'node:http';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import { eventually } from '../helpers/eventually.js';
import { countOf, get, metricSum, rateLimitYaml } from './support.js';
import type { Reply } from './support.js';

const redis = await startPrivateRedis();
t.teardown(() => redis.dispose());
const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());
const [adminPort, gatewayPort] = [await freePort(), await freePort()];
const dir = await configDir(rateLimitYaml({ adminPort, gatewayPort, upstreamPort: app.port, redisUrl: redis.url, keyPrefix: `e2e${process.pid}:` }));
t.teardown(() => dir.remove());
const gateway = await startGateway(dir.file);
t.teardown(() => gateway.stop());
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
t.teardown(() => agent.destroy());

async function burst(host: string, paths: readonly string[], extraHeaders: (index: number) => Record<string, string> = () => ({})): Promise<Reply[]> {
  return Promise.all(paths.map((path, index) => get(gatewayPort, path, { host, ...extraHeaders(index) }, agent)));
}

t.test('path and case variants of one route share its quota; rotating X-Forwarded-For buys nothing', async (t) => {
  const variants = ['/api/items', '/API/items', '/api/./items', '/x/../api/items', '/Api/items?page=2'];
  const paths = Array.from({ length: 20 }, (_, index) => variants[index % variants.length] as string);
  const before = app.received.length;
  const replies = await burst('api.example.com', paths, (index) => ({ 'x-forwarded-for': `203.0.113.${index + 1}` }));
  t.equal(countOf(replies, 200), 10, 'exactly the limit is admitted across all variants and XFF values');
  t.equal(countOf(replies, 429), 10);
  t.equal(app.received.length - before, 10, 'limited requests never reach the upstream');

  const limited = replies.find((reply) => reply.status === 429);
  t.ok(limited, 'a limited reply');
  t.match(String(limited?.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After in whole seconds');
  t.equal(limited?.headers['ratelimit-policy'], '"istio-system/open-limit#0.0";q=10;w=60');
  t.match(String(limited?.headers['ratelimit']), /^"istio-system\/open-limit#0\.0";r=0;t=([1-5]?\d|60)$/);
  t.equal(limited?.headers['x-meshgate-reason'], 'RL rate_limited[istio-system/open-limit]');

  const otherRoute = await get(gatewayPort, '/elsewhere', { host: 'api.example.com' }, agent);
  t.equal(otherRoute.status, 200, 'another route of the same host has its own counter');
});

t.test('Redis down: open mode applies the insurance limit, closed mode answers 503 with a reason; recovery restores the shared limit', async (t) => {
  // The api route's Redis counter is used up by the test above; with Redis down the per-process insurance
  // limiter (its own counter) decides.
  await redis.stop();
  const open = await burst('api.example.com', Array.from({ length: 6 }, () => '/api/items'));
  t.equal(countOf(open, 200), 3, 'failureMode open: the per-process insurance limit (3), never unlimited');
  t.equal(countOf(open, 429), 3);
  const closed = await get(gatewayPort, '/closed/x', { host: 'closed.example.com' }, agent);
  t.equal(closed.status, 503);
  t.equal(closed.headers['x-meshgate-reason'], 'RLSE rate_limit_backend_unavailable[istio-system/closed-limit]');

  await redis.start();
  const probe = await eventually(
    () => get(gatewayPort, '/closed/probe', { host: 'closed.example.com' }, agent),
    (reply) => reply.status === 200,
  );
  t.equal(probe.status, 200, 'closed mode admits again once Redis is back');
  // The probes counted against the `other` route's key; the `api` route of this host has a counter of its own.
  const shared = await burst('closed.example.com', Array.from({ length: 14 }, () => '/api/x'));
  t.equal(countOf(shared, 200), 10, 'the shared Redis limit (10) applies again');
});

t.test('the admin metrics endpoint shows the decisions by policy and result', async (t) => {
  const metrics = await get(adminPort, '/stats/prometheus', {});
  t.equal(metrics.status, 200);
  const sum = (policy: string, result: string): number => metricSum(metrics.body, 'meshgate_ratelimit_decisions_total', { policy, result });
  t.ok(sum('istio-system/open-limit', 'allowed') >= 14, 'admitted decisions are counted');
  t.ok(sum('istio-system/open-limit', 'limited') >= 13, 'limited decisions are counted (insurance refusals included)');
  t.ok(sum('istio-system/closed-limit', 'store_error') >= 1, 'closed-mode refusals during the outage are counted');
});
