import t from 'tap';
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { ClusterManager } from '../../gateway/upstream/cluster-manager.js';
import { forward } from '../../gateway/upstream/forward.js';
import { eventually } from '../helpers/eventually.js';
import { definition, endpoint, readAll, request, retryPolicy, startUpstream } from './fixtures.js';

const NO_RETRY = retryPolicy({ attempts: 0 });

t.test('outlier detection ejects after N consecutive 5xx and returns the host after baseEjectionTime', async (t) => {
  let failing = true;
  const bad = await startUpstream((_req, res) => {
    res.statusCode = failing ? 500 : 200;
    res.end('bad');
  });
  const good = await startUpstream((_req, res) => res.end('good'));
  t.teardown(() => Promise.all([bad.close(), good.close()]));
  // Ejection times are read from this clock: the host stays out however slow the requests below are, and
  // comes back only when the test moves the clock past baseEjectionTime.
  let now = 1_000_000;
  const manager = new ClusterManager({ now: () => now });
  t.teardown(() => manager.close());
  const cluster = manager
    .update([
      definition([endpoint(bad.port), endpoint(good.port)], {
        loadBalancer: { simple: 'ROUND_ROBIN' },
        outlierDetection: { consecutive5xxErrors: 3, interval: '50ms', baseEjectionTime: '300ms', maxEjectionPercent: 100 },
      }),
    ])
    .get('svc.test');
  if (cluster === undefined) throw new Error('no cluster');
  let badHits = 0;
  for (let i = 0; i < 6; i++) {
    const outcome = await forward(cluster, request({ retry: NO_RETRY }));
    if (outcome.kind === 'response' && (await readAll(outcome.body)) === 'bad') badHits += 1;
  }
  t.equal(badHits, 3, 'the failing host got exactly 3 requests before ejection');
  const badStats = cluster.stats().endpoints.find((e) => e.address === `127.0.0.1:${bad.port}`);
  t.equal(badStats?.healthy, false);
  t.equal(badStats?.ejectedUntil, now + 300, 'ejected for baseEjectionTime');
  for (let i = 0; i < 4; i++) {
    const outcome = await forward(cluster, request({ retry: NO_RETRY }));
    t.equal(outcome.kind === 'response' ? await readAll(outcome.body) : '', 'good', 'ejected host gets no traffic');
  }
  failing = false;
  now += 299;
  cluster.outlier?.sweep();
  t.equal(cluster.stats().endpoints.find((e) => e.address === `127.0.0.1:${bad.port}`)?.healthy, false, 'still out 1 ms before the ejection time');
  now += 1;
  const healthy = await eventually(
    () => cluster.stats().endpoints.find((e) => e.address === `127.0.0.1:${bad.port}`)?.healthy,
    (value) => value === true,
  );
  t.equal(healthy, true, 'back after the ejection time, at the next interval sweep');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const outcome = await forward(cluster, request({ retry: NO_RETRY }));
    if (outcome.kind === 'response') seen.add(await readAll(outcome.body));
  }
  t.same([...seen].sort(), ['bad', 'good'], 'both hosts serve again');
});

