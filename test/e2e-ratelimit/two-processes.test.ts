/**
 * One RateLimitPolicy enforced by TWO `meshgate run` child processes sharing one private redis-server:
 * a burst split across both gateways, each request claiming another client IP in X-Forwarded-For from an
 * untrusted hop, gets the limit once in total — not once per process, not once per forged IP.
 */
import t from 'tap';
import http from 'node:http';
import { configDir, freePort, startUpstream } from '../helpers/gateway.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import { eventually, spawnCli } from '../e2e-foundation/fixtures.js';
import type { CliProcess } from '../e2e-foundation/fixtures.js';
import { countOf, get, metricSum, rateLimitYaml } from './support.js';

/** Per minute: the whole burst falls in one fixed window, so there is no boundary slack to allow for. */
const LIMIT = 10;

const redis = await startPrivateRedis();
t.teardown(() => redis.dispose());
const app = await startUpstream(undefined, 'app');
t.teardown(() => app.close());

interface GatewayProcess {
  readonly cli: CliProcess;
  readonly adminPort: number;
  readonly gatewayPort: number;
}

async function spawnGateway(): Promise<GatewayProcess> {
  const [adminPort, gatewayPort] = [await freePort(), await freePort()];
  const dir = await configDir(rateLimitYaml({ adminPort, gatewayPort, upstreamPort: app.port, redisUrl: redis.url, keyPrefix: `two${process.pid}:` }));
  t.teardown(() => dir.remove());
  const cli = spawnCli(['run', '-c', dir.file, '--log-level', 'warn']);
  t.teardown(async () => {
    cli.child.kill('SIGTERM');
    const killer = setTimeout(() => cli.kill(), 30_000);
    await cli.exited;
    clearTimeout(killer);
  });
  return { cli, adminPort, gatewayPort };
}

const gateways = await Promise.all([spawnGateway(), spawnGateway()]);
for (const gateway of gateways) {
  const ready = await eventually(async () => (await get(gateway.adminPort, '/ready', {})).status === 200, 120_000);
  if (!ready) throw new Error(`gateway did not become ready:\n${gateway.cli.stdout()}\n${gateway.cli.stderr()}`);
}
const agents = gateways.map(() => new http.Agent({ keepAlive: true, maxSockets: 8 }));
t.teardown(() => agents.forEach((agent) => agent.destroy()));

t.test('the limit holds across both processes and forged client IPs', async (t) => {
  const before = app.received.length;
  const replies = await Promise.all(
    Array.from({ length: 4 * LIMIT }, (_, index) => {
      const gateway = gateways[index % 2] as GatewayProcess;
      return get(gateway.gatewayPort, '/api/items', { host: 'api.example.com', 'x-forwarded-for': `198.51.100.${index + 1}` }, agents[index % 2]);
    }),
  );
  const admitted = countOf(replies, 200);
  t.equal(admitted, LIMIT, `admitted ${admitted}: the limit once, shared by both processes`);
  t.equal(countOf(replies, 429), replies.length - admitted, 'everything else is limited');
  t.equal(app.received.length - before, admitted, 'only admitted requests reach the upstream');

  let allowedInMetrics = 0;
  for (const gateway of gateways) {
    const metrics = await get(gateway.adminPort, '/stats/prometheus', {});
    allowedInMetrics += metricSum(metrics.body, 'meshgate_ratelimit_decisions_total', { policy: 'istio-system/open-limit', result: 'allowed' });
  }
  t.equal(allowedInMetrics, admitted, 'the two processes’ decision counters add up to what was admitted');
});
