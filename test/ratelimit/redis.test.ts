/**
 * Rate limiting with the Redis backend against a private redis-server: shared counters across
 * gateway processes, Redis outages in both failure modes, recovery, and one log line per transition.
 */
import t from 'tap';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { rateLimitPlugin, rateLimitStats } from '../../plugins/ratelimit/index.js';
import { setRateLimitLogger } from '../../plugins/ratelimit/stats.js';
import type { BackendState } from '../../plugins/ratelimit/stats.js';
import { eventually } from '../helpers/eventually.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import { TEST_REDIS_COMMAND_TIMEOUT_MS, meshConfigWithRedis, rateLimitPolicy } from './fixtures/policies.js';

const redis = await startPrivateRedis();
t.teardown(() => redis.dispose());
let prefixCounter = 0;
const freshPrefix = (): string => `test${process.pid}-${++prefixCounter}:`;

async function statuses(app: FastifyInstance, url: string, count: number): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < count; i++) codes.push((await app.inject({ url })).statusCode);
  return codes;
}

const count = (codes: readonly number[], status: number): number => codes.filter((code) => code === status).length;

async function waitForBackend(state: BackendState): Promise<void> {
  const reached = await eventually(
    () => rateLimitStats.backendState,
    (current) => current === state,
  );
  if (reached !== state) throw new Error(`backend state stayed ${reached}, expected ${state}`);
}

t.test('a burst against Redis admits exactly the limit, the first request included', async (t) => {
  const { app, diagnostics } = await buildPluginHarness({
    plugins: [rateLimitPlugin],
    resources: [
      meshConfigWithRedis(redis.url, freshPrefix()),
      rateLimitPolicy('burst', { backend: 'redis', failureMode: 'closed', rules: [{ limits: [{ requests: 10, per: '1m' }, { requests: 12, per: '1h' }] }] }),
    ],
  });
  t.teardown(() => app.close());
  t.same(diagnostics, []);
  const codes = await statuses(app, '/', 25);
  t.same(codes.slice(0, 10), Array(10).fill(200), 'no 503 while the connection is first established');
  t.equal(count(codes, 200), 10);
  t.equal(count(codes, 429), 15);
});

interface GatewayProcess {
  readonly child: ChildProcess;
  readonly port: number;
}

