/**
 * What the benchmark measures. A target starts a fresh process set (upstream + the proxy under test)
 * and says where to send load; the driver measures it and calls stop() (or, when start() throws,
 * stops every process the set still holds). Adding a target is a few
 * lines in TARGETS: a name and a start() built from the helpers below (startUpstream,
 * startBenchScript, startMeshgate).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOT_HOST, HOT_PATH, writeIngressConfig } from './config.js';
import type { RouteTableShape } from './config.js';
import { LARGE_TABLE, LARGE_TABLE_TARGET, SMALL_TABLE, SMALL_TABLE_TARGET } from './scale.js';
import type { ServerCertificateFiles } from './config.js';
import { BOTH_CPUS, SERVICE_CPU } from './processes.js';
import type { ChildService, ProcessSet } from './processes.js';
import { freePort } from '../test/helpers/ports.js';

export interface TargetContext {
  readonly processes: ProcessSet;
  /** Scratch directory of this run (configs), removed at the end. */
  readonly workDirectory: string;
  readonly serverCertificate: ServerCertificateFiles;
}

export interface RunningTarget {
  /** Full URL the load generator requests (always 127.0.0.1). */
  readonly url: string;
  /** Host header to send; null = the URL's authority. */
  readonly host: string | null;
  /** The process tree whose CPU and memory are reported as the proxy's; null when there is no proxy. */
  readonly proxyPid: number | null;
  readonly upstreamPid: number;
  /** Extra request headers the load generator and the probe send (e.g. a bearer token). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Proxies reported one by one (both sidecars of a pair); proxyPid null ⇒ the proxy columns are their sum. */
  readonly components?: readonly ComponentProcess[];
  /** Connections each worker accepted so far (`--concurrency` targets; empty with one worker). */
  connectionsPerWorker?(): Promise<readonly number[]>;
  stop(): Promise<void>;
}

export interface ComponentProcess {
  readonly label: string;
  readonly pid: number;
  /** VmRSS once ready, before any request (null off Linux). */
  readonly idleRssBytes: number | null;
}

export interface BenchTarget {
  readonly name: string;
  readonly description: string;
  start(context: TargetContext): Promise<RunningTarget>;
}

/** dist/bench/targets.js → repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));
/** The build under test; `BENCH_MESHGATE_CLI` points at another build's `dist/gateway/cli/main.js`. */
export const MESHGATE_CLI = process.env.BENCH_MESHGATE_CLI ?? join(REPO_ROOT, 'dist/gateway/cli/main.js');
/**
 * Another build to compare with (`BENCH_BASELINE_CLI`, e.g. a worktree of the commit before a change):
 * adds `meshgate-http-baseline`, the same target on that build, judged side by side against `meshgate-http`.
 */
export const BASELINE_CLI = process.env.BENCH_BASELINE_CLI;
export const BASELINE_TARGET = 'meshgate-http-baseline';

const START_TIMEOUT_MS = 15_000;
const READY_POLL_MS = 50;

/** Starts dist/bench/<script>.js pinned to `cpu` (the service CPU unless said) and waits for its ready line. */
export async function startBenchScript(context: TargetContext, script: string, args: readonly string[], cpu: number = SERVICE_CPU): Promise<{ service: ChildService; ports: number[] }> {
  const service = context.processes.start(script, cpu, process.execPath, [join(BENCH_DIST, `${script}.js`), ...args]);
  return { service, ports: await service.readyPorts(START_TIMEOUT_MS) };
}

/** The upstream with two listeners (the canary's v1 and v2 endpoints; targets without a split use the first). */
export async function startUpstream(context: TargetContext): Promise<{ service: ChildService; ports: [number, number] }> {
  const { service, ports } = await startBenchScript(context, 'upstream', ['--listeners', '2']);
  return { service, ports: [ports[0] as number, ports[1] as number] };
}

