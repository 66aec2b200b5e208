/**
 * Pub/sub through one sidecar on Redis Streams (`node dist/bench/dapr-pubsub.js`): the app publishes
 * on the sidecar's outbound port and receives the deliveries on its own port. Measures publish →
 * delivery latency one message at a time (p50/p99), then throughput with 64 publishes in flight until
 * every message is delivered, counting lost and duplicated event ids. Sidecar, app and load share one
 * process: the figures include the load generator's CPU. Knobs: PUBSUB_LATENCY_MESSAGES (2000),
 * PUBSUB_THROUGHPUT_MESSAGES (20000).
 */
import http from 'node:http';
import { Pool } from 'undici';
import { allocateMeshPorts, meshYaml } from '../test/e2e-mesh/mesh-fixture.js';
import { configDir, freePort, startGateway } from '../test/helpers/gateway.js';
import { makeTestPki } from '../test/helpers/pki.js';
import { startPrivateRedis } from '../test/helpers/redis-server.js';

const LATENCY_MESSAGES = Number(process.env['PUBSUB_LATENCY_MESSAGES'] ?? 2000);
const THROUGHPUT_MESSAGES = Number(process.env['PUBSUB_THROUGHPUT_MESSAGES'] ?? 20000);
const IN_FLIGHT = 64;

const redis = await startPrivateRedis();
const appPort = await freePort();
const arrivals = new Map<number, number>();
let duplicates = 0;
let onArrival: ((n: number) => void) | null = null;
const app = http.createServer((request, response) => {
  if (request.url === '/dapr/subscribe') {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify([{ pubsubname: 'events', topic: 'bench', route: '/bench' }]));
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const { n } = (JSON.parse(Buffer.concat(chunks).toString()) as { data: { n: number } }).data;
    if (arrivals.has(n)) duplicates++;
    else arrivals.set(n, performance.now());
    response.end('{"status":"SUCCESS"}');
    onArrival?.(n);
  });
});
await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));

const ports = await allocateMeshPorts();
const config = await configDir(
  meshYaml(await makeTestPki(), ports, { product: await freePort(), order: appPort }, {
    extraYaml: `
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: { name: events, namespace: my-app }
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - { name: redisHost, value: "127.0.0.1:${redis.port}" }
    - { name: concurrency, value: "64" }
`,
  }),
);
const sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
const publisher = new Pool(`http://127.0.0.1:${ports.orderOutbound}`, { connections: IN_FLIGHT });

async function publish(n: number): Promise<void> {
  const response = await publisher.request({ method: 'POST', path: '/v1.0/publish/events/bench', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) });
  await response.body.dump();
  if (response.statusCode !== 204) throw new Error(`publish ${n} answered ${response.statusCode}`);
}

// Wait for the subscription: publish a probe until it arrives.
for (let probe = -1; arrivals.size === 0; probe--) {
  await publish(probe);
  await new Promise((resolve) => setTimeout(resolve, 100));
}

const latencies: number[] = [];
for (let n = 0; n < LATENCY_MESSAGES; n++) {
  const delivered = new Promise<void>((resolve) => (onArrival = (got) => got === n && resolve()));
  const started = performance.now();
  await publish(n);
  await delivered;
  latencies.push((arrivals.get(n) ?? 0) - started);
}
onArrival = null;
latencies.sort((a, b) => a - b);
const quantile = (q: number): string => (latencies[Math.floor(q * (latencies.length - 1))] ?? 0).toFixed(2);

const base = LATENCY_MESSAGES;
const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    while (next < THROUGHPUT_MESSAGES) await publish(base + next++);
  }),
);
const published = performance.now();
const allDelivered = (): boolean => {
  for (let n = base; n < base + THROUGHPUT_MESSAGES; n++) if (!arrivals.has(n)) return false;
  return true;
};
const deadline = Date.now() + 120_000;
while (!allDelivered() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
const finished = performance.now();
let lost = 0;
for (let n = base; n < base + THROUGHPUT_MESSAGES; n++) if (!arrivals.has(n)) lost++;

console.log(`publish → delivery latency, ${LATENCY_MESSAGES} messages one at a time: p50 ${quantile(0.5)} ms, p90 ${quantile(0.9)} ms, p99 ${quantile(0.99)} ms`);
console.log(
  `throughput, ${THROUGHPUT_MESSAGES} messages, ${IN_FLIGHT} publishes in flight: published in ${((published - started) / 1000).toFixed(2)} s, ` +
    `all delivered after ${((finished - started) / 1000).toFixed(2)} s → ${Math.round(THROUGHPUT_MESSAGES / ((finished - started) / 1000))} msg/s; lost ${lost}, duplicated ${duplicates}`,
);

await publisher.close();
await sidecar.stop();
await new Promise((resolve) => app.close(resolve));
await config.remove();
await redis.dispose();
