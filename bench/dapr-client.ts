/**
 * The app side of the `dapr` suite (started by dapr-bench.ts, pinned like a load generator). Prints one
 * JSON report on stdout.
 *
 * `--mode pubsub`: serves the subscribing app on `--app-port` (`/dapr/subscribe` answers [] — the
 * subscription is declarative — and `/bench` takes the deliveries), publishes on sidecar A's outbound
 * port and waits for each event at the app behind sidecar B. `--latency N` sends N events one at a time
 * (publish → delivery); `--messages N` (the `node` publisher of dapr-throughput.ts) follows the window
 * protocol of dapr-delivery.ts, sends N with `--in-flight` publishes at once and waits until every one
 * arrived (or `--deadline-seconds`, or `--stall-seconds` without a new one), counting lost and
 * duplicated ones by event id.
 *
 * `--mode state`: the same value read through the sidecar (`GET /v1.0/state/{store}/{key}`, one
 * keep-alive connection) and straight from Redis (`GET` on one ioredis connection), alternating request by
 * request for `--seconds` per repetition — so both run in the same seconds — and swapping which goes
 * first in every other pair; p50/p99 of each per repetition.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { redisClass } from '../gateway/redis/client.js';
import { DELIVERED_LINE, DeliveryLedger, READY_LINE, announce, eventOf, throughputReport, whenDelivered } from './dapr-delivery.js';
import type { ThroughputReport } from './dapr-delivery.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    'app-port': { type: 'string', default: '0' },
    'sidecar-port': { type: 'string' },
    pubsub: { type: 'string', default: 'events' },
    topic: { type: 'string', default: 'bench' },
    latency: { type: 'string', default: '0' },
    messages: { type: 'string', default: '0' },
    'in-flight': { type: 'string', default: '64' },
    'deadline-seconds': { type: 'string', default: '120' },
    'stall-seconds': { type: 'string', default: '10' },
    run: { type: 'string' },
    'redis-port': { type: 'string', default: '0' },
    store: { type: 'string', default: 'store' },
    seconds: { type: 'string', default: '3' },
    repetitions: { type: 'string', default: '5' },
  },
});

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] ?? Number.NaN;
}

const sidecar = new Pool(`http://127.0.0.1:${values['sidecar-port'] ?? ''}`, { connections: Number(values['in-flight']) });

export interface LatencyReport {
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

async function pubsub(): Promise<LatencyReport | ThroughputReport> {
  // Events of earlier runs (redelivered) carry another run id and are acked, not counted; probes have ids ≤ 0.
  const runId = values.run ?? `${process.pid}-${Date.now()}`;
  const latencyCount = Number(values.latency);
  const ledger = new DeliveryLedger(1, latencyCount > 0 ? latencyCount : Number(values.messages));
  const arrivedAt = new Map<number, number>();
  let onArrival: ((n: number) => void) | null = null;
  const app = http.createServer((request, response) => {
    if (request.url === '/dapr/subscribe') {
      response.setHeader('content-type', 'application/json');
      response.end('[]');
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const event = eventOf(Buffer.concat(chunks));
      response.setHeader('content-type', 'application/json');
      response.end('{"status":"SUCCESS"}');
      if (event === null || event.run !== runId) return;
      if (event.n > 0 && !ledger.record(event.n)) return;
      arrivedAt.set(event.n, performance.now());
      onArrival?.(event.n);
    });
  });
  await new Promise<void>((resolve) => app.listen(Number(values['app-port']), '127.0.0.1', resolve));
  const path = `/v1.0/publish/${values.pubsub ?? ''}/${values.topic ?? ''}`;
  const publish = async (n: number): Promise<void> => {
    const response = await sidecar.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run: runId, n }) });
    const text = await response.body.text();
    if (response.statusCode !== 204) throw new Error(`publish ${n} answered ${response.statusCode}: ${text}`);
  };
  const arrived = (n: number): Promise<void> =>
    new Promise((resolve) => {
      if (arrivedAt.has(n)) return resolve();
      onArrival = (got) => got === n && resolve();
    });

  // The subscriber is ready once a probe makes the whole trip.
  for (let probe = 0; arrivedAt.size === 0; probe--) {
    await publish(probe);
    await Promise.race([arrived(probe), new Promise((resolve) => setTimeout(resolve, 200))]);
  }

  if (latencyCount > 0) {
    const latencies: number[] = [];
    for (let n = 1; n <= latencyCount; n++) {
      const delivered = arrived(n);
      const started = performance.now();
      await publish(n);
      await delivered;
      latencies.push((arrivedAt.get(n) ?? Number.NaN) - started);
    }
    latencies.sort((a, b) => a - b);
    await new Promise((resolve) => app.close(resolve));
    return { latencyP50Ms: quantile(latencies, 0.5), latencyP99Ms: quantile(latencies, 0.99) };
  }

  await announce(READY_LINE);
  const started = performance.now();
  const waiter = whenDelivered(ledger, Number(values['deadline-seconds']) * 1000, Number(values['stall-seconds']) * 1000);
  onArrival = () => waiter.arrived();
  let next = 1;
  const publishing = Promise.all(
    Array.from({ length: Number(values['in-flight']) }, async () => {
      while (next <= ledger.count) await publish(next++);
    }),
  );
  await Promise.race([publishing.then(() => waiter.done), waiter.done]);
  const seconds = (performance.now() - started) / 1000;
  await announce(DELIVERED_LINE);
  return throughputReport(ledger, seconds);
}

export interface StateRepetition {
  readonly sidecarFirst: number;
  readonly sidecarP50Us: number;
  readonly sidecarP99Us: number;
  readonly directP50Us: number;
  readonly directP99Us: number;
  readonly pairs: number;
}

export interface StateReport {
  readonly repetitions: StateRepetition[];
  /** GETs sent through the sidecar in all, warm-up included (the sidecar's CPU is read over the whole run). */
  readonly sidecarRequests: number;
}

