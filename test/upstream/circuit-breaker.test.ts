/**
 * Envoy's connectionPool accounting, each limit at its boundary, with a warm pool (idle connections
 * already open) and a cold one (none yet). Deterministic: the upstream holds every response until the
 * test has counted what arrived, then releases them.
 */
import t from 'tap';
import type { Test } from 'tap';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TrafficPolicy } from '../../gateway/config/kinds/destination-rule.js';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import type { Cluster } from '../../gateway/upstream/cluster.js';
import { forward } from '../../gateway/upstream/forward.js';
import type { UpstreamOutcome } from '../../gateway/upstream/forward.js';
import { definition, endpoint, readAll, request, retryPolicy, startUpstream } from './fixtures.js';

interface Held {
  readonly attempt: string;
  readonly res: ServerResponse;
}

interface HoldingUpstream {
  readonly port: number;
  readonly held: Held[];
  /** TCP connections the upstream accepted so far. */
  connections(): number;
  /** Resolves once `count` requests arrived in total. */
  arrived(count: number): Promise<void>;
  release(status?: number): void;
}

/** An upstream that holds every response; `answer` may answer some at once instead (return true). */
async function holdingUpstream(
  t: Test,
  answer: (req: IncomingMessage, res: ServerResponse) => boolean = () => false,
): Promise<HoldingUpstream> {
  const held: Held[] = [];
  let total = 0;
  let accepted = 0;
  const waiters: { count: number; resolve: () => void }[] = [];
  const upstream = await startUpstream((req, res) => {
    total += 1;
    if (!answer(req, res)) held.push({ attempt: String(req.headers['x-envoy-attempt-count']), res });
    for (const waiter of waiters.splice(0)) {
      if (total >= waiter.count) waiter.resolve();
      else waiters.push(waiter);
    }
  });
  upstream.server.keepAliveTimeout = 60_000;
  upstream.server.on('connection', () => (accepted += 1));
  t.teardown(() => upstream.close());
  return {
    port: upstream.port,
    held,
    connections: () => accepted,
    arrived: (count) => (total >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    release: (status = 200) => {
      for (const { res } of held.splice(0)) {
        res.statusCode = status;
        res.end('done');
      }
    },
  };
}

async function clusterOf(t: Test, port: number, connectionPool: TrafficPolicy['connectionPool']): Promise<Cluster> {
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const cluster = manager.update([definition([endpoint(port)], { connectionPool })]).get('svc.test', 80);
  if (cluster === undefined) throw new Error('cluster missing');
  return cluster;
}

const NO_RETRY = retryPolicy({ attempts: 0 });

/** Opens `count` connections and leaves them idle in the pool (each request held until all arrived). */
async function warm(cluster: Cluster, upstream: HoldingUpstream, count: number): Promise<void> {
  const before = upstream.connections();
  const arrivedBefore = upstream.held.length;
  const warming = Array.from({ length: count }, () => forward(cluster, request({ retry: NO_RETRY })));
  await upstream.arrived(arrivedBefore + count);
  upstream.release();
  for (const outcome of await Promise.all(warming)) await drain(outcome);
  if (upstream.connections() - before !== count) throw new Error(`warming opened ${upstream.connections() - before} connections, not ${count}`);
}

async function drain(outcome: UpstreamOutcome): Promise<string> {
  return outcome.kind === 'response' ? readAll(outcome.body) : outcome.reply.flag;
}

function flagOf(outcome: UpstreamOutcome): string {
  return outcome.kind === 'response' ? String(outcome.statusCode) : outcome.reply.flag;
}

/** Whether a forward settled by now: overflow is answered at once, a waiting request is not. */
async function settledNow(outcome: Promise<UpstreamOutcome>): Promise<UpstreamOutcome | 'waiting'> {
  return Promise.race([outcome, new Promise<'waiting'>((resolve) => setImmediate(() => resolve('waiting')))]);
}

for (const pool of ['warm', 'cold'] as const) {
  t.test(`${pool} pool: maxConnections bounds connections, the rest wait without overflowing`, async (t) => {
    const upstream = await holdingUpstream(t);
    const cluster = await clusterOf(t, upstream.port, { tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 10 } });
    if (pool === 'warm') await warm(cluster, upstream, 2);
    const arrivedBefore = pool === 'warm' ? 2 : 0;
    const outcomes = Array.from({ length: 5 }, () => forward(cluster, request({ retry: NO_RETRY })));
    await upstream.arrived(arrivedBefore + 2);
    t.equal(upstream.held.length, 2, 'two requests run, one per connection');
    t.equal(cluster.stats().active, 2);
    t.equal(cluster.stats().pending, 3, 'three wait for a connection');
    t.equal(cluster.breaker.connections, 2);
    upstream.release();
    await upstream.arrived(arrivedBefore + 4);
    upstream.release();
    await upstream.arrived(arrivedBefore + 5);
    upstream.release();
    t.same(await Promise.all((await Promise.all(outcomes)).map(drain)), ['done', 'done', 'done', 'done', 'done']);
    t.equal(upstream.connections(), 2, 'never more than two connections');
    t.equal(cluster.stats().overflows, 0);
  });

  t.test(`${pool} pool: http1MaxPendingRequests alone bounds the requests waiting for a connection`, async (t) => {
    const upstream = await holdingUpstream(t);
    // http2MaxRequests 1: Envoy does not count the waiting requests against it.
    const cluster = await clusterOf(t, upstream.port, { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 3, http2MaxRequests: 1 } });
    if (pool === 'warm') {
      await warm(cluster, upstream, 1);
      const running = forward(cluster, request({ retry: NO_RETRY }));
      await upstream.arrived(2);
      const waiting = [0, 1, 2].map(() => forward(cluster, request({ retry: NO_RETRY })));
      for (const outcome of waiting) t.equal(await settledNow(outcome), 'waiting');
      t.equal(cluster.stats().pending, 3);
      const over = await forward(cluster, request({ retry: NO_RETRY }));
      t.equal(flagOf(over), 'UO', 'the fourth waiting request overflows');
      if (over.kind === 'local') t.same([over.reply.status, over.extraHeaders], [503, { 'x-envoy-overloaded': 'true' }]);
      for (let served = 2; served <= 5; served++) {
        await upstream.arrived(served);
        upstream.release();
      }
      t.same(await Promise.all([running, ...waiting].map(async (o) => drain(await o))), ['done', 'done', 'done', 'done']);
    } else {
      // Cold: the first request is itself pending while its connection opens (Envoy counts it there too).
      const waiting = [0, 1, 2].map(() => forward(cluster, request({ retry: NO_RETRY })));
      const over = await forward(cluster, request({ retry: NO_RETRY }));
      t.equal(flagOf(over), 'UO', 'a fourth request while three are pending overflows');
      for (let served = 1; served <= 3; served++) {
        await upstream.arrived(served);
        upstream.release();
      }
      t.same(await Promise.all(waiting.map(async (o) => drain(await o))), ['done', 'done', 'done']);
    }
    t.equal(cluster.stats().overflows, 1);
    t.equal(upstream.connections(), 1);
  });

  t.test(`${pool} pool: http2MaxRequests counts active requests only; over it a request with a connection overflows`, async (t) => {
    const upstream = await holdingUpstream(t);
    const cluster = await clusterOf(t, upstream.port, { tcp: { maxConnections: 4 }, http: { http1MaxPendingRequests: 10, http2MaxRequests: 2 } });
    if (pool === 'warm') await warm(cluster, upstream, 2);
    const arrivedBefore = pool === 'warm' ? 2 : 0;
    const admitted = [0, 1].map(() => forward(cluster, request({ retry: NO_RETRY })));
    await upstream.arrived(arrivedBefore + 2);
    t.equal(cluster.stats().active, 2);
    // The third is pending while a connection opens for it (maxConnections allows one), and overflows
    // when it gets it: two requests are active (Envoy's attach-time check).
    const third = await forward(cluster, request({ retry: retryPolicy({ attempts: 3, on: ['5xx', 'reset'] }) }));
    t.equal(flagOf(third), 'UO');
    t.equal(upstream.held.length, 2, 'it never reached the upstream');
    // A fourth, with an idle connection ready or not, would be a third active request: overflow.
    t.equal(flagOf(await forward(cluster, request({ retry: NO_RETRY }))), 'UO');
    t.ok(upstream.connections() <= 4, 'within maxConnections');
    t.equal(third.attempts, 0, 'an overflow is never retried');
    t.equal(cluster.stats().pending, 0);
    upstream.release();
    t.same(await Promise.all(admitted.map(async (o) => drain(await o))), ['done', 'done']);
    const after = forward(cluster, request({ retry: NO_RETRY }));
    await upstream.arrived(arrivedBefore + 3);
    upstream.release();
    t.equal(await drain(await after), 'done', 'capacity is back once the active requests finished');
    t.equal(cluster.stats().active, 0);
  });

  t.test(`${pool} pool: maxRetries bounds concurrent retries; over it the first answer stands`, async (t) => {
    // First tries are answered 503 at once; retries are held.
    const upstream = await holdingUpstream(t, (req, res) => {
      if (req.headers['x-envoy-attempt-count'] !== '1') return false;
      res.statusCode = 503;
      res.end('first try');
      return true;
    });
    const cluster = await clusterOf(t, upstream.port, { tcp: { maxConnections: 10 }, http: { maxRetries: 1 } });
    if (pool === 'warm') {
      const warming = forward(cluster, request({ retry: NO_RETRY }));
      await drain(await warming);
    }
    const arrivedBefore = pool === 'warm' ? 1 : 0;
    const retry = retryPolicy({ attempts: 2, on: ['5xx'], backoffBaseMs: 1 });
    const retried = forward(cluster, request({ retry }));
    await upstream.arrived(arrivedBefore + 2);
    t.same(upstream.held.map((h) => h.attempt), ['2'], 'the first request is being retried');
    t.equal(cluster.stats().activeRetries, 1);
    const refused = await forward(cluster, request({ retry }));
    t.equal(flagOf(refused), '503', 'the second one gets its 503: no retry budget left');
    t.equal(refused.attempts, 1);
    t.equal(await drain(refused), 'first try');
    t.equal(cluster.stats().retryOverflows, 1);
    upstream.release();
    const first = await retried;
    t.equal(flagOf(first), '200');
    t.equal(await drain(first), 'done');
    t.equal(cluster.stats().activeRetries, 0);
  });
}
