/**
 * New mTLS handshakes per second per core on a sidecar's inbound port (the cost of a caller that
 * does not pool connections), side by side with a bare node:https server holding the same kind of
 * certificate (tls-floor.ts: what node and its OpenSSL cost, with no meshgate code). Sidecar B, its app
 * and the bare server run on CPU 1, the handshake client (handshakes.ts) on CPU 0. Each server's CPU
 * per handshake comes from /proc, so "per core" = 1e6 / (µs/handshake); the achieved rate is also
 * shown, since the client side may be the limit. Every repetition runs four cases (six with a baseline), full handshakes and
 * TLS 1.3 session resumption on each server, in an order that alternates between repetitions, so a
 * shared machine's drift falls on all of them alike. With BENCH_BASELINE_CLI, a sidecar of that build
 * runs beside (CPU 1 too) as a third server, and the sidecar's CPU is also given as the median of its
 * per-repetition ratios to the baseline's: how to judge a change to the connection path on a busy machine.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { median } from './median.js';
import { SERVER_WORKLOAD, writeWorkloadCertificate } from './mesh-config.js';
import { meshLayout, startSidecar } from './mesh-targets.js';
import { treeCpuMicros } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { ChildService, Pinning } from './processes.js';
import { BASELINE_CLI, startBenchScript, startUpstream } from './targets.js';
import type { TargetContext } from './targets.js';

export const HANDSHAKE_TARGET = 'mtls-handshakes';
const CONCURRENCY = 4;
const RUN_TIMEOUT_MS = 300_000;
const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));
/** The bar: new mTLS connections per second one sidecar core accepts. */
export const HANDSHAKES_PER_CORE_BAR = 1_000;

export type HandshakeServer = 'meshgate sidecar' | 'node:https (no meshgate)' | 'sidecar, BENCH_BASELINE_CLI';

/** One run of `count` handshakes against one server. */
export interface HandshakeRun {
  readonly handshakes: number;
  readonly failures: number;
  readonly resumed: number;
  /** Achieved rate with CONCURRENCY connections in flight. */
  readonly handshakesPerSecond: number;
  /** Server CPU (utime + stime) per handshake. */
  readonly serverCpuUsPerHandshake: number | null;
}

export interface HandshakeCase {
  readonly server: HandshakeServer;
  readonly resumption: boolean;
  readonly runs: readonly HandshakeRun[];
}