t.test('maxEjectionPercent limits ejections (at least one host is always ejectable); all ejected → 503 UH', async (t) => {
  const upstreams = await Promise.all(
    [0, 1, 2, 3].map(() =>
      startUpstream((_req, res) => {
        res.statusCode = 503;
        res.end();
      }),
    ),
  );
  t.teardown(() => Promise.all(upstreams.map((u) => u.close())));
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const endpoints = upstreams.map((u) => endpoint(u.port));
  const set = manager.update([
    definition(endpoints, { outlierDetection: { consecutiveGatewayErrors: 1, consecutive5xxErrors: 0, maxEjectionPercent: 10, baseEjectionTime: '10s' } }),
    definition(endpoints, { outlierDetection: { consecutiveGatewayErrors: 1, maxEjectionPercent: 100, baseEjectionTime: '10s' } }, { port: 81 }),
  ]);
  const ten = set.get('svc.test', 80);
  const all = set.get('svc.test', 81);
  if (ten === undefined || all === undefined) throw new Error('no cluster');
  for (let i = 0; i < 12; i++) {
    const outcome = await forward(ten, request({ retry: NO_RETRY }));
    if (outcome.kind === 'response') await readAll(outcome.body);
  }
  t.equal(ten.stats().endpoints.filter((e) => !e.healthy).length, 1, '10% of 4 hosts: only the first ejection is allowed');
  let last = await forward(all, request({ retry: NO_RETRY }));
  for (let i = 0; i < 12 && last.kind === 'response'; i++) {
    await readAll(last.body);
    last = await forward(all, request({ retry: NO_RETRY }));
  }
  t.equal(last.kind, 'local');
  if (last.kind === 'local') t.same([last.reply.status, last.reply.flag], [503, 'UH']);
  t.equal(all.stats().endpoints.filter((e) => !e.healthy).length, 4);
});

t.test('an endpoint removed by a reload drains: the in-flight request completes', async (t) => {
  let held: ServerResponse | null = null;
  const old = await startUpstream((_req, res) => {
    held = res;
  });
  const replacement = await startUpstream((_req, res) => res.end('new'));
  t.teardown(() => Promise.all([old.close(), replacement.close()]));
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const first = manager.update([definition([endpoint(old.port)])]).get('svc.test');
  if (first === undefined) throw new Error('no cluster');
  const inFlight = forward(first, request({ retry: NO_RETRY }));
  await eventually(
    () => held,
    (response) => response !== null,
  );
  const second = manager.update([definition([endpoint(replacement.port)])]).get('svc.test');
  t.equal(second, first, 'same identity and policy: the cluster runtime is kept');
  const fresh = second === undefined ? null : await forward(second, request({ retry: NO_RETRY }));
  t.equal(fresh?.kind === 'response' ? await readAll(fresh.body) : '', 'new');
  (held as ServerResponse | null)?.end('old finished');
  const outcome = await inFlight;
  t.equal(outcome.kind === 'response' ? await readAll(outcome.body) : '', 'old finished');
});

t.test('20 MB request and response bodies are streamed, not buffered', async (t) => {
  const size = 20 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 7);
  const upstream = await startUpstream((req, res) => {
    const hash = createHash('sha256');
    let received = 0;
    req.on('data', (data: Buffer) => {
      received += data.length;
      hash.update(data);
    });
    req.on('end', () => {
      res.setHeader('x-received', String(received));
      res.setHeader('x-sha', hash.digest('hex'));
      let sent = 0;
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
  });
  t.teardown(() => upstream.close());
  const manager = new ClusterManager();
  t.teardown(() => manager.close());
  const cluster = manager.update([definition([endpoint(upstream.port)])]).get('svc.test');
  if (cluster === undefined) throw new Error('no cluster');
  let produced = 0;
  const expected = createHash('sha256');
  const body = new Readable({
    read() {
      if (produced >= size) return void this.push(null);
      produced += chunk.length;
      expected.update(chunk);
      this.push(chunk);
    },
  });
  const heapBefore = process.memoryUsage().heapUsed;
  const outcome = await forward(cluster, request({ method: 'POST', body, retry: NO_RETRY }));
  if (outcome.kind !== 'response') throw new Error('expected a response');
  t.equal(outcome.headers['x-received'], String(size));
  t.equal(outcome.headers['x-sha'], expected.digest('hex'));
  let total = 0;
  let peakHeap = heapBefore;
  for await (const data of outcome.body) {
    total += (data as Buffer).length;
    if (total % (1024 * 1024) < 70_000) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  }
  t.equal(total, size);
  t.ok(peakHeap - heapBefore < 16 * 1024 * 1024, `heap grew ${Math.round((peakHeap - heapBefore) / 1048576)} MB`);
});
