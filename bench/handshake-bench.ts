/**
 * New mTLS handshakes per second per core on a sidecar's inbound port (the cost of a caller that
 * does not pool connections). Sidecar B and its app run on CPU 1, the handshake client (handshakes.ts)
 * on CPU 0. The sidecar's CPU per handshake comes from /proc, so "per core" = 1e6 / (µs/handshake);
 * the achieved rate is also shown, since the client side may be the limit. Once per run, full
 * handshakes and then TLS 1.3 session resumption.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_WORKLOAD, writeClientCertificate } from './mesh-config.js';
import { meshLayout, startSidecar } from './mesh-targets.js';
import { treeCpuMicros } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { Pinning } from './processes.js';
import { startUpstream } from './targets.js';
import type { TargetContext } from './targets.js';

export const HANDSHAKE_TARGET = 'mtls-handshakes';
const CONCURRENCY = 4;
const RUN_TIMEOUT_MS = 120_000;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

export interface HandshakeResult {
  readonly resumption: boolean;
  readonly handshakes: number;
  readonly failures: number;
  readonly resumed: number;
  /** Achieved rate with CONCURRENCY connections in flight. */
  readonly handshakesPerSecond: number;
  /** Sidecar CPU (utime + stime) per handshake. */
  readonly serverCpuUsPerHandshake: number | null;
  /** 1e6 / serverCpuUsPerHandshake: what one fully busy sidecar core could accept. */
  readonly handshakesPerSecondPerCore: number | null;
}

interface ClientReport {
  readonly handshakes: number;
  readonly failures: number;
  readonly seconds: number;
  readonly resumed: number;
}

async function runClient(pinning: Pinning, args: readonly string[], signal: AbortSignal): Promise<ClientReport> {
  const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, [join(BENCH_DIST, 'handshakes.js'), ...args]);
  const stdout = await runToCompletion(command, argv, RUN_TIMEOUT_MS, signal);
  try {
    return JSON.parse(stdout) as ClientReport;
  } catch {
    throw new Error(`handshake client printed no report:\n${stdout}`);
  }
}

export async function measureHandshakes(context: TargetContext, pinning: Pinning, count: number, signal: AbortSignal): Promise<HandshakeResult[]> {
  const upstream = await startUpstream(context);
  const { configPath, options } = await meshLayout(context, HANDSHAKE_TARGET, upstream.ports[0], false);
  const sidecar = await startSidecar(context, `${HANDSHAKE_TARGET}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU);
  try {
    const certificate = await writeClientCertificate(options.directory, options.ca);
    const common = ['--port', String(options.server.inbound), '--ca', certificate.caPath, '--cert', certificate.chainPath, '--key', certificate.keyPath];
    const results: HandshakeResult[] = [];
    for (const resumption of [false, true]) {
      const before = treeCpuMicros(sidecar.pid);
      const report = await runClient(pinning, [...common, '--count', String(count), '--concurrency', String(CONCURRENCY), ...(resumption ? ['--resume'] : [])], signal);
      const after = treeCpuMicros(sidecar.pid);
      const cpu = before === null || after === null || report.handshakes === 0 ? null : (after - before) / report.handshakes;
      results.push({
        resumption,
        handshakes: report.handshakes,
        failures: report.failures,
        resumed: report.resumed,
        handshakesPerSecond: report.handshakes / report.seconds,
        serverCpuUsPerHandshake: cpu,
        handshakesPerSecondPerCore: cpu === null || cpu === 0 ? null : 1_000_000 / cpu,
      });
    }
    return results;
  } finally {
    await context.processes.stop([sidecar, upstream.service]);
  }
}

export function handshakeLines(results: readonly HandshakeResult[]): string[] {
  return results.map((result) => {
    const cpu = result.serverCpuUsPerHandshake === null ? '-' : result.serverCpuUsPerHandshake.toFixed(0);
    const perCore = result.handshakesPerSecondPerCore === null ? '-' : result.handshakesPerSecondPerCore.toFixed(0);
    return (
      `${result.resumption ? 'TLS 1.3 mTLS, session resumption' : 'TLS 1.3 mTLS, full handshake    '}: ${result.handshakesPerSecond.toFixed(0)} handshakes/s achieved (${CONCURRENCY} in flight), ` +
      `sidecar CPU ${cpu} us/handshake = ~${perCore} handshakes/s per sidecar core; ${result.handshakes} ok, ${result.failures} failed, ${result.resumed} resumed`
    );
  });
}
