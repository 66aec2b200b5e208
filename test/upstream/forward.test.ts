import t from 'tap';
import type { ServerResponse } from 'node:http';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import type { Cluster } from '../../gateway/upstream/cluster.js';
import { forward } from '../../gateway/upstream/forward.js';
import type { UpstreamOutcome } from '../../gateway/upstream/forward.js';
import type { TrafficPolicy } from '../../gateway/config/kinds/destination-rule.js';
import type { RegistryEndpoint } from '../../gateway/upstream/registry.js';
import { eventually } from '../helpers/eventually.js';
import { closedPort, definition, delay, endpoint, readAll, request, retryPolicy, startUpstream } from './fixtures.js';

async function clusterOf(t: { teardown(fn: () => unknown): void }, endpoints: RegistryEndpoint[], policy?: TrafficPolicy): Promise<Cluster> {
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const set = manager.update([definition(endpoints, policy)]);
  const cluster = set.get('svc.test', 80);
  if (cluster === undefined) throw new Error('cluster missing');
  return cluster;
}

function statusOf(outcome: UpstreamOutcome): number {
  return outcome.kind === 'response' ? outcome.statusCode : outcome.reply.status;
}

async function drain(outcome: UpstreamOutcome): Promise<string> {
  return outcome.kind === 'response' ? readAll(outcome.body) : outcome.reply.message;
}

