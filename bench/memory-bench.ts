/**
 * The proxies' resident memory (issue 23 item 4): a sidecar's and the ingress's VmRSS idle, then
 * after a warm-up at a fixed 1 000 req/s, on the mesh suite's config (mesh-config.ts). Not a wrk
 * target: wrk cannot hold a rate, so the warm-up is autocannon's `--overallRate` on the load CPU.
 *
 * Each repetition is a fresh process set: the upstream and sidecar B (CPU 1), sidecar A and the
 * ingress (CPU 0). Idle = VmRSS once every proxy has been ready for IDLE_SETTLE_MS (start-up's last
 * timers and collections done, the young generation's idle check included), before any request. Then
 * the sidecar pair (A's egress → mTLS → B) is warmed up and A and B are read, then the ingress
 * (HTTPS → mTLS → B) and the ingress is read;
 * "after" = VmRSS AFTER_SETTLE_MS after the load stopped, "peak" = VmHWM, "rested" = VmRSS once every
 * proxy has had no request for REST_MS (long enough for an idle proxy to give back its young
 * generation: gateway/runtime/young-generation.ts).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOT_HOST, HOT_PATH } from './config.js';
import { median } from './median.js';
import { CLIENT_WORKLOAD, SERVER_WORKLOAD, SERVICE_HOST } from './mesh-config.js';
import { INGRESS_LABEL, SIDECAR_A_LABEL, SIDECAR_B_LABEL, meshLayout, startSidecar } from './mesh-targets.js';
import { treePeakRssBytes, treeRssBytes } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { Pinning } from './processes.js';
import { startMeshgate, startUpstream } from './targets.js';
import type { TargetContext } from './targets.js';

export const MEMORY_TARGET = 'proxy-memory';
export const WARMUP_REQUESTS_PER_SECOND = 1_000;
const WARMUP_CONNECTIONS = 10;
/** Two of the young generation's idle checks (5 s apart) after ready. */
const IDLE_SETTLE_MS = 12_000;
const AFTER_SETTLE_MS = 2_000;
/** Six of the young generation's idle checks (5 s apart): on Node.js 24 the RSS follows the shrunk new space some seconds later. */
const REST_MS = 30_000;
const RUN_SLACK_MS = 30_000;
const MB = 1_048_576;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

export interface MemoryReading {
  readonly idleRssBytes: number | null;
  readonly afterRssBytes: number | null;
  readonly peakRssBytes: number | null;
  /** VmRSS once the proxy has idled REST_MS after the warm-ups. */
  readonly restedRssBytes: number | null;
  /** Requests per second the warm-up reached (the rate asked for is WARMUP_REQUESTS_PER_SECOND). */
  readonly warmupRequestsPerSecond: number;
  /** Non-2xx answers and socket errors during the warm-up (a saturated machine can turn requests into 503s). */
  readonly warmupFailures: number;
}

interface Warmup {
  readonly requestsPerSecond: number;
  readonly failures: number;
}

/** Per repetition, by proxy label. */
export type MemoryResults = readonly Readonly<Record<string, MemoryReading>>[];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function paced(pinning: Pinning, url: string, host: string, seconds: number, signal: AbortSignal): Promise<Warmup> {
  const cli = createRequire(import.meta.url).resolve('autocannon');
  const args = [cli, '--json', '-c', String(WARMUP_CONNECTIONS), '-R', String(WARMUP_REQUESTS_PER_SECOND), '-d', String(seconds), '-H', `host=${host}`, url];
  const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, args);
  // The ingress's certificate is the run's throwaway one.
  const report = JSON.parse(await runToCompletion(command, argv, seconds * 1_000 + RUN_SLACK_MS, signal, { NODE_TLS_REJECT_UNAUTHORIZED: '0' })) as { requests?: { average?: number }; non2xx?: number; errors?: number; timeouts?: number };
  return { requestsPerSecond: report.requests?.average ?? 0, failures: (report.non2xx ?? 0) + (report.errors ?? 0) + (report.timeouts ?? 0) };
}

