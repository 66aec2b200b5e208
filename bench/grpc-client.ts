/**
 * The load generator of the `grpc-unary` measurement: `--concurrency` closed loops of unary calls over
 * one @grpc/grpc-js channel (TLS, the server's certificate trusted from `--ca`) for `--seconds`.
 * Prints one JSON line: calls, failures, seconds and latency percentiles in µs of the measured part,
 * and allCalls (warm-up included), for the proxy's CPU per call over the client's whole run.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '1' },
  },
});
const identity = (value: Buffer): Buffer => value;
const Items = grpc.makeGenericClientConstructor(
  { get: { path: '/bench.Items/Get', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
  'Items',
);
const servername = values.servername ?? 'localhost';
const client = new Items(`127.0.0.1:${values.port ?? ''}`, grpc.credentials.createSsl(readFileSync(values.ca ?? '')), {
  'grpc.ssl_target_name_override': servername,
  'grpc.default_authority': servername,
}) as unknown as grpc.Client & { get(request: Buffer, callback: (error: grpc.ServiceError | null) => void): void };
const request = Buffer.from('{"id":42}');

function call(): Promise<boolean> {
  return new Promise((resolve) => client.get(request, (error) => resolve(error === null)));
}

let allCalls = 0;

async function loops(seconds: number, record: boolean): Promise<{ calls: number; failures: number; latencies: number[] }> {
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let calls = 0;
  let failures = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const started = performance.now();
      const ok = await call();
      allCalls += 1;
      if (!record) continue;
      calls += 1;
      if (!ok) failures += 1;
      latencies.push((performance.now() - started) * 1000);
    }
  };
  await Promise.all(Array.from({ length: Number(values.concurrency) }, loop));
  return { calls, failures, latencies };
}

await loops(Number(values.warmup), false);
const started = performance.now();
const { calls, failures, latencies } = await loops(Number(values.seconds), true);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const percentile = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
process.stdout.write(`${JSON.stringify({ calls, allCalls, failures, seconds, p50Us: percentile(50), p99Us: percentile(99), p999Us: percentile(99.9) })}\n`);
client.close();