async function pollReady(url: string, service: ChildService): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!service.isRunning()) throw new Error(`${service.name} exited before it was ready:\n${service.outputTail()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
  throw new Error(`${service.name} not ready after ${START_TIMEOUT_MS} ms (${url}):\n${service.outputTail()}`);
}

export interface MeshgateProcessOptions {
  /** CPU to pin to (default: the service CPU). */
  readonly cpu?: number | typeof BOTH_CPUS;
  /** Appended to `run` (e.g. `--workload ns/name --admin-address 127.0.0.1:port` for a sidecar). */
  readonly extraArgs?: readonly string[];
  /** The build's CLI (default MESHGATE_CLI). */
  readonly cli?: string;
  /** Node options before the script (e.g. `--cpu-prof --cpu-prof-dir=…`, which NODE_OPTIONS refuses). */
  readonly nodeArgs?: readonly string[];
}

/** `meshgate run -c <config> --mode <mode>` pinned to the service CPU; resolves once the admin /ready says 200. */
export async function startMeshgate(
  context: TargetContext,
  name: string,
  configPath: string,
  adminPort: number,
  mode: 'ingress' | 'sidecar',
  options: MeshgateProcessOptions = {},
): Promise<ChildService> {
  const cli = options.cli ?? MESHGATE_CLI;
  if (!existsSync(cli)) throw new Error(`${cli} not built (gateway/cli/main.ts missing?)`);
  // Several proxies run at once here: none takes the default status/metrics ports (the admin port serves metrics).
  const operatorPorts = knowsOperatorPorts(cli) ? ['--status-address=', '--metrics-address='] : [];
  const args = [...(options.nodeArgs ?? []), cli, 'run', '-c', configPath, '--mode', mode, ...operatorPorts, ...(options.extraArgs ?? [])];
  const service = context.processes.start(name, options.cpu ?? SERVICE_CPU, process.execPath, args);
  await pollReady(`http://127.0.0.1:${adminPort}/ready`, service);
  return service;
}

const operatorPortFlags = new Map<string, boolean>();

/** Builds before the status and metrics ports know no flags for them (and open no such ports). */
function knowsOperatorPorts(cli: string): boolean {
  let known = operatorPortFlags.get(cli);
  if (known === undefined) {
    known = execFileSync(process.execPath, [cli, 'run', '--help'], { encoding: 'utf8' }).includes('--status-address');
    operatorPortFlags.set(cli, known);
  }
  return known;
}

function stopper(context: TargetContext, services: readonly ChildService[]): () => Promise<void> {
  return () => context.processes.stop(services);
}

const direct: BenchTarget = {
  name: 'direct',
  description: 'wrk → upstream (no proxy)',
  async start(context) {
    const upstream = await startUpstream(context);
    return {
      url: `http://127.0.0.1:${upstream.ports[0]}${HOT_PATH}`,
      host: null,
      proxyPid: null,
      upstreamPid: upstream.service.pid,
      stop: stopper(context, [upstream.service]),
    };
  },
};

const bareFastify: BenchTarget = {
  name: 'bare-fastify',
  description: 'fastify + @fastify/http-proxy, defaults, logger off',
  async start(context) {
    const upstream = await startUpstream(context);
    const proxy = await startBenchScript(context, 'bare-proxy', ['--upstream', `http://127.0.0.1:${upstream.ports[0]}`]);
    return {
      url: `http://127.0.0.1:${proxy.ports[0]}${HOT_PATH}`,
      host: null,
      proxyPid: proxy.service.pid,
      upstreamPid: upstream.service.pid,
      stop: stopper(context, [proxy.service, upstream.service]),
    };
  },
};

export const NODE_FLOOR_TARGET = 'node-floor-https';
export const NODE_FLOOR_HTTP_TARGET = 'node-floor-http';

/** node:http(s) + undici and nothing else: the part of any Node.js proxy's cost that no meshgate code can remove. */
function nodeFloor(tls: boolean): BenchTarget {
  return {
    name: tls ? NODE_FLOOR_TARGET : NODE_FLOOR_HTTP_TARGET,
    description: `${tls ? 'node:https (TLS 1.3 keep-alive)' : 'node:http'} + undici Pool, no framework: what Node.js alone costs a${tls ? ' TLS' : 'n HTTP'} proxy`,
    async start(context) {
      const upstream = await startUpstream(context);
      const { certPath, keyPath } = context.serverCertificate;
      const certificate = tls ? ['--cert', certPath, '--key', keyPath] : [];
      const proxy = await startBenchScript(context, 'node-floor-proxy', ['--upstream', `http://127.0.0.1:${upstream.ports[0]}`, ...certificate]);
      return {
        url: `${tls ? 'https' : 'http'}://127.0.0.1:${proxy.ports[0]}${HOT_PATH}`,
        host: null,
        proxyPid: proxy.service.pid,
        upstreamPid: upstream.service.pid,
        stop: stopper(context, [proxy.service, upstream.service]),
      };
    },
  };
}

