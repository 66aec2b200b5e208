/**
 * Side by side: a bar's two targets run at the same moment, each with its own upstream and its own
 * load generator (half the connections each), their proxies sharing the proxy CPU. Whatever else the
 * shared machine does during a repetition (other tenants, frequency changes) then hits both alike,
 * while targets measured one after the other see different minutes: on these machines the same
 * target's CPU per request varied by 10-20 % between runs a minute apart, as much as the costs the
 * bars judge. A/A runs (one target against itself) agree within ~1 us per request. The CPU per
 * request is what a bar takes from here; the throughput ratio is printed only, because two pipelines
 * sharing a CPU split it by the scheduler's rules, not by their cost alone.
 */
import type { LoadGenerator } from './load-generator.js';
import { median } from './median.js';
import { FULL_CHAIN_TARGET, OBSERVABILITY_TARGET, POLICIES_TARGET, QUIET_TARGET, RATELIMIT_LOCAL_TARGET, USER_PLUGIN_TARGET } from './policy-targets.js';
import { treeCpuMicros } from './proc-stats.js';
import { LARGE_TABLE_TARGET, SMALL_TABLE_TARGET } from './scale.js';
import { BASELINE_TARGET, NODE_FLOOR_TARGET, type BenchTarget, type RunningTarget, type TargetContext } from './targets.js';

export interface SideBySidePair {
  readonly reference: string;
  readonly measured: string;
}

/** The pairs whose difference is a bar (bars.ts); the policies' bar is judged on this CPU ratio. */
export const SIDE_BY_SIDE_PAIRS: readonly SideBySidePair[] = [
  { reference: 'meshgate-http', measured: POLICIES_TARGET },
  { reference: 'meshgate-http', measured: RATELIMIT_LOCAL_TARGET },
  { reference: 'meshgate-http', measured: USER_PLUGIN_TARGET },
  { reference: QUIET_TARGET, measured: OBSERVABILITY_TARGET },
  { reference: SMALL_TABLE_TARGET, measured: LARGE_TABLE_TARGET },
  { reference: 'bare-fastify', measured: FULL_CHAIN_TARGET },
  // For information (no bar): the full chain against what node:https + undici cost without any framework.
  { reference: NODE_FLOOR_TARGET, measured: FULL_CHAIN_TARGET },
  // Only with BENCH_BASELINE_CLI: this build against another one, for information (no bar).
  { reference: BASELINE_TARGET, measured: 'meshgate-http' },
];

/**
 * At least this many repetitions, whatever BENCH_ROUNDS says: one repetition in a few read 1.3-1.6x
 * here while its neighbours agreed within a few percent, and a median of three is moved by one such.
 */
export const MIN_SIDE_BY_SIDE_REPETITIONS = 5;

export function sideBySideRepetitions(rounds: number): number {
  return Math.max(rounds, MIN_SIDE_BY_SIDE_REPETITIONS);
}

export interface SideBySideResult extends SideBySidePair {
  /** Per repetition: measured proxy CPU us/req ÷ reference's. */
  readonly cpuRatios: readonly number[];
  /** Per repetition: measured requests ÷ reference's (the two shared the CPU for the same seconds). */
  readonly throughputRatios: readonly number[];
  readonly referenceCpuUsPerRequest: readonly number[];
  readonly measuredCpuUsPerRequest: readonly number[];
}

export interface SideBySideSettings {
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly repetitions: number;
}

function proxyCpu(running: RunningTarget): number {
  const micros = running.proxyPid === null ? null : treeCpuMicros(running.proxyPid);
  if (micros === null) throw new Error('side by side needs the proxy CPU time (/proc)');
  return micros;
}

async function loadBoth(generator: LoadGenerator, targets: readonly RunningTarget[], connections: number, seconds: number, signal: AbortSignal) {
  return Promise.all(
    targets.map((running) => generator.run({ url: running.url, host: running.host, headers: running.headers ?? {}, connections, seconds, signal })),
  );
}

export async function measureSideBySide(
  pair: SideBySidePair,
  targets: { readonly reference: BenchTarget; readonly measured: BenchTarget },
  context: TargetContext,
  generator: LoadGenerator,
  settings: SideBySideSettings,
  signal: AbortSignal,
): Promise<SideBySideResult> {
  const reference = await targets.reference.start(context);
  let measured: RunningTarget | null = null;
  try {
    measured = await targets.measured.start(context);
    const both = [reference, measured];
    const connections = Math.max(1, Math.floor(settings.connections / 2));
    // Each target gets half the connections, so half the requests a second of a round's warm-up: twice
    // as long gives it as many requests to optimise its hot paths on (the first repetition read high without).
    await loadBoth(generator, both, connections, 2 * settings.warmupSeconds, signal);
    const result = { ...pair, cpuRatios: [] as number[], throughputRatios: [] as number[], referenceCpuUsPerRequest: [] as number[], measuredCpuUsPerRequest: [] as number[] };
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      const before = both.map(proxyCpu);
      const loads = await loadBoth(generator, both, connections, settings.seconds, signal);
      const perRequest = both.map((running, index) => (proxyCpu(running) - (before[index] as number)) / Math.max(1, loads[index]?.requests ?? 0));
      const failed = loads.find((load) => load.non2xx > 0 || load.socketErrors > 0 || load.requests === 0);
      if (failed !== undefined) throw new Error(`side by side ${pair.measured} vs ${pair.reference}: ${failed.non2xx} non-2xx, ${failed.socketErrors} socket errors, ${failed.requests} requests`);
      const [referenceCpu, measuredCpu] = perRequest as [number, number];
      result.referenceCpuUsPerRequest.push(referenceCpu);
      result.measuredCpuUsPerRequest.push(measuredCpu);
      result.cpuRatios.push(measuredCpu / referenceCpu);
      result.throughputRatios.push((loads[1]?.requests ?? 0) / (loads[0]?.requests ?? 1));
    }
    return result;
  } finally {
    await Promise.all([reference.stop(), measured?.stop()]);
  }
}

export function sideBySideLine(result: SideBySideResult): string {
  const list = (values: readonly number[], digits: number): string => values.map((value) => value.toFixed(digits)).join(', ');
  return (
    `${result.measured} vs ${result.reference}: CPU/req x${median(result.cpuRatios).toFixed(3)} (${list(result.cpuRatios, 3)}; ` +
    `${median(result.measuredCpuUsPerRequest).toFixed(1)} vs ${median(result.referenceCpuUsPerRequest).toFixed(1)} us/req), ` +
    `throughput x${median(result.throughputRatios).toFixed(3)} (${list(result.throughputRatios, 3)})`
  );
}