export interface HandshakeResult {
  readonly cases: readonly HandshakeCase[];
  /** 1-minute load average before the first and after the last run. */
  readonly loadAverage: { readonly before: number; readonly after: number };
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

export async function measureHandshakes(context: TargetContext, pinning: Pinning, count: number, repetitions: number, signal: AbortSignal): Promise<HandshakeResult> {
  const upstream = await startUpstream(context);
  const { configPath, options } = await meshLayout(context, HANDSHAKE_TARGET, upstream.ports[0], false);
  const sidecar = await startSidecar(context, `${HANDSHAKE_TARGET}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU);
  const baseline = BASELINE_CLI === undefined ? null : await startBaselineSidecar(context, upstream.ports[0], BASELINE_CLI);
  const floorCertificate = await writeWorkloadCertificate(options.directory, options.ca, 'bench-app');
  const floor = await startBenchScript(context, 'tls-floor', ['--cert', floorCertificate.chainPath, '--key', floorCertificate.keyPath, '--ca', floorCertificate.caPath]);
  try {
    const client = await writeWorkloadCertificate(options.directory, options.ca, 'handshake-client');
    const servers: readonly { readonly server: HandshakeServer; readonly pid: number; readonly port: number }[] = [
      { server: 'meshgate sidecar', pid: sidecar.pid, port: options.server.inbound },
      { server: 'node:https (no meshgate)', pid: floor.service.pid, port: floor.ports[0] as number },
      ...(baseline === null ? [] : [{ server: 'sidecar, BENCH_BASELINE_CLI' as const, pid: baseline.service.pid, port: baseline.port }]),
    ];
    const cases = servers.flatMap(({ server }) => [false, true].map((resumption) => ({ server, resumption, runs: [] as HandshakeRun[] })));
    const before = loadavg()[0] ?? 0;
    for (let repetition = 0; repetition < repetitions; repetition++) {
      const order = repetition % 2 === 0 ? cases : [...cases].reverse();
      for (const testCase of order) {
        const { pid, port } = servers.find((candidate) => candidate.server === testCase.server) as (typeof servers)[number];
        const args = ['--port', String(port), '--ca', client.caPath, '--cert', client.chainPath, '--key', client.keyPath, '--count', String(count), '--concurrency', String(CONCURRENCY)];
        const cpuBefore = treeCpuMicros(pid);
        const report = await runClient(pinning, testCase.resumption ? [...args, '--resume'] : args, signal);
        const cpuAfter = treeCpuMicros(pid);
        testCase.runs.push({
          handshakes: report.handshakes,
          failures: report.failures,
          resumed: report.resumed,
          handshakesPerSecond: report.handshakes / report.seconds,
          serverCpuUsPerHandshake: cpuBefore === null || cpuAfter === null || report.handshakes === 0 ? null : (cpuAfter - cpuBefore) / report.handshakes,
        });
      }
    }
    return { cases, loadAverage: { before, after: loadavg()[0] ?? 0 } };
  } finally {
    await context.processes.stop([sidecar, floor.service, upstream.service, ...(baseline === null ? [] : [baseline.service])]);
  }
}

/** The same sidecar B on BENCH_BASELINE_CLI's build, with its own ports and the run's mesh CA. */
async function startBaselineSidecar(context: TargetContext, appPort: number, cli: string): Promise<{ readonly service: ChildService; readonly port: number }> {
  const { configPath, options } = await meshLayout(context, `${HANDSHAKE_TARGET}-baseline`, appPort, false);
  const service = await startSidecar(context, `${HANDSHAKE_TARGET}-baseline-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU, { cli });
  return { service, port: options.server.inbound };
}

/** Median of the per-repetition ratios of two cases' CPU per handshake (the runs of one repetition ran back to back). */
function medianRatio(ours: HandshakeCase, theirs: HandshakeCase): number | null {
  const ratios = ours.runs.flatMap((run, index) => {
    const mine = run.serverCpuUsPerHandshake;
    const other = theirs.runs[index]?.serverCpuUsPerHandshake;
    return mine === null || other === null || other === undefined || other === 0 ? [] : [mine / other];
  });
  return ratios.length === 0 ? null : median(ratios);
}

/** Median CPU per handshake of a case, with its min and max; null when /proc could not be read. */
export function cpuSpread(testCase: HandshakeCase): { readonly median: number; readonly min: number; readonly max: number } | null {
  const values = testCase.runs.map((run) => run.serverCpuUsPerHandshake).filter((value): value is number => value !== null);
  return values.length === 0 ? null : { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function handshakeLines(result: HandshakeResult): string[] {
  const lines = result.cases.map((testCase) => {
    const cpu = cpuSpread(testCase);
    const runs = testCase.runs;
    const rate = median(runs.map((run) => run.handshakesPerSecond));
    const handshakes = runs.reduce((sum, run) => sum + run.handshakes, 0);
    const failures = runs.reduce((sum, run) => sum + run.failures, 0);
    const resumed = runs.reduce((sum, run) => sum + run.resumed, 0);
    const kind = testCase.resumption ? 'session resumption' : 'full handshake    ';
    const cpuText = cpu === null ? 'CPU -' : `CPU ${cpu.median.toFixed(0)} us/handshake (${cpu.min.toFixed(0)}-${cpu.max.toFixed(0)}) = ~${(1e6 / cpu.median).toFixed(0)}/s per core`;
    return `${testCase.server.padEnd(24)} ${kind}: ${cpuText}; ${rate.toFixed(0)}/s achieved (${CONCURRENCY} in flight); ${handshakes} ok, ${failures} failed, ${resumed} resumed`;
  });
  const sidecar = (resumption: boolean): HandshakeCase | undefined => result.cases.find((c) => c.server === 'meshgate sidecar' && c.resumption === resumption);
  const full = sidecar(false);
  const resumed = sidecar(true);
  const fullCpu = full === undefined ? null : cpuSpread(full);
  const resumedCpu = resumed === undefined ? null : cpuSpread(resumed);
  if (fullCpu !== null && resumedCpu !== null) {
    const cheaper = resumedCpu.max < fullCpu.min;
    lines.push(
      `sidecar: resumption costs ${((100 * resumedCpu.median) / fullCpu.median).toFixed(0)} % of a full handshake (${cheaper ? 'every resumed run below every full one' : 'the runs overlap'}); ` +
        `>= ${HANDSHAKES_PER_CORE_BAR}/s per core: full ${1e6 / fullCpu.median >= HANDSHAKES_PER_CORE_BAR ? 'PASS' : 'FAIL'}, resumed ${1e6 / resumedCpu.median >= HANDSHAKES_PER_CORE_BAR ? 'PASS' : 'FAIL'}`,
    );
  }
  for (const resumption of [false, true]) {
    const ours = sidecar(resumption);
    const theirs = result.cases.find((c) => c.server === 'sidecar, BENCH_BASELINE_CLI' && c.resumption === resumption);
    const ratio = ours === undefined || theirs === undefined ? null : medianRatio(ours, theirs);
    if (ratio !== null) lines.push(`sidecar ÷ BENCH_BASELINE_CLI's sidecar, ${resumption ? 'resumed' : 'full'}: ${ratio.toFixed(2)} (median of per-repetition CPU ratios)`);
  }
  lines.push(`load average (1 min): ${result.loadAverage.before.toFixed(1)} before, ${result.loadAverage.after.toFixed(1)} after`);
  return lines;
}
