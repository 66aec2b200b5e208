/**
 * TCP through a sidecar pair (docs/tcp.md) side by side with the same traffic sent direct: a redis
 * `PING`/`+PONG` request-response over persistent connections, one at a time (the added latency and
 * each sidecar's CPU per request) and 50 at once (throughput), and new connections (connect, one
 * PING, close: the rate and the CPU per connection, mTLS handshake included). Redis and sidecar B
 * share CPU 1 (the server's machine), the load generator (tcp-load.ts) and sidecar A CPU 0, as in the
 * HTTP mesh targets (bench/README.md#method). Not a wrk target: run once after the rounds when selected.
 */
import { writeFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../test/helpers/ports.js';
import { median } from './median.js';
import { MESH_NAMESPACE, MESH_TRUST_DOMAIN, meshCa } from './mesh-config.js';
import { startSidecar } from './mesh-targets.js';
import { treeCpuMicros } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { ChildService, Pinning } from './processes.js';
import type { TargetContext } from './targets.js';

export const TCP_TARGET = 'tcp-sidecar-pair';
const REDIS_SERVER = 'redis-server';
const REDIS_HOST = `redis.${MESH_NAMESPACE}.svc.cluster.local`;
const START_TIMEOUT_MS = 10_000;
const RUN_TIMEOUT_MS = 120_000;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

interface LoadReport {
  readonly completed: number;
  readonly failures: number;
  readonly seconds: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
}

export interface TcpCase {
  /** `requests, 1 connection`, `requests, 50 connections`, `new connections, 4 in flight`. */
  readonly name: string;
  readonly path: 'direct' | 'sidecar pair';
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly failures: number;
  /** Sidecar CPU (utime + stime) per request or connection; null for direct. */
  readonly clientSidecarCpuUs: number | null;
  readonly serverSidecarCpuUs: number | null;
}

const CASES = [
  { name: 'requests, 1 connection', mode: 'requests', connections: 1 },
  { name: 'requests, 50 connections', mode: 'requests', connections: 50 },
  { name: 'new connections, 4 in flight', mode: 'connections', connections: 4 },
] as const;

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => {
      resolve(chunk.toString().startsWith('+PONG'));
      socket.destroy();
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

async function untilPing(port: number, service: ChildService): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!service.isRunning()) throw new Error(`${service.name} exited:\n${service.outputTail()}`);
    if (await answersPing(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no +PONG on port ${port} after ${START_TIMEOUT_MS} ms:\n${service.outputTail()}`);
}

interface TcpMeshPorts {
  readonly egress: number;
  readonly inbound: number;
  readonly clientAdmin: number;
  readonly serverAdmin: number;
}

async function writeTcpMesh(context: TargetContext, ports: TcpMeshPorts, redisPort: number): Promise<string> {
  const directory = join(context.workDirectory, TCP_TARGET);
  await mkdir(directory, { recursive: true });
  const ca = await meshCa(context.workDirectory);
  const documents = [
    {
      apiVersion: 'meshgate.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh', namespace: 'istio-system' },
      spec: { trustDomain: MESH_TRUST_DOMAIN, adminAddress: `127.0.0.1:${ports.serverAdmin}`, accessLog: { enabled: false }, certificates: { caCert: ca.certPath, caKey: ca.keyPath } },
    },
    { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: MESH_NAMESPACE }, spec: { mtls: { mode: 'STRICT' } } },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'redis', namespace: MESH_NAMESPACE },
      spec: { hosts: [REDIS_HOST], location: 'MESH_INTERNAL', ports: [{ number: ports.egress, name: 'tcp-redis', protocol: 'TCP' }], resolution: 'STATIC', workloadSelector: { labels: { app: 'redis' } } },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'server', namespace: MESH_NAMESPACE },
      spec: { address: '127.0.0.1', ports: { 'tcp-redis': ports.inbound }, labels: { app: 'redis' }, serviceAccount: 'redis' },
    },
    { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'client', namespace: MESH_NAMESPACE }, spec: { address: '127.0.0.1', labels: { app: 'client' }, serviceAccount: 'client' } },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'server', namespace: MESH_NAMESPACE },
      spec: { workloadSelector: { labels: { app: 'redis' } }, ingress: [{ port: { number: ports.inbound, protocol: 'TCP', name: 'tcp-redis' }, bind: '127.0.0.1', defaultEndpoint: `127.0.0.1:${redisPort}` }] },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'client', namespace: MESH_NAMESPACE },
      spec: { workloadSelector: { labels: { app: 'client' } }, egress: [{ port: { number: ports.egress, protocol: 'TCP', name: 'tcp-redis' }, bind: '127.0.0.1', hosts: ['*/*'] }] },
    },
  ];
  const path = join(directory, 'mesh.yaml');
  await writeFile(path, documents.map((document) => stringify(document)).join('---\n'));
  return path;
}

async function runLoad(pinning: Pinning, port: number, mode: string, connections: number, seconds: number, signal: AbortSignal): Promise<LoadReport> {
  const args = [join(BENCH_DIST, 'tcp-load.js'), '--port', String(port), '--mode', mode, '--connections', String(connections), '--seconds', String(seconds)];
  const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, args);
  const stdout = await runToCompletion(command, argv, RUN_TIMEOUT_MS, signal);
  return JSON.parse(stdout) as LoadReport;
}

function cpuPer(before: number | null, after: number | null, completed: number): number | null {
  return before === null || after === null || completed === 0 ? null : (after - before) / completed;
}

/** `rounds` interleaved rounds of every case, direct then through the pair; each figure is the median over the rounds. */
export async function measureTcp(context: TargetContext, pinning: Pinning, seconds: number, rounds: number, signal: AbortSignal): Promise<TcpCase[]> {
  const redisPort = await freePort();
  const redis = context.processes.start(REDIS_SERVER, SERVICE_CPU, REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const ports: TcpMeshPorts = { egress: await freePort(), inbound: await freePort(), clientAdmin: await freePort(), serverAdmin: await freePort() };
  const services: ChildService[] = [redis];
  try {
    await untilPing(redisPort, redis);
    const configPath = await writeTcpMesh(context, ports, redisPort);
    const server = await startSidecar(context, `${TCP_TARGET}-b`, configPath, `${MESH_NAMESPACE}/server`, ports.serverAdmin, SERVICE_CPU);
    services.push(server);
    const client = await startSidecar(context, `${TCP_TARGET}-a`, configPath, `${MESH_NAMESPACE}/client`, ports.clientAdmin, LOAD_GENERATOR_CPU);
    services.push(client);
    await untilPing(ports.egress, client);
    const samples = new Map<string, TcpCase[]>();
    for (let round = 0; round < rounds; round++) {
      for (const testCase of CASES) {
        for (const path of ['direct', 'sidecar pair'] as const) {
          const port = path === 'direct' ? redisPort : ports.egress;
          const before = [treeCpuMicros(client.pid), treeCpuMicros(server.pid)];
          const report = await runLoad(pinning, port, testCase.mode, testCase.connections, seconds, signal);
          const after = [treeCpuMicros(client.pid), treeCpuMicros(server.pid)];
          const key = `${testCase.name}|${path}`;
          samples.set(key, [
            ...(samples.get(key) ?? []),
            {
              name: testCase.name,
              path,
              perSecond: report.completed / report.seconds,
              p50Us: report.p50Us,
              p99Us: report.p99Us,
              p999Us: report.p999Us,
              failures: report.failures,
              clientSidecarCpuUs: path === 'direct' ? null : cpuPer(before[0] ?? null, after[0] ?? null, report.completed),
              serverSidecarCpuUs: path === 'direct' ? null : cpuPer(before[1] ?? null, after[1] ?? null, report.completed),
            },
          ]);
        }
      }
    }
    return [...samples.values()].map((cells) => {
      const first = cells[0] as TcpCase;
      const middle = (pick: (cell: TcpCase) => number | null): number | null => {
        const values = cells.map(pick).filter((value): value is number => value !== null);
        return values.length === 0 ? null : median(values);
      };
      return {
        name: first.name,
        path: first.path,
        perSecond: middle((cell) => cell.perSecond) ?? 0,
        p50Us: middle((cell) => cell.p50Us) ?? 0,
        p99Us: middle((cell) => cell.p99Us) ?? 0,
        p999Us: middle((cell) => cell.p999Us) ?? 0,
        failures: cells.reduce((sum, cell) => sum + cell.failures, 0),
        clientSidecarCpuUs: middle((cell) => cell.clientSidecarCpuUs),
        serverSidecarCpuUs: middle((cell) => cell.serverSidecarCpuUs),
      };
    });
  } finally {
    await context.processes.stop(services);
  }
}

export function tcpLines(cases: readonly TcpCase[]): string[] {
  const lines: string[] = [];
  for (const { name } of CASES) {
    const direct = cases.find((c) => c.name === name && c.path === 'direct');
    const pair = cases.find((c) => c.name === name && c.path === 'sidecar pair');
    if (direct === undefined || pair === undefined) continue;
    const unit = name.startsWith('new') ? 'conn' : 'req';
    const cpu = (value: number | null): string => (value === null ? '-' : value.toFixed(0));
    lines.push(
      `${name.padEnd(30)}: direct ${direct.perSecond.toFixed(0)} ${unit}/s p50 ${direct.p50Us.toFixed(0)} us p99 ${direct.p99Us.toFixed(0)} us p99.9 ${direct.p999Us.toFixed(0)} us | ` +
        `sidecar pair ${pair.perSecond.toFixed(0)} ${unit}/s p50 ${pair.p50Us.toFixed(0)} us p99 ${pair.p99Us.toFixed(0)} us p99.9 ${pair.p999Us.toFixed(0)} us | ` +
        `added p50 ${(pair.p50Us - direct.p50Us).toFixed(0)} us; sidecar CPU A ${cpu(pair.clientSidecarCpuUs)} + B ${cpu(pair.serverSidecarCpuUs)} us/${unit}` +
        (direct.failures + pair.failures > 0 ? `; ${direct.failures + pair.failures} failed` : ''),
    );
  }
  return lines;
}