export async function measureMemory(context: TargetContext, pinning: Pinning, repetitions: number, warmupSeconds: number, signal: AbortSignal): Promise<MemoryResults> {
  const results: Record<string, MemoryReading>[] = [];
  for (let repetition = 1; repetition <= repetitions; repetition += 1) {
    const upstream = await startUpstream(context);
    const { configPath, options } = await meshLayout(context, `${MEMORY_TARGET}-${repetition}`, upstream.ports[0], true);
    const ingressOptions = options.ingress;
    if (ingressOptions === null) throw new Error('ingress layout missing');
    const server = await startSidecar(context, `${MEMORY_TARGET}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU);
    const client = await startSidecar(context, `${MEMORY_TARGET}-a`, configPath, CLIENT_WORKLOAD, options.client.admin, LOAD_GENERATOR_CPU);
    const ingress = await startMeshgate(context, `${MEMORY_TARGET}-ingress`, configPath, ingressOptions.adminPort, 'ingress', { cpu: LOAD_GENERATOR_CPU });
    try {
      await sleep(IDLE_SETTLE_MS);
      const idle = new Map([server, client, ingress].map((service) => [service.pid, treeRssBytes(service.pid)]));
      const read = (pid: number, warmup: Warmup): Omit<MemoryReading, 'restedRssBytes'> => ({
        idleRssBytes: idle.get(pid) ?? null,
        afterRssBytes: treeRssBytes(pid),
        peakRssBytes: treePeakRssBytes(pid),
        warmupRequestsPerSecond: warmup.requestsPerSecond,
        warmupFailures: warmup.failures,
      });
      const pairWarmup = await paced(pinning, `http://127.0.0.1:${options.client.outbound}${HOT_PATH}`, SERVICE_HOST, warmupSeconds, signal);
      await sleep(AFTER_SETTLE_MS);
      const [clientAfter, serverAfter] = [read(client.pid, pairWarmup), read(server.pid, pairWarmup)];
      const ingressWarmup = await paced(pinning, `https://127.0.0.1:${ingressOptions.listenerPort}${HOT_PATH}`, HOT_HOST, warmupSeconds, signal);
      await sleep(AFTER_SETTLE_MS);
      const ingressAfter = read(ingress.pid, ingressWarmup);
      await sleep(REST_MS);
      const rested = (pid: number, reading: Omit<MemoryReading, 'restedRssBytes'>): MemoryReading => ({ ...reading, restedRssBytes: treeRssBytes(pid) });
      const readings: Record<string, MemoryReading> = {
        [SIDECAR_A_LABEL]: rested(client.pid, clientAfter),
        [SIDECAR_B_LABEL]: rested(server.pid, serverAfter),
        [INGRESS_LABEL]: rested(ingress.pid, ingressAfter),
      };
      results.push(readings);
      process.stdout.write(`  repetition ${repetition}: ${Object.entries(readings).map(([label, reading]) => `${label} ${mb(reading.idleRssBytes)} → ${mb(reading.afterRssBytes)} → rested ${mb(reading.restedRssBytes)} MB`).join('; ')}\n`);
    } finally {
      await context.processes.stop([ingress, client, server, upstream.service]);
    }
  }
  return results;
}

const mb = (bytes: number | null): string => (bytes === null ? '-' : (bytes / MB).toFixed(1));

