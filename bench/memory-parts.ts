/**
 * What a proxy's resident memory is made of: one process (run with --expose-gc) loads the libraries
 * meshgate's request path uses one at a time, then meshgate's own modules, then starts the proxy
 * itself from the same command line as `meshgate run`, and after each step collects garbage and
 * prints one JSON line: VmRSS, RssAnon (heap, malloc) and RssFile (the node binary's pages), and
 * V8's live heap. Order matters: a library's shared dependencies count where they load first.
 *
 *   node --expose-gc dist/bench/memory-parts.js run -c mesh.yaml --mode sidecar --workload bench/server ...
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { getHeapSpaceStatistics } from 'node:v8';

const require = createRequire(import.meta.url);
const READY_POLL_MS = 50;
const READY_TIMEOUT_MS = 30_000;
const SETTLE_MS = 2_000;

function statusKilobytes(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return match === null ? 0 : Number(match[1]);
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  gc();
  gc();
}

function report(step: string): void {
  collect();
  const status = readFileSync('/proc/self/status', 'utf8');
  const newSpace = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  process.stdout.write(
    `${JSON.stringify({
      step,
      rssKb: statusKilobytes(status, 'VmRSS'),
      anonKb: statusKilobytes(status, 'RssAnon'),
      fileKb: statusKilobytes(status, 'RssFile'),
      heapUsedKb: Math.round(process.memoryUsage().heapUsed / 1024),
      newSpaceKb: Math.round((newSpace?.physical_space_size ?? 0) / 1024),
    })}\n`,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The files meshgate loads from each library (undici-core.ts, plugins/ratelimit/store.ts), not their indexes. */
const LIBRARIES: readonly (readonly [string, () => Promise<unknown>])[] = [
  ['fastify', () => import('fastify')],
  ['undici (Pool, connector)', async () => [require('undici/lib/dispatcher/pool.js'), require('undici/lib/core/connect.js')]],
  ['pino', () => import('pino')],
  ['prom-client', () => import('prom-client')],
  ['yaml', () => import('yaml')],
  ['@sinclair/typebox (+ value, compiler)', () => Promise.all([import('@sinclair/typebox'), import('@sinclair/typebox/value'), import('@sinclair/typebox/compiler')])],
  ['re2js', () => import('re2js')],
  ['@opentelemetry/api', () => import('@opentelemetry/api')],
  ['rate-limiter-flexible (memory limiter)', async () => require('rate-limiter-flexible/lib/RateLimiterMemory.js')],
];

async function waitReady(adminAddress: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://${adminAddress}/ready`);
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(READY_POLL_MS);
  }
  throw new Error(`not ready on ${adminAddress}`);
}

async function main(argv: readonly string[]): Promise<void> {
  const adminIndex = argv.indexOf('--admin-address');
  const adminAddress = adminIndex < 0 ? undefined : argv[adminIndex + 1];
  if (argv[0] !== 'run' || adminAddress === undefined) throw new Error('usage: memory-parts.js run -c <config> --mode <mode> --admin-address <host:port> [run options]');
  report('node');
  for (const [name, load] of LIBRARIES) {
    await load();
    report(name);
  }
  const { parse } = await import('../gateway/cli/args.js');
  const { findCommand } = await import('../gateway/cli/commands-spec.js');
  const found = findCommand(argv);
  if (found === undefined) throw new Error('no run command');
  // As main.ts does before it loads the command.
  const { holdYoungGeneration } = await import('../gateway/runtime/young-generation.js');
  holdYoungGeneration();
  const { runCommand } = await import('../gateway/cli/run.js');
  report("meshgate's modules");
  void runCommand(parse(found.rest, found.spec));
  await waitReady(adminAddress);
  await sleep(SETTLE_MS);
  report('the proxy running (config compiled, listeners, certificates)');
  process.kill(process.pid, 'SIGTERM');
}

await main(process.argv.slice(2));