async function state(): Promise<StateReport> {
  const value = { id: 42, name: 'bench items', price: 19.99, currency: 'EUR', inStock: true, tags: ['bench', 'state', 'json'] };
  const saved = await sidecar.request({ method: 'POST', path: `/v1.0/state/${values.store ?? ''}`, headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: 'bench', value }]) });
  await saved.body.dump();
  if (saved.statusCode !== 204) throw new Error(`saving the bench key answered ${saved.statusCode}`);
  const redis = new (redisClass())({ host: '127.0.0.1', port: Number(values['redis-port']) });
  await redis.set('bench-direct', JSON.stringify(value));
  let sidecarRequests = 0;
  const viaSidecar = async (): Promise<number> => {
    sidecarRequests++;
    const started = performance.now();
    const response = await sidecar.request({ method: 'GET', path: `/v1.0/state/${values.store ?? ''}/bench` });
    const text = await response.body.text();
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200 || text.length < 10) throw new Error(`sidecar GET answered ${response.statusCode}: ${text}`);
    return elapsed * 1000;
  };
  const direct = async (): Promise<number> => {
    const started = performance.now();
    const text = await redis.get('bench-direct');
    const elapsed = performance.now() - started;
    if (text === null) throw new Error('direct GET found nothing');
    return elapsed * 1000;
  };
  // Warm-up: JIT and connections, on both paths.
  const warmUntil = Date.now() + 1000;
  while (Date.now() < warmUntil) {
    await viaSidecar();
    await direct();
  }
  const repetitions: StateRepetition[] = [];
  for (let repetition = 0; repetition < Number(values.repetitions); repetition++) {
    const sidecarTimes: number[] = [];
    const directTimes: number[] = [];
    const until = Date.now() + Number(values.seconds) * 1000;
    let sidecarFirst = 0;
    for (let pair = 0; Date.now() < until; pair++) {
      if ((pair + repetition) % 2 === 0) {
        sidecarFirst++;
        sidecarTimes.push(await viaSidecar());
        directTimes.push(await direct());
      } else {
        directTimes.push(await direct());
        sidecarTimes.push(await viaSidecar());
      }
    }
    sidecarTimes.sort((a, b) => a - b);
    directTimes.sort((a, b) => a - b);
    repetitions.push({
      sidecarFirst,
      pairs: sidecarTimes.length,
      sidecarP50Us: quantile(sidecarTimes, 0.5),
      sidecarP99Us: quantile(sidecarTimes, 0.99),
      directP50Us: quantile(directTimes, 0.5),
      directP99Us: quantile(directTimes, 0.99),
    });
  }
  await redis.quit();
  return { repetitions, sidecarRequests };
}

const report = values.mode === 'state' ? await state() : await pubsub();
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
