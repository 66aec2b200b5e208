/**
 * What a reload of the 10 000-rule config costs the requests in flight. A meshgate ingress serves the
 * large table while a few keep-alive clients send the hot request back to back (closed loop, low
 * rate: latency, not throughput, is measured). First a quiet window, then reloads one after another:
 * each appends a comment to the config (so the content hash changes and the load, compile and swap
 * run) and asks the admin API to reload. Requests whose lifetime overlaps an admin reload round trip
 * are compared with the quiet ones: p50 / p99 / max.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HOT_HOST, HOT_PATH, writeIngressConfig } from './config.js';
import { LARGE_TABLE } from './scale.js';
import { startMeshgate, startUpstream } from './targets.js';
import type { TargetContext } from './targets.js';
import { freePort } from '../test/helpers/ports.js';

const CLIENTS = 4;
const QUIET_MS = 4_000;
const RELOADS = 5;
/** Between reloads, so that each reload meets requests already in flight. */
const SETTLE_MS = 500;

export interface LatencySummary {
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface ReloadStall {
  readonly quiet: LatencySummary;
  readonly reloading: LatencySummary;
  /** Admin reload round trips (load + compile + swap as the operator sees it). */
  readonly reloadMs: readonly number[];
}

interface Sample {
  readonly start: number;
  readonly end: number;
}

function summary(samples: readonly Sample[]): LatencySummary {
  const sorted = samples.map((sample) => sample.end - sample.start).sort((a, b) => a - b);
  const at = (fraction: number): number => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
  return { requests: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1] ?? Number.NaN };
}

function get(port: number, path: string, agent: Agent, method = 'GET', host = HOT_HOST): Promise<string> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method, agent, headers: { host } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`${method} ${path}: ${response.statusCode ?? 0} ${body.slice(0, 200)}`))));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

export async function measureReloadStall(context: TargetContext): Promise<ReloadStall> {
  const directory = join(context.workDirectory, 'reload-10k');
  await mkdir(directory, { recursive: true });
  const upstream = await startUpstream(context);
  const [listenerPort, adminPort] = [await freePort(), await freePort()];
  const configPath = await writeIngressConfig({ directory, upstreamPorts: upstream.ports, listenerPort, adminPort, tls: null, table: LARGE_TABLE });
  await startMeshgate(context, 'meshgate-10k-reload', configPath, adminPort, 'ingress');
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const adminAgent = new Agent({ keepAlive: false });
  const samples: Sample[] = [];
  let running = true;
  try {
    const client = async (): Promise<void> => {
      while (running) {
        const start = performance.now();
        await get(listenerPort, HOT_PATH, agent);
        samples.push({ start, end: performance.now() });
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    const quietEnd = performance.now();
    const windows: Sample[] = [];
    for (let reload = 0; reload < RELOADS; reload++) {
      const start = performance.now();
      await appendFile(configPath, `# reload ${reload}\n`);
      // The file watch may have reloaded the change first ("unchanged"): the admin reload compiles all the same.
      const outcome = JSON.parse(await get(adminPort, '/reload', adminAgent, 'POST', `127.0.0.1:${adminPort}`)) as { ok?: boolean };
      if (outcome.ok !== true) throw new Error(`reload ${reload} failed: ${JSON.stringify(outcome)}`);
      windows.push({ start, end: performance.now() });
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    }
    running = false;
    await Promise.all(clients);
    const overlaps = (sample: Sample): boolean => windows.some((window) => sample.start <= window.end && sample.end >= window.start);
    return {
      quiet: summary(samples.filter((sample) => sample.end <= quietEnd)),
      reloading: summary(samples.filter(overlaps)),
      reloadMs: windows.map((window) => window.end - window.start),
    };
  } finally {
    running = false;
    agent.destroy();
    adminAgent.destroy();
    await context.processes.stopAll();
  }
}
