/**
 * connectionPool on an HTTP/2 cluster, at its boundaries (docs/grpc.md#connection-pools): maxConnections
 * bounds the cluster's connections as in Envoy, also when requests waited for a connection whose
 * SETTINGS then allowed fewer streams than waited; the requests beyond wait for a free stream, and
 * beyond http1MaxPendingRequests they overflow. The h2c upstream allows one stream per connection and
 * holds every response until the test has counted what arrived.
 */
import t from 'tap';
import type { Test } from 'tap';
import http2 from 'node:http2';
import type { Http2ServerResponse, Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TrafficPolicy } from '../../gateway/config/kinds/destination-rule.js';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import type { Cluster } from '../../gateway/upstream/cluster.js';
import { forward } from '../../gateway/upstream/forward.js';
import type { UpstreamOutcome } from '../../gateway/upstream/forward.js';
import { eventually } from '../helpers/eventually.js';
import { definition, endpoint, readAll, request, retryPolicy } from './fixtures.js';

interface HoldingH2Upstream {
  readonly port: number;
  readonly held: Http2ServerResponse[];
  sessions(): number;
  release(): void;
}

async function holdingH2Upstream(t: Test): Promise<HoldingH2Upstream> {
  const held: Http2ServerResponse[] = [];
  const sessions = new Set<Http2Session>();
  let accepted = 0;
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1 } }, (req, res) => {
    req.resume();
    held.push(res);
  });
  server.on('session', (session: Http2Session) => {
    accepted += 1;
    sessions.add(session);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const session of sessions) session.destroy();
    server.close();
  });
  return {
    port: (server.address() as AddressInfo).port,
    held,
    sessions: () => accepted,
    release: () => {
      for (const res of held.splice(0)) res.end('done');
    },
  };
}

async function h2ClusterOf(t: Test, port: number, connectionPool: TrafficPolicy['connectionPool']): Promise<Cluster> {
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const cluster = manager.update([{ ...definition([endpoint(port)], { connectionPool }), http2: true }]).get('svc.test', 80);
  if (cluster === undefined) throw new Error('cluster missing');
  return cluster;
}

const NO_RETRY = retryPolicy({ attempts: 0 });

async function statusAndBody(outcome: Promise<UpstreamOutcome>): Promise<string> {
  const result = await outcome;
  return result.kind === 'response' ? `${result.statusCode} ${await readAll(result.body)}` : `${result.reply.status} ${result.flags.join(',')}`;
}

for (const maxConnections of [1, 2]) {
  t.test(`maxConnections ${maxConnections}, one stream per connection: ${maxConnections} connection(s), the other requests wait for a stream`, async (t) => {
    const upstream = await holdingH2Upstream(t);
    const cluster = await h2ClusterOf(t, upstream.port, { tcp: { maxConnections }, http: { http1MaxPendingRequests: 10 } });
    const outcomes = Array.from({ length: 3 }, () => statusAndBody(forward(cluster, request({ retry: NO_RETRY }))));
    await eventually(() => upstream.held.length, (n) => n === maxConnections);
    t.equal(upstream.held.length, maxConnections, 'as many requests run as connections may be open');
    t.equal(upstream.sessions(), maxConnections, 'no connection beyond maxConnections');
    t.equal(cluster.breaker.active, maxConnections);
    t.equal(cluster.breaker.pending, 3 - maxConnections, 'the others are pending');
    while (upstream.held.length > 0) {
      upstream.release();
      await eventually(() => upstream.held.length + cluster.breaker.pending, (n) => n === 0 || upstream.held.length > 0);
    }
    t.same(await Promise.all(outcomes), ['200 done', '200 done', '200 done']);
    t.equal(upstream.sessions(), maxConnections, 'the waiting requests used the same connections');
    t.equal(cluster.breaker.connections, maxConnections);
  });
}

t.test('maxConnections 1 and http1MaxPendingRequests 1: one runs, one waits, the third overflows (503 UO)', async (t) => {
  const upstream = await holdingH2Upstream(t);
  const cluster = await h2ClusterOf(t, upstream.port, { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } });
  // Warm: the connection is open and its one stream is free.
  const warm = statusAndBody(forward(cluster, request({ retry: NO_RETRY })));
  await eventually(() => upstream.held.length, (n) => n === 1);
  upstream.release();
  t.equal(await warm, '200 done');
  const running = statusAndBody(forward(cluster, request({ retry: NO_RETRY })));
  await eventually(() => upstream.held.length, (n) => n === 1);
  const waiting = statusAndBody(forward(cluster, request({ retry: NO_RETRY })));
  await eventually(() => cluster.breaker.pending, (n) => n === 1);
  t.equal(await statusAndBody(forward(cluster, request({ retry: NO_RETRY }))), '503 UO', 'over the pending limit');
  upstream.release();
  await eventually(() => upstream.held.length, (n) => n === 1);
  upstream.release();
  t.same(await Promise.all([running, waiting]), ['200 done', '200 done']);
  t.equal(upstream.sessions(), 1);
});