interface IngressVariant {
  readonly cli?: string;
  readonly table?: RouteTableShape;
  readonly tableName?: string;
}

function meshgateIngress(name: string, tls: boolean, { cli = MESHGATE_CLI, table, tableName = '106-rule' }: IngressVariant = {}): BenchTarget {
  return {
    name,
    description: `meshgate --mode ingress, ${tls ? 'HTTPS (TLS 1.3 keep-alive)' : 'HTTP'}, ${tableName} table, canary 90/10${cli === MESHGATE_CLI ? '' : ` (${cli})`}`,
    async start(context) {
      const upstream = await startUpstream(context);
      const [listenerPort, adminPort] = [await freePort(), await freePort()];
      const directory = join(context.workDirectory, name);
      await mkdir(directory, { recursive: true });
      const configPath = await writeIngressConfig({
        directory,
        upstreamPorts: upstream.ports,
        listenerPort,
        adminPort,
        tls: tls ? context.serverCertificate : null,
        ...(table === undefined ? {} : { table }),
      });
      const proxy = await startMeshgate(context, name, configPath, adminPort, 'ingress', { cli });
      return {
        url: `${tls ? 'https' : 'http'}://127.0.0.1:${listenerPort}${HOT_PATH}`,
        host: HOT_HOST,
        proxyPid: proxy.pid,
        upstreamPid: upstream.service.pid,
        stop: stopper(context, [proxy, upstream.service]),
      };
    },
  };
}

/** Connections each worker accepted, in worker order, from the merged exposition. */
async function connectionsPerWorker(adminPort: number): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text();
  const counts = [...text.matchAll(/^meshgate_worker_connections_total\{worker="(\d+)"\} (\d+)/gm)].sort((a, b) => Number(a[1]) - Number(b[1]));
  return counts.map((match) => Number(match[2]));
}

/**
 * meshgate-http's config and hot request with `--concurrency N`, the proxy allowed on both CPUs (wrk
 * keeps CPU 0, the upstream CPU 1): on this 2-vCPU machine the workers share their cores with the
 * load generator and the upstream, so 2 workers cannot double the throughput here; what the pair
 * shows is the CPU per request each worker count costs and how evenly connections spread.
 */
function meshgateWorkers(workers: number): BenchTarget {
  const name = `meshgate-workers-${workers}`;
  return {
    name,
    description: `meshgate-http with --concurrency ${workers}, proxy on CPUs ${BOTH_CPUS}`,
    async start(context) {
      const upstream = await startUpstream(context);
      const [listenerPort, adminPort] = [await freePort(), await freePort()];
      const directory = join(context.workDirectory, name);
      await mkdir(directory, { recursive: true });
      const configPath = await writeIngressConfig({ directory, upstreamPorts: upstream.ports, listenerPort, adminPort, tls: null });
      const proxy = await startMeshgate(context, name, configPath, adminPort, 'ingress', { cpu: BOTH_CPUS, extraArgs: ['--concurrency', String(workers)] });
      return {
        url: `http://127.0.0.1:${listenerPort}${HOT_PATH}`,
        host: HOT_HOST,
        proxyPid: proxy.pid,
        upstreamPid: upstream.service.pid,
        connectionsPerWorker: () => connectionsPerWorker(adminPort),
        async stop() {
          await context.processes.stop([proxy, upstream.service]);
        },
      };
    },
  };
}

/** In run order; `direct` and `bare-fastify` are the reference points of the ratios. */
export const TARGETS: readonly BenchTarget[] = [
  direct,
  bareFastify,
  nodeFloor(true),
  nodeFloor(false),
  meshgateIngress('meshgate-http', false),
  meshgateIngress('meshgate-https', true),
  ...(BASELINE_CLI === undefined ? [] : [meshgateIngress(BASELINE_TARGET, false, { cli: BASELINE_CLI })]),
  meshgateIngress(SMALL_TABLE_TARGET, false, { table: SMALL_TABLE, tableName: '10-rule' }),
  meshgateIngress(LARGE_TABLE_TARGET, false, { table: LARGE_TABLE, tableName: '10 000-rule (1 000 hosts)' }),
  meshgateWorkers(1),
  meshgateWorkers(2),
];