export interface MemorySpread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** Median, min and max in MB over the repetitions of one proxy's reading; null when /proc gave nothing. */
export function memorySpread(results: MemoryResults, label: string, field: 'idleRssBytes' | 'afterRssBytes' | 'peakRssBytes' | 'restedRssBytes'): MemorySpread | null {
  const values = results.flatMap((readings) => {
    const value = readings[label]?.[field] ?? null;
    return value === null ? [] : [value / MB];
  });
  return values.length === 0 ? null : { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function memoryLines(results: MemoryResults): string[] {
  const labels = [...new Set(results.flatMap((readings) => Object.keys(readings)))];
  const cell = (spread: MemorySpread | null): string => (spread === null ? '-' : `${spread.median.toFixed(1)} (${spread.min.toFixed(1)}-${spread.max.toFixed(1)})`);
  return labels.map((label) => {
    const readings = results.flatMap((byLabel) => (byLabel[label] === undefined ? [] : [byLabel[label]]));
    const rate = readings.length === 0 ? '-' : median(readings.map((reading) => reading.warmupRequestsPerSecond)).toFixed(0);
    const failures = readings.reduce((sum, reading) => sum + reading.warmupFailures, 0);
    return (
      `${label.padEnd(32)}: idle ${cell(memorySpread(results, label, 'idleRssBytes'))} MB, after ${rate} req/s ` +
      `${cell(memorySpread(results, label, 'afterRssBytes'))} MB, rested ${cell(memorySpread(results, label, 'restedRssBytes'))} MB, ` +
      `peak ${cell(memorySpread(results, label, 'peakRssBytes'))} MB` +
      (failures > 0 ? `; ${failures} warm-up requests failed` : '')
    );
  });
}

export interface MemoryPart {
  readonly step: string;
  readonly rssKb: number;
  readonly anonKb: number;
  readonly fileKb: number;
  readonly heapUsedKb: number;
  readonly newSpaceKb: number;
}

/** memory-parts.ts as sidecar B of a fresh mesh layout (CPU 1): what each part of a running sidecar costs. */
export async function measureMemoryParts(context: TargetContext, pinning: Pinning, signal: AbortSignal): Promise<MemoryPart[]> {
  const upstream = await startUpstream(context);
  try {
    const { configPath, options } = await meshLayout(context, `${MEMORY_TARGET}-parts`, upstream.ports[0], false);
    // A young generation held at its minimum, so that each step shows what it keeps, not when V8 grew it.
    const args = ['--expose-gc', '--max-semi-space-size=1', join(BENCH_DIST, 'memory-parts.js'), 'run', '-c', configPath, '--mode', 'sidecar', '--workload', SERVER_WORKLOAD];
    args.push('--admin-address', `127.0.0.1:${options.server.admin}`, '--status-address=', '--metrics-address=', '--log-level', 'warn');
    const [command, argv] = pinnedCommand(pinning, SERVICE_CPU, process.execPath, args);
    const output = await runToCompletion(command, argv, RUN_SLACK_MS * 2, signal);
    return output.split('\n').flatMap((line) => (line.startsWith('{"step"') ? [JSON.parse(line) as MemoryPart] : []));
  } finally {
    await context.processes.stop([upstream.service]);
  }
}

/** One row per step: what it added to VmRSS (RssAnon, RssFile) and to V8's live heap, and the running total. */
export function memoryPartLines(parts: readonly MemoryPart[]): string[] {
  const rows = parts.map((part, index) => {
    const before = index === 0 ? null : parts[index - 1];
    const delta = (field: 'rssKb' | 'anonKb' | 'fileKb' | 'heapUsedKb'): string => {
      if (before === null || before === undefined) return (part[field] / 1024).toFixed(1);
      const added = (part[field] - before[field]) / 1024;
      return `${added >= 0 ? '+' : ''}${added.toFixed(1)}`;
    };
    return `| ${part.step} | ${delta('rssKb')} | ${delta('anonKb')} | ${delta('fileKb')} | ${delta('heapUsedKb')} | ${(part.rssKb / 1024).toFixed(1)} | ${(part.newSpaceKb / 1024).toFixed(1)} |`;
  });
  return ['| step | RSS MB | anon MB | file MB | live heap MB | total RSS MB | young gen MB |', '|---|---|---|---|---|---|---|', ...rows];
}
