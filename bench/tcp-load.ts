/**
 * The TCP load generator of the `tcp-sidecar-pair` measurement (tcp-bench.ts), run pinned on CPU 0.
 * `--mode requests`: `--connections` persistent connections, each sending a redis `PING` and waiting for
 * its `+PONG` before the next, for `--seconds`. `--mode connections`: `--connections` loops, each opening
 * a fresh connection, one PING/PONG, and a close (waited for), for `--seconds`. Prints one JSON report.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const PING = Buffer.from('PING\r\n');
const PONG_LENGTH = '+PONG\r\n'.length;

interface Report {
  readonly completed: number;
  readonly failures: number;
  readonly seconds: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends PING and resolves when the whole `+PONG` arrived. */
function ping(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received >= PONG_LENGTH) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve();
      }
    };
    const onClose = (): void => reject(new Error('connection closed before +PONG'));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(PING);
  });
}

async function requestLoop(port: number, until: number, latencies: number[]): Promise<number> {
  const socket = await connect(port);
  let failures = 0;
  try {
    while (performance.now() < until) {
      const start = performance.now();
      await ping(socket);
      latencies.push((performance.now() - start) * 1000);
    }
  } catch {
    failures += 1;
  }
  socket.destroy();
  return failures;
}

async function connectionLoop(port: number, until: number, latencies: number[]): Promise<number> {
  let failures = 0;
  while (performance.now() < until) {
    const start = performance.now();
    try {
      const socket = await connect(port);
      await ping(socket);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.end();
      await closed;
      latencies.push((performance.now() - start) * 1000);
    } catch {
      failures += 1;
    }
  }
  return failures;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, connections: { type: 'string', default: '1' }, seconds: { type: 'string', default: '3' }, mode: { type: 'string', default: 'requests' } },
  });
  const port = Number(values.port);
  const connections = Number(values.connections);
  const seconds = Number(values.seconds);
  const latencies: number[] = [];
  const started = performance.now();
  const until = started + seconds * 1000;
  const loop = values.mode === 'connections' ? connectionLoop : requestLoop;
  const failures = (await Promise.all(Array.from({ length: connections }, () => loop(port, until, latencies)))).reduce((a, b) => a + b, 0);
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const report: Report = { completed: latencies.length, failures, seconds: elapsed, p50Us: percentile(latencies, 0.5), p99Us: percentile(latencies, 0.99), p999Us: percentile(latencies, 0.999) };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
