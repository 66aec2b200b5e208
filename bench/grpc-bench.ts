/**
 * gRPC unary calls side by side (docs/grpc.md): grpc-js client → grpc-js server directly over TLS, and
 * the same client → meshgate's ingress (TLS, HTTP/2 by ALPN) → the same server over h2c. Client on
 * CPU 0; server and proxy on CPU 1, as the HTTP targets. Reports each path's calls/s and latency, the
 * latency the proxy adds, and the proxy's CPU per call (utime + stime from /proc over the client's run,
 * after a warm-up of the proxy).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/ports.js';
import { HOT_HOST } from './config.js';
import { treeCpuMicros } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { Pinning } from './processes.js';
import { startBenchScript, startMeshgate } from './targets.js';
import type { TargetContext } from './targets.js';

export const GRPC_TARGET = 'grpc-unary';
const CONCURRENCIES = [1, 16] as const;
/** In flight during the warm-up that precedes the measured runs on a fresh meshgate process. */
const WARMUP_CONCURRENCY = 16;
const RUN_TIMEOUT_MS = 120_000;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

interface ClientReport {
  readonly calls: number;
  readonly allCalls: number;
  readonly failures: number;
  readonly seconds: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
}

export interface GrpcResult {
  readonly concurrency: number;
  readonly direct: ClientReport;
  readonly proxied: ClientReport;
  /** meshgate CPU per call (µs), warm-up calls included in both CPU and count. */
  readonly proxyCpuUsPerCall: number | null;
}

function meshgateConfig(adminPort: number, listenPort: number, upstreamPort: number, context: TargetContext): string {
  const { certPath, keyPath } = context.serverCertificate;
  return `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  adminAddress: 127.0.0.1:${adminPort}
  accessLog: {enabled: false}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: grpc-bench, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: ${listenPort}, name: https, protocol: HTTPS}
      hosts: ["${HOT_HOST}"]
      tls: {mode: SIMPLE, serverCertificate: ${certPath}, privateKey: ${keyPath}}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: grpc-items}
spec:
  hosts: [grpc-items.bench.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - {number: 50051, name: grpc, protocol: GRPC}
  endpoints:
    - address: 127.0.0.1
      ports: {grpc: ${upstreamPort}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: grpc-items}
spec:
  hosts: ["${HOT_HOST}"]
  gateways: [istio-system/grpc-bench]
  http:
    - route:
        - destination: {host: grpc-items.bench.local, port: {number: 50051}}
`;
}

async function runClient(pinning: Pinning, context: TargetContext, port: number, concurrency: number, seconds: number, signal: AbortSignal): Promise<ClientReport> {
  const args = [join(BENCH_DIST, 'grpc-client.js'), '--port', String(port), '--ca', context.serverCertificate.certPath, '--servername', HOT_HOST, '--seconds', String(seconds), '--concurrency', String(concurrency)];
  const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, args);
  const stdout = await runToCompletion(command, argv, RUN_TIMEOUT_MS, signal);
  try {
    return JSON.parse(stdout) as ClientReport;
  } catch {
    throw new Error(`gRPC client printed no report:\n${stdout}`);
  }
}

/**
 * `warmupSeconds` of calls through meshgate before anything is measured, as the HTTP targets get: the
 * first measured run (1 in flight) otherwise carried the fresh process's JIT compilation and its first
 * connections, which at ~100 calls/s on a busy machine made it read several times its steady CPU per call.
 */
export async function measureGrpcUnary(context: TargetContext, pinning: Pinning, seconds: number, warmupSeconds: number, signal: AbortSignal): Promise<GrpcResult[]> {
  const { certPath, keyPath } = context.serverCertificate;
  const server = await startBenchScript(context, 'grpc-server', ['--cert', certPath, '--key', keyPath]);
  const [tlsPort = 0, plainPort = 0] = server.ports;
  const adminPort = await freePort();
  const listenPort = await freePort();
  const configPath = join(context.workDirectory, 'meshgate-grpc.yaml');
  await writeFile(configPath, meshgateConfig(adminPort, listenPort, plainPort, context));
  const proxy = await startMeshgate(context, 'meshgate-grpc', configPath, adminPort, 'ingress');
  try {
    await runClient(pinning, context, listenPort, WARMUP_CONCURRENCY, warmupSeconds, signal);
    const results: GrpcResult[] = [];
    for (const concurrency of CONCURRENCIES) {
      const direct = await runClient(pinning, context, tlsPort, concurrency, seconds, signal);
      const before = treeCpuMicros(proxy.pid);
      const proxied = await runClient(pinning, context, listenPort, concurrency, seconds, signal);
      const after = treeCpuMicros(proxy.pid);
      const proxyCpuUsPerCall = before === null || after === null || proxied.allCalls === 0 ? null : (after - before) / proxied.allCalls;
      results.push({ concurrency, direct, proxied, proxyCpuUsPerCall });
    }
    return results;
  } finally {
    await context.processes.stop([proxy, server.service]);
  }
}

export function grpcLines(results: readonly GrpcResult[]): string[] {
  const ms = (us: number): string => (us / 1000).toFixed(2);
  return results.map(({ concurrency, direct, proxied, proxyCpuUsPerCall }) => {
    const cpu = proxyCpuUsPerCall === null ? '-' : proxyCpuUsPerCall.toFixed(0);
    return (
      `gRPC unary, ${String(concurrency).padStart(2)} in flight: direct ${(direct.calls / direct.seconds).toFixed(0)} calls/s p50 ${ms(direct.p50Us)} ms p99 ${ms(direct.p99Us)} ms p99.9 ${ms(direct.p999Us)} ms | ` +
      `via meshgate ${(proxied.calls / proxied.seconds).toFixed(0)} calls/s p50 ${ms(proxied.p50Us)} ms p99 ${ms(proxied.p99Us)} ms p99.9 ${ms(proxied.p999Us)} ms | ` +
      `added p50 ${ms(proxied.p50Us - direct.p50Us)} ms, meshgate CPU ${cpu} us/call; failures ${direct.failures + proxied.failures}`
    );
  });
}