function startGatewayProcess(keyPrefix: string, requests: number): Promise<GatewayProcess> {
  const child = fork(new URL('./fixtures/gateway-process.js', import.meta.url), [redis.url, keyPrefix, String(requests)], {
    stdio: 'inherit',
    // A plain node process like a real gateway, without the test runner's instrumentation hooks (which slow start-up).
    execArgv: [],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return new Promise((resolve, reject) => {
    // A bound for a broken child, not a measurement: a loaded machine may take many seconds to start Node.
    const timer = setTimeout(() => reject(new Error('gateway process did not report its port')), 120_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve({ child, port: (message as { port: number }).port });
    });
    child.once('exit', (code) => reject(new Error(`gateway process exited with ${String(code)}`)));
  });
}

function stopGatewayProcess(gateway: GatewayProcess): Promise<void> {
  return new Promise((resolve) => {
    const killer = setTimeout(() => gateway.child.kill('SIGKILL'), 5000);
    gateway.child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    gateway.child.send('stop');
  });
}

t.test('two gateway processes share one Redis limit', async (t) => {
  const keyPrefix = freshPrefix();
  const gateways = await Promise.all([startGatewayProcess(keyPrefix, 20), startGatewayProcess(keyPrefix, 20)]);
  t.teardown(() => Promise.all(gateways.map(stopGatewayProcess)));
  const perGateway = [0, 0];
  let otherStatuses = 0;
  // Concurrent pairs, one request to each process at a time, so both race on the same counter.
  for (let round = 0; round < 25; round++) {
    const responses = await Promise.all(gateways.map((gateway) => fetch(`http://127.0.0.1:${gateway.port}/`)));
    responses.forEach((response, index) => {
      if (response.status === 200) perGateway[index] = (perGateway[index] ?? 0) + 1;
      else if (response.status !== 429) otherStatuses++;
    });
    await Promise.all(responses.map((response) => response.arrayBuffer()));
  }
  // The Redis increment is atomic, so within one window the slack is zero: exactly the limit in total.
  t.equal((perGateway[0] ?? 0) + (perGateway[1] ?? 0), 20, `admitted ${perGateway.join(' + ')}`);
  t.ok((perGateway[0] ?? 0) > 0 && (perGateway[1] ?? 0) > 0, 'both processes admitted some');
  t.equal(otherStatuses, 0, 'no status other than 200 and 429');
});

t.test('Redis down: open mode falls back to the insurance limit, closed mode answers 503 RLSE; recovery restores the shared limit', async (t) => {
  const lines: string[] = [];
  const { app } = await buildPluginHarness({
    plugins: [rateLimitPlugin],
    resources: [
      meshConfigWithRedis(redis.url, freshPrefix()),
      rateLimitPolicy('open', { backend: 'redis', rules: [{ match: { paths: ['/open'] }, limits: [{ requests: 10, per: '1m', insuranceLimit: 3 }] }] }),
      rateLimitPolicy('closed', { backend: 'redis', failureMode: 'closed', rules: [{ match: { paths: ['/closed'] }, limits: [{ requests: 4, per: '1m' }] }] }),
    ],
  });
  t.teardown(() => app.close());
  setRateLimitLogger(pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _encoding, done) => { lines.push(chunk.toString()); done(); } })));

  t.equal(count(await statuses(app, '/open', 2), 200), 2, 'Redis up: admitted');
  t.equal(count(await statuses(app, '/closed', 2), 200), 2, 'Redis up: admitted');
  await waitForBackend('up');
  const transitionsBefore = rateLimitStats.backendTransitions;
  const errorsBefore = rateLimitStats.backendErrors;

  await redis.stop();
  await waitForBackend('down');
  const startedAt = performance.now();
  const openCodes = await statuses(app, '/open', 10);
  t.equal(count(openCodes, 200), 3, 'open: the per-process insurance limit (3) applies, never unlimited');
  t.equal(count(openCodes, 429), 7);
  const closed = await app.inject({ url: '/closed' });
  t.equal(closed.statusCode, 503, 'closed: 503 while Redis is down');
  t.equal(closed.headers['x-meshgate-reason'], 'RLSE rate_limit_backend_unavailable[default/closed]');
  // A request that waited on the dead Redis would take at least the command timeout (a timer never fires
  // early); the 11 of them together take less than one.
  const elapsed = performance.now() - startedAt;
  t.ok(elapsed < TEST_REDIS_COMMAND_TIMEOUT_MS, `requests never wait for the dead Redis (${Math.round(elapsed)} ms for 11)`);
  t.ok(rateLimitStats.backendErrors - errorsBefore >= 11, 'each failed Redis call is counted');
  t.ok((rateLimitStats.decisions.get('default/closed')?.unavailable ?? 0) >= 1, 'closed-mode refusals are counted');

  await redis.start();
  await waitForBackend('up');
  const recovered = await statuses(app, '/closed', 6);
  t.same(count(recovered, 200), 4, 'back to the shared limit (the restarted Redis starts with empty counters)');
  t.same(count(recovered, 429), 2);
  t.equal(rateLimitStats.backendTransitions - transitionsBefore, 2, 'one up→down and one down→up transition');
  const unreachable = lines.filter((line) => line.includes('Redis is unreachable'));
  const reachable = lines.filter((line) => line.includes('Redis is reachable again'));
  t.equal(unreachable.length, 1, 'the outage is logged once, not per request or per reconnect attempt');
  t.equal(reachable.length, 1, 'the recovery is logged once');
});
