/**
 * The app side of the `dapr` suite (started by dapr-bench.ts, pinned like a load generator). Prints one
 * JSON report on stdout.
 *
 * `--mode pubsub`: serves the subscribing app on `--app-port` (`/dapr/subscribe` answers [] — the
 * subscription is declarative — and `/bench` takes the deliveries), publishes on sidecar A's outbound
 * port and waits for each event at the app behind sidecar B. `--latency N` sends N events one at a time
 * (publish → delivery); `--messages N` sends N with `--in-flight` publishes at once and waits until every
 * one arrived (or `--deadline-seconds`), counting lost and duplicated ones by event number.
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

export interface PubSubReport {
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number | null;
  readonly lost: number;
  readonly duplicated: number;
}

async function pubsub(): Promise<PubSubReport> {
  // Events of earlier runs (redelivered, or probes) carry another run id and are acked, not counted.
  const runId = `${process.pid}-${Date.now()}`;
  const arrivals = new Map<number, number>();
  let duplicated = 0;
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
      const { data } = JSON.parse(Buffer.concat(chunks).toString()) as { data: { run: string; n: number } };
      response.setHeader('content-type', 'application/json');
      response.end('{"status":"SUCCESS"}');
      if (data.run !== runId) return;
      if (arrivals.has(data.n)) duplicated++;
      else arrivals.set(data.n, performance.now());
      onArrival?.(data.n);
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
      if (arrivals.has(n)) return resolve();
      onArrival = (got) => got === n && resolve();
    });

  // The subscriber is ready once a probe makes the whole trip.
  for (let probe = -1; arrivals.size === 0; probe--) {
    await publish(probe);
    await Promise.race([arrived(probe), new Promise((resolve) => setTimeout(resolve, 200))]);
  }
  arrivals.clear();

  const latencies: number[] = [];
  const latencyCount = Number(values.latency);
  for (let n = 1; n <= latencyCount; n++) {
    const delivered = arrived(n);
    const started = performance.now();
    await publish(n);
    await delivered;
    latencies.push((arrivals.get(n) ?? Number.NaN) - started);
  }
  onArrival = null;
  latencies.sort((a, b) => a - b);

  const total = Number(values.messages);
  const first = latencyCount + 1;
  const started = performance.now();
  let next = first;
  await Promise.all(
    Array.from({ length: Number(values['in-flight']) }, async () => {
      while (next < first + total) await publish(next++);
    }),
  );
  const missing = (): number => {
    let count = 0;
    for (let n = first; n < first + total; n++) if (!arrivals.has(n)) count++;
    return count;
  };
  const deadline = Date.now() + Number(values['deadline-seconds']) * 1000;
  await new Promise<void>((resolve) => {
    let remaining = missing();
    if (remaining === 0) return resolve();
    const timer = setTimeout(resolve, deadline - Date.now());
    onArrival = (n) => {
      if (n >= first && n < first + total && --remaining === 0) {
        clearTimeout(timer);
        resolve();
      }
    };
  });
  const seconds = (performance.now() - started) / 1000;
  const lost = missing();
  await new Promise((resolve) => app.close(resolve));
  return {
    latencyP50Ms: latencies.length === 0 ? null : quantile(latencies, 0.5),
    latencyP99Ms: latencies.length === 0 ? null : quantile(latencies, 0.99),
    messages: total,
    seconds,
    messagesPerSecond: total === 0 ? null : (total - lost) / seconds,
    lost,
    duplicated,
  };
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
await sidecar.close();
process.stdout.write(`${JSON.stringify(report)}\n`);