t.test('attempt-count header on every try; 5xx retried until success', async (t) => {
  const seen: string[] = [];
  const upstream = await startUpstream((req, res) => {
    seen.push(String(req.headers['x-envoy-attempt-count']));
    res.statusCode = seen.length < 3 ? 500 : 200;
    res.end('ok');
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const outcome = await forward(cluster, request({ retry: retryPolicy({ attempts: 3, on: ['5xx'] }) }));
  t.equal(statusOf(outcome), 200);
  t.equal(await drain(outcome), 'ok');
  t.same(seen, ['1', '2', '3']);
  t.equal(outcome.attempts, 3);
});

t.test('retries exhausted: the last response is returned with URX', async (t) => {
  const upstream = await startUpstream((_req, res) => {
    res.statusCode = 502;
    res.end('bad');
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const outcome = await forward(cluster, request({ retry: retryPolicy({ attempts: 2, on: ['gateway-error'] }) }));
  t.equal(statusOf(outcome), 502);
  t.equal(await drain(outcome), 'bad');
  t.equal(outcome.attempts, 3);
  t.ok(outcome.flags.includes('URX'));
});

t.test('a 503 from the app is NOT retried by the Istio default policy', async (t) => {
  let calls = 0;
  const upstream = await startUpstream((_req, res) => {
    calls += 1;
    res.statusCode = 503;
    res.end();
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const outcome = await forward(cluster, request({ retry: retryPolicy() }));
  await drain(outcome);
  t.equal(statusOf(outcome), 503);
  t.equal(calls, 1);
  t.same(outcome.flags, []);
});

t.test('retriable-status-codes retries only the listed codes', async (t) => {
  let calls = 0;
  const upstream = await startUpstream((_req, res) => {
    calls += 1;
    res.statusCode = calls === 1 ? 418 : 200;
    res.end();
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const outcome = await forward(
    cluster,
    request({ retry: retryPolicy({ attempts: 1, on: ['retriable-status-codes'], retriableStatusCodes: new Set([418]) }) }),
  );
  await drain(outcome);
  t.equal(statusOf(outcome), 200);
  t.equal(calls, 2);
});

t.test('connect failure is retried onto another host (previous-host avoidance)', async (t) => {
  const upstream = await startUpstream((_req, res) => res.end('alive'));
  t.teardown(() => upstream.close());
  const dead = await closedPort();
  const cluster = await clusterOf(t, [endpoint(dead), endpoint(upstream.port)], { loadBalancer: { simple: 'ROUND_ROBIN' } });
  for (let i = 0; i < 4; i++) {
    const outcome = await forward(cluster, request({ retry: retryPolicy({ attempts: 1 }) }));
    t.equal(statusOf(outcome), 200, `request ${i}`);
    t.equal(await drain(outcome), 'alive');
  }
});

t.test('connect failure with no retries left: 503 UF with Envoy body, URX when retries ran out', async (t) => {
  const dead = await closedPort();
  const cluster = await clusterOf(t, [endpoint(dead)]);
  const once = await forward(cluster, request({ retry: retryPolicy({ attempts: 0 }) }));
  t.equal(once.kind, 'local');
  if (once.kind === 'local') {
    t.equal(once.reply.status, 503);
    t.equal(once.reply.message, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
  }
  t.same(once.flags, ['UF']);
  const retried = await forward(cluster, request({ retry: retryPolicy({ attempts: 2 }) }));
  t.equal(retried.attempts, 3);
  t.same(retried.flags, ['UF', 'URX']);
});

t.test('per-try timeout is retried with 5xx and answered 504 UT with connect-failure only', async (t) => {
  let calls = 0;
  const upstream = await startUpstream((_req, res) => {
    calls += 1;
    if (calls === 1) setTimeout(() => res.end('late'), 1500);
    else res.end('fast');
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const retried = await forward(cluster, request({ retry: retryPolicy({ attempts: 1, perTryTimeoutMs: 300, on: ['5xx'] }) }));
  t.equal(statusOf(retried), 200);
  t.equal(await drain(retried), 'fast');
  calls = 0;
  const notRetried = await forward(cluster, request({ retry: retryPolicy({ attempts: 2, perTryTimeoutMs: 100, on: ['connect-failure'] }) }));
  t.equal(notRetried.kind, 'local');
  if (notRetried.kind === 'local') {
    t.equal(notRetried.reply.status, 504);
    t.equal(notRetried.reply.message, 'upstream request timeout');
  }
  t.ok(notRetried.flags.includes('UT'));
  t.equal(calls, 1);
});

t.test('route timeout bounds all tries: 504 UT upstream request timeout', async (t) => {
  const upstream = await startUpstream((_req, res) => setTimeout(() => res.end(), 1000));
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const started = Date.now();
  const outcome = await forward(cluster, request({ timeoutMs: 150, retry: retryPolicy({ attempts: 3, perTryTimeoutMs: 100, on: ['5xx'] }) }));
  const elapsed = Date.now() - started;
  t.equal(outcome.kind, 'local');
  if (outcome.kind === 'local') t.same([outcome.reply.status, outcome.reply.flag, outcome.reply.message], [504, 'UT', 'upstream request timeout']);
  t.ok(elapsed >= 140 && elapsed < 600, `took ${elapsed} ms`);
});

t.test('small POST bodies are buffered and replayed on retry', async (t) => {
  const bodies: string[] = [];
  const upstream = await startUpstream((req, res) => {
    void readAll(req).then((text) => {
      bodies.push(text);
      res.statusCode = bodies.length === 1 ? 500 : 200;
      res.end();
    });
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const { Readable } = await import('node:stream');
  const outcome = await forward(
    cluster,
    request({ method: 'POST', body: Readable.from([Buffer.from('hello '), Buffer.from('world')]), retry: retryPolicy({ attempts: 1, on: ['5xx'] }) }),
  );
  await drain(outcome);
  t.equal(statusOf(outcome), 200);
  t.same(bodies, ['hello world', 'hello world']);
});

t.test('circuit breaker overflow: 503 UO with x-envoy-overloaded, never retried', async (t) => {
  const held: ServerResponse[] = [];
  let calls = 0;
  const upstream = await startUpstream((_req, res) => {
    calls += 1;
    held.push(res);
  });
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)], {
    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } },
  });
  const retry = retryPolicy({ attempts: 3, on: ['5xx', 'reset', 'connect-failure'] });
  const running = forward(cluster, request({ retry }));
  // Once the first request runs on the one connection, the second waits for it (a cold pool would count the first as pending too).
  await eventually(() => calls, (n) => n === 1);
  const pending = forward(cluster, request({ retry }));
  const overflow = await forward(cluster, request({ retry }));
  t.equal(overflow.kind, 'local');
  if (overflow.kind === 'local') {
    t.same([overflow.reply.status, overflow.reply.flag], [503, 'UO']);
    t.same(overflow.extraHeaders, { 'x-envoy-overloaded': 'true' });
  }
  t.equal(overflow.attempts, 0);
  t.equal(calls, 1, 'only one request reached the upstream (one connection)');
  t.equal(cluster.stats().pending, 1);
  for (const res of held.splice(0)) res.end('done');
  const first = await running;
  t.equal(await drain(first), 'done');
  await delay(50);
  for (const res of held.splice(0)) res.end('done');
  t.equal(await drain(await pending), 'done');
  t.equal(calls, 2);
});

t.test('no endpoints: 503 UH no healthy upstream', async (t) => {
  const cluster = await clusterOf(t, []);
  const outcome = await forward(cluster, request());
  t.equal(outcome.kind, 'local');
  if (outcome.kind === 'local') t.same([outcome.reply.status, outcome.reply.flag, outcome.reply.message], [503, 'UH', 'no healthy upstream']);
});

t.test('upstream closing the connection before headers: 503 UC', async (t) => {
  const upstream = await startUpstream((req) => req.socket.destroy());
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const outcome = await forward(cluster, request({ retry: retryPolicy({ attempts: 0 }) }));
  t.equal(outcome.kind, 'local');
  if (outcome.kind === 'local') t.same([outcome.reply.status, outcome.reply.flag], [503, 'UC']);
});

t.test('client abort cancels the upstream request', async (t) => {
  let closed = false;
  const upstream = await startUpstream((req) => req.socket.once('close', () => (closed = true)));
  t.teardown(() => upstream.close());
  const cluster = await clusterOf(t, [endpoint(upstream.port)]);
  const client = new AbortController();
  setTimeout(() => client.abort(), 50);
  const outcome = await forward(cluster, request({ signal: client.signal }));
  t.equal(outcome.kind, 'local');
  t.ok(outcome.flags.includes('DC'));
  await delay(50);
  t.ok(closed, 'upstream connection was closed');
});
