/**
 * The issue's acceptance bars, each computed from this run's medians (throughput: medians of ratios
 * paired by round) and printed with the measured value and PASS / FAIL. A bar whose targets did not run (or failed) says "n/a". Comparisons are
 * always between targets of the same run, never with absolute figures from another machine.
 */
import type { ComponentSummaries } from './components.js';
import { DAPR_PUBSUB_RABBITMQ, DAPR_PUBSUB_REDIS } from './dapr-bench.js';
import type { DaprResults } from './dapr-bench.js';
import { median } from './median.js';
import { memorySpread } from './memory-bench.js';
import type { MemoryResults } from './memory-bench.js';
import { INGRESS_LABEL, MESH_PAIR, NODE_FLOOR_PAIR, SIDECAR_A_LABEL, SIDECAR_B_LABEL } from './mesh-targets.js';
import { FULL_CHAIN_TARGET, OBSERVABILITY_TARGET, POLICIES_TARGET, QUIET_TARGET, RATELIMIT_LOCAL_TARGET, RATELIMIT_REDIS_TARGET, USER_PLUGIN_TARGET } from './policy-targets.js';
import { BARE_PROXY, DIRECT } from './report.js';
import { NODE_FLOOR_HTTP_TARGET } from './targets.js';
import type { SideBySideResult } from './side-by-side.js';
import { LARGE_TABLE_TARGET, SMALL_TABLE_TARGET } from './scale.js';
import type { ReloadStall } from './reload-stall.js';
import type { CompileTiming } from './scale.js';
import type { CellSummary, Summaries } from './report.js';

export const BARS = {
  ingressVsBare: 0.95,
  fullChainVsBare: 1.3,
  fullChainCpuUsPerRequest: 70,
  sidecarCpuUsPerRequest: 120,
  hopAddedP50Us: 90,
  pairAddedP50Us: 180,
  idleRssMb: 60,
  afterWarmupRssMb: 70,
  unloadedTailVsBare: 2,
  policiesCostIncrease: 0.1,
  localRateLimitThroughputCost: 0.05,
  redisAddedP50Us: 500,
  observabilityThroughputCost: 0.1,
  userPluginAddedCpuUs: 2,
  largeTableCpuCost: 0.05,
  largeTableCompileMs: 1000,
  /** Requests in flight during a reload of the 10 000-rule config: their p99 against the quiet p99 of the same run. */
  reloadInFlightP99VsQuiet: 2,
  daprStateAddedP50Us: 150,
  daprPubSubDeliveryP50Ms: 3,
  daprPubSubMessagesPerSecond: 5000,
  workersThroughput: 1.8,
  workersCpuGrowth: 0.05,
  /** Each worker accepts within this fraction of an even share of the connections. */
  workersConnectionSpread: 0.25,
} as const;

/**
 * 2 workers can only show their throughput where the load generator and the upstream have cores of
 * their own: with 2 CPUs they share the workers' cores, and the ratio is printed but not judged.
 */
const WORKERS_JUDGED_FROM_CPUS = 4;
const [ONE_WORKER, TWO_WORKERS] = ['meshgate-workers-1', 'meshgate-workers-2'];

export interface Bar {
  readonly name: string;
  readonly measured: string;
  /** null = not measured in this run. */
  readonly pass: boolean | null;
}

/**
 * `measured` relative to `reference` (req/s or CPU us/req by round): the median over rounds of the
 * ratio within each round. The two targets of a round ran seconds apart, so the slow drift of a shared
 * machine's speed cancels out of each ratio, which a ratio of the two medians (taken from different
 * minutes) keeps.
 */
export function pairedRatio(measured: ReadonlyMap<number, number>, reference: ReadonlyMap<number, number>): { ratio: number; perRound: number[] } | null {
  const perRound: number[] = [];
  for (const [round, value] of measured) {
    const referenceValue = reference.get(round);
    if (referenceValue !== undefined && referenceValue > 0) perRound.push(value / referenceValue);
  }
  return perRound.length === 0 ? null : { ratio: median(perRound), perRound };
}

const roundRatios = (perRound: readonly number[]): string => `rounds ${perRound.map((value) => value.toFixed(2)).join(', ')}`;
const percent = (fraction: number): string => `${fraction >= 0 ? '+' : ''}${(fraction * 100).toFixed(1)} %`;

/** `pass: null` with a measurement: measured but not judged on this machine. */
function bar(name: string, compute: () => { measured: string; pass: boolean | null } | null): Bar {
  const result = compute();
  return result === null ? { name, measured: 'n/a (target not measured)', pass: null } : { name, ...result };
}

/** Latency bars are judged in microseconds; a generator reporting whole milliseconds would read every hop as +0 us. */
const MAX_LATENCY_RESOLUTION_US = 10;

export interface BarInputs {
  readonly summaries: Summaries;
  readonly components: ComponentSummaries;
  readonly saturationMode: string;
  readonly unloadedMode: string;
  readonly latencyResolutionUs: number;
  readonly sideBySide?: readonly SideBySideResult[];
  readonly compile?: CompileTiming | null;
  readonly reloadStall?: ReloadStall | null;
  readonly dapr?: DaprResults | null;
  readonly memory?: MemoryResults;
  /** Connections each worker accepted, by target, one list per round (`--concurrency` targets). */
  readonly workerConnections?: ReadonlyMap<string, readonly (readonly number[])[]>;
  /** CPUs of the machine: below WORKERS_JUDGED_FROM_CPUS the workers' throughput is printed, not judged. */
  readonly cpuCount?: number;
}

/**
 * The bars that judge one target's cost against another use the side-by-side measurement when the run
 * made one (side-by-side.ts), and the rounds' paired ratios otherwise; both are printed.
 */
export function computeBars(inputs: BarInputs): Bar[] {
  const { summaries, components, saturationMode, unloadedMode, latencyResolutionUs, sideBySide = [], compile = null, reloadStall = null, dapr = null, memory = [], workerConnections = new Map<string, readonly (readonly number[])[]>(), cpuCount = 0 } = inputs;
  const cell = (target: string, mode: string): CellSummary | undefined => summaries.get(target)?.get(mode);
  const sat = (target: string): CellSummary | undefined => cell(target, saturationMode);
  const c1 = (target: string): CellSummary | undefined => cell(target, unloadedMode);
  /** A target that completed no request has no latency: its p50 of 0 must read as a failure, not as the fastest hop. */
  const addedP50 = (target: string, reference: string): number | null => {
    const [measured, base] = [c1(target), c1(reference)];
    if (measured === undefined || base === undefined) return null;
    return measured.requestsPerSecond === 0 ? Number.POSITIVE_INFINITY : measured.p50Us - base.p50Us;
  };
  const signedUs = (value: number): string => `${value >= 0 ? '+' : ''}${value.toFixed(0)} us`;
  /** `floor`: a target that does the same hop with Node.js alone, whose added p50 is printed beside the judged one. */
  const addedP50Bar = (target: string, reference: string, limitUs: number, floor: string | null = null) => () => {
    const value = addedP50(target, reference);
    if (value === null) return null;
    if (latencyResolutionUs > MAX_LATENCY_RESOLUTION_US) return { measured: `not measurable: the load generator reports latency in steps of ${latencyResolutionUs} us (install wrk)`, pass: false };
    const floorValue = floor === null ? null : addedP50(floor, reference);
    return { measured: `${signedUs(value)}${floorValue === null ? '' : ` (${floor} ${signedUs(floorValue)})`}`, pass: value <= limitUs };
  };
  const sidecarCpu = (label: string) => () => {
    const value = components.get(MESH_PAIR)?.get(saturationMode)?.get(label)?.cpuUsPerRequest ?? null;
    return value === null ? null : { measured: `${value.toFixed(1)} us/req (${(value / 1_000).toFixed(3)} vCPU per 1k req/s)`, pass: value <= BARS.sidecarCpuUsPerRequest };
  };
  /** The median over the memory measurement's fresh process sets (memory-bench.ts). */
  const rss = (label: string, field: 'idleRssBytes' | 'afterRssBytes', limitMb: number) => () => {
    const spread = memorySpread(memory, label, field);
    return spread === null ? null : { measured: `${spread.median.toFixed(1)} MB (${spread.min.toFixed(1)}-${spread.max.toFixed(1)})`, pass: spread.median <= limitMb };
  };
  const rssBars = (label: string): Bar[] => [
    bar(`idle ${label} RSS <= ${BARS.idleRssMb} MB`, rss(label, 'idleRssBytes', BARS.idleRssMb)),
    bar(`${label} RSS after a warm-up at 1 000 req/s <= ${BARS.afterWarmupRssMb} MB`, rss(label, 'afterRssBytes', BARS.afterWarmupRssMb)),
  ];

  /**
   * `measured`'s cost over `reference` as a fraction: extra CPU per request, or throughput lost; `pass`
   * judges it. CPU per request is taken side by side when the run measured the pair so (both proxies
   * shared the CPU at the same moment); throughput only means something for a target alone on the CPU,
   * so it is always the median of the rounds' paired ratios.
   */
  const costBar = (kind: 'cpu' | 'throughput', measured: string, reference: string, pass: (cost: number) => boolean): { measured: string; pass: boolean } | null => {
    const [target, base] = [sat(measured), sat(reference)];
    if (kind === 'throughput') {
      const rounds = target === undefined || base === undefined ? null : pairedRatio(target.requestsPerSecondByRound, base.requestsPerSecondByRound);
      if (rounds === null) return null;
      const cost = 1 - rounds.ratio;
      return { measured: `${(cost * 100).toFixed(1)} % slower (${roundRatios(rounds.perRound)})`, pass: pass(cost) };
    }
    const rounds = target === undefined || base === undefined ? null : pairedRatio(target.proxyCpuUsPerRequestByRound, base.proxyCpuUsPerRequestByRound);
    const inRounds = rounds === null ? null : `one after the other ${percent(rounds.ratio - 1)} (${roundRatios(rounds.perRound)})`;
    const together = sideBySide.find((result) => result.measured === measured && result.reference === reference);
    if (together === undefined) return rounds === null ? null : { measured: inRounds as string, pass: pass(rounds.ratio - 1) };
    const cost = median(together.cpuRatios) - 1;
    const ratios = together.cpuRatios.map((ratio) => ratio.toFixed(2)).join(', ');
    return { measured: `${percent(cost)} side by side (${ratios})${inRounds === null ? '' : `; ${inRounds}`}`, pass: pass(cost) };
  };

  /**
   * `measured`'s extra proxy CPU per request over `reference` in microseconds: the median of the
   * side-by-side repetitions' differences when the run made them, else of the rounds' differences.
   */
  const addedCpuBar = (measured: string, reference: string, limitUs: number) => (): { measured: string; pass: boolean } | null => {
    const together = sideBySide.find((result) => result.measured === measured && result.reference === reference);
    if (together !== undefined) {
      const added = together.measuredCpuUsPerRequest.map((value, index) => value - (together.referenceCpuUsPerRequest[index] ?? value));
      const cost = median(added);
      return { measured: `${cost >= 0 ? '+' : ''}${cost.toFixed(2)} us/req side by side (${added.map((value) => value.toFixed(2)).join(', ')})`, pass: cost <= limitUs };
    }
    const [target, base] = [sat(measured), sat(reference)];
    if (target === undefined || base === undefined) return null;
    const added = [...target.proxyCpuUsPerRequestByRound].flatMap(([round, value]) => {
      const baseValue = base.proxyCpuUsPerRequestByRound.get(round);
      return baseValue === undefined ? [] : [value - baseValue];
    });
    if (added.length === 0) return null;
    const cost = median(added);
    return { measured: `${cost >= 0 ? '+' : ''}${cost.toFixed(2)} us/req one after the other (rounds ${added.map((value) => value.toFixed(2)).join(', ')})`, pass: cost <= limitUs };
  };

  // The first result of a broker is its first publisher's (DAPR_PUBLISHERS): the one the bars judge.
  const pubsub = (name: string) => dapr?.pubsub.find((result) => result.name === name);
  const pubsubThroughput = (name: string) => () => {
    const result = pubsub(name);
    if (result === undefined) return null;
    const { median: rate, min, max } = result.messagesPerSecond;
    return { measured: `${rate.toFixed(0)} msg/s (min ${min.toFixed(0)}, max ${max.toFixed(0)}; ${result.publisher} publisher); lost ${result.lost}, duplicated ${result.duplicated}`, pass: rate >= BARS.daprPubSubMessagesPerSecond && result.lost === 0 };
  };

  const throughputVsOther = (target: string, reference: string, atLeast: number) => () => {
    const [measured, base] = [sat(target), sat(reference)];
    const paired = measured === undefined || base === undefined ? null : pairedRatio(measured.requestsPerSecondByRound, base.requestsPerSecondByRound);
    if (paired === null) return null;
    return { measured: `${paired.ratio.toFixed(2)}x (${roundRatios(paired.perRound)})`, pass: paired.ratio >= atLeast };
  };
  /** The proxy's own CPU per request under load: side by side with the bare proxy when measured so, else the rounds' median. */
  const proxyCpuBar = (target: string, limitUs: number) => () => {
    const together = sideBySide.find((result) => result.measured === target && result.reference === BARE_PROXY);
    if (together !== undefined) {
      const value = median(together.measuredCpuUsPerRequest);
      const list = together.measuredCpuUsPerRequest.map((entry) => entry.toFixed(1)).join(', ');
      return { measured: `${value.toFixed(1)} us/req side by side (${list}; ${BARE_PROXY} ${median(together.referenceCpuUsPerRequest).toFixed(1)})`, pass: value <= limitUs };
    }
    const value = sat(target)?.proxyCpuUsPerRequest ?? null;
    return value === null ? null : { measured: `${value.toFixed(1)} us/req (rounds' median)`, pass: value <= limitUs };
  };


  /** Unloaded p99.9 against bare fastify's: the median of the per-round ratios (the two ran seconds apart). */
  const tailBar = (target: string) => () => {
    const [measured, base] = [c1(target), c1(BARE_PROXY)];
    const paired = measured === undefined || base === undefined ? null : pairedRatio(measured.p999UsByRound, base.p999UsByRound);
    if (measured === undefined || base === undefined || paired === null) return null;
    if (latencyResolutionUs > MAX_LATENCY_RESOLUTION_US) return { measured: `not measurable: the load generator reports latency in steps of ${latencyResolutionUs} us (install wrk)`, pass: false };
    return {
      measured: `${paired.ratio.toFixed(2)}x (p99.9 ${measured.p999Us.toFixed(0)} vs ${base.p999Us.toFixed(0)} us, p99 ${measured.p99Us.toFixed(0)} vs ${base.p99Us.toFixed(0)} us; ${roundRatios(paired.perRound)})`,
      pass: paired.ratio <= BARS.unloadedTailVsBare,
    };
  };

  const workersThroughput = (): { measured: string; pass: boolean | null } | null => {
    const judged = throughputVsOther(TWO_WORKERS, ONE_WORKER, BARS.workersThroughput)();
    if (judged === null || cpuCount >= WORKERS_JUDGED_FROM_CPUS) return judged;
    return { measured: `${judged.measured}; not judged on ${cpuCount} CPUs: the load generator and the upstream share the workers' cores`, pass: null };
  };
  /** Every round: each worker's share of the connections against an even one. */
  const connectionSpread = (): { measured: string; pass: boolean } | null => {
    const rounds = workerConnections.get(TWO_WORKERS) ?? [];
    if (rounds.length === 0) return null;
    const deviations = rounds.map((counts) => {
      const even = counts.reduce((sum, count) => sum + count, 0) / counts.length;
      return Math.max(...counts.map((count) => Math.abs(count - even) / even));
    });
    return {
      measured: `largest deviation ${(Math.max(...deviations) * 100).toFixed(0)} % (${rounds.map((counts) => counts.join(' / ')).join('; ')})`,
      pass: deviations.every((deviation) => deviation <= BARS.workersConnectionSpread),
    };
  };

  return [
    bar(`meshgate-http throughput >= ${BARS.ingressVsBare}x ${BARE_PROXY}`, throughputVsOther('meshgate-http', BARE_PROXY, BARS.ingressVsBare)),
    bar(`${FULL_CHAIN_TARGET} throughput >= ${BARS.fullChainVsBare}x ${BARE_PROXY}`, throughputVsOther(FULL_CHAIN_TARGET, BARE_PROXY, BARS.fullChainVsBare)),
    bar(`${FULL_CHAIN_TARGET} proxy CPU <= ${BARS.fullChainCpuUsPerRequest} us/req under load`, proxyCpuBar(FULL_CHAIN_TARGET, BARS.fullChainCpuUsPerRequest)),
    bar(`meshgate-http unloaded p99.9 <= ${BARS.unloadedTailVsBare}x ${BARE_PROXY}'s`, tailBar('meshgate-http')),
    bar(`meshgate-https unloaded p99.9 <= ${BARS.unloadedTailVsBare}x ${BARE_PROXY}'s`, tailBar('meshgate-https')),
    bar(`${SIDECAR_A_LABEL} CPU <= ${BARS.sidecarCpuUsPerRequest} us/req under load`, sidecarCpu(SIDECAR_A_LABEL)),
    bar(`${SIDECAR_B_LABEL} CPU <= ${BARS.sidecarCpuUsPerRequest} us/req under load`, sidecarCpu(SIDECAR_B_LABEL)),
    bar(`${MESH_PAIR} adds <= +${BARS.pairAddedP50Us} us p50 unloaded (vs ${DIRECT})`, addedP50Bar(MESH_PAIR, DIRECT, BARS.pairAddedP50Us, NODE_FLOOR_PAIR)),
    bar(`meshgate-http adds <= +${BARS.hopAddedP50Us} us p50 unloaded (one HTTP hop, vs ${DIRECT})`, addedP50Bar('meshgate-http', DIRECT, BARS.hopAddedP50Us, NODE_FLOOR_HTTP_TARGET)),
    ...rssBars(SIDECAR_A_LABEL),
    ...rssBars(SIDECAR_B_LABEL),
    ...rssBars(INGRESS_LABEL),
    bar(`${POLICIES_TARGET}: proxy CPU per request <= ${percent(BARS.policiesCostIncrease)} vs meshgate-http`, () =>
      costBar('cpu', POLICIES_TARGET, 'meshgate-http', (increase) => increase <= BARS.policiesCostIncrease),
    ),
    bar(`${RATELIMIT_LOCAL_TARGET}: throughput cost < ${(BARS.localRateLimitThroughputCost * 100).toFixed(0)} % vs meshgate-http`, () =>
      costBar('throughput', RATELIMIT_LOCAL_TARGET, 'meshgate-http', (cost) => cost < BARS.localRateLimitThroughputCost),
    ),
    bar(`${RATELIMIT_REDIS_TARGET}: adds <= +${BARS.redisAddedP50Us} us p50 unloaded vs meshgate-http`, addedP50Bar(RATELIMIT_REDIS_TARGET, 'meshgate-http', BARS.redisAddedP50Us)),
    bar(`${USER_PLUGIN_TARGET}: proxy CPU per request <= +${BARS.userPluginAddedCpuUs} us vs meshgate-http`, addedCpuBar(USER_PLUGIN_TARGET, 'meshgate-http', BARS.userPluginAddedCpuUs)),
    bar(`${OBSERVABILITY_TARGET}: throughput within ${(BARS.observabilityThroughputCost * 100).toFixed(0)} % of ${QUIET_TARGET}`, () =>
      costBar('throughput', OBSERVABILITY_TARGET, QUIET_TARGET, (cost) => cost <= BARS.observabilityThroughputCost),
    ),
    bar(`${LARGE_TABLE_TARGET}: proxy CPU per request <= ${percent(BARS.largeTableCpuCost)} vs ${SMALL_TABLE_TARGET}`, () =>
      costBar('cpu', LARGE_TABLE_TARGET, SMALL_TABLE_TARGET, (increase) => increase <= BARS.largeTableCpuCost),
    ),
    bar(`10 000-rule config loads and compiles in <= ${BARS.largeTableCompileMs} ms`, () => {
      if (compile === null) return null;
      const wall = median(compile.wallMs);
      const list = (values: readonly number[]): string => values.map((value) => value.toFixed(0)).join(', ');
      return {
        measured: `first ${compile.first.wallMs.toFixed(0)} ms wall (CPU ${compile.first.cpuMs.toFixed(0)} ms), then ${wall.toFixed(0)} ms wall (${list(compile.wallMs)}), CPU ${list(compile.cpuMs)} ms`,
        pass: wall <= BARS.largeTableCompileMs && compile.first.wallMs <= BARS.largeTableCompileMs,
      };
    }),
    bar(`10 000-rule config: requests in flight during a reload p99 <= ${BARS.reloadInFlightP99VsQuiet}x the quiet p99`, () => {
      if (reloadStall === null) return null;
      const { quiet, reloading } = reloadStall;
      const ratio = reloading.p99Ms / quiet.p99Ms;
      const line = (label: string, key: 'p50Ms' | 'p99Ms' | 'maxMs'): string => `${label} ${reloading[key].toFixed(2)} vs ${quiet[key].toFixed(2)} ms`;
      return {
        measured: `${ratio.toFixed(2)}x: ${line('p99', 'p99Ms')}; ${line('p50', 'p50Ms')}; ${line('max', 'maxMs')} (${reloading.requests} requests in flight, ${quiet.requests} quiet)`,
        pass: ratio <= BARS.reloadInFlightP99VsQuiet,
      };
    }),
    bar(`Dapr state GET through the sidecar adds <= +${BARS.daprStateAddedP50Us} us p50 over a direct ioredis GET`, () => {
      const state = dapr?.state ?? null;
      if (state === null) return null;
      const { median: added, min, max } = state.addedP50Us;
      return { measured: `+${added.toFixed(0)} us (min ${min.toFixed(0)}, max ${max.toFixed(0)})`, pass: added <= BARS.daprStateAddedP50Us };
    }),
    bar(`${TWO_WORKERS} throughput >= ${BARS.workersThroughput}x ${ONE_WORKER}`, workersThroughput),
    bar(`${TWO_WORKERS}: proxy CPU per request <= ${percent(BARS.workersCpuGrowth)} vs ${ONE_WORKER}`, () =>
      costBar('cpu', TWO_WORKERS, ONE_WORKER, (increase) => increase <= BARS.workersCpuGrowth),
    ),
    bar(`${TWO_WORKERS}: each worker accepts within ${(BARS.workersConnectionSpread * 100).toFixed(0)} % of an even share of the connections`, connectionSpread),
    bar(`${DAPR_PUBSUB_REDIS}: publish → delivery p50 <= ${BARS.daprPubSubDeliveryP50Ms} ms`, () => {
      const p50 = pubsub(DAPR_PUBSUB_REDIS)?.latencyP50Ms ?? null;
      return p50 === null ? null : { measured: `${p50.toFixed(2)} ms`, pass: p50 <= BARS.daprPubSubDeliveryP50Ms };
    }),
    bar(`${DAPR_PUBSUB_REDIS}: >= ${BARS.daprPubSubMessagesPerSecond} msg/s through one sidecar pair, none lost`, pubsubThroughput(DAPR_PUBSUB_REDIS)),
    bar(`${DAPR_PUBSUB_RABBITMQ}: >= ${BARS.daprPubSubMessagesPerSecond} msg/s through one sidecar pair, none lost`, pubsubThroughput(DAPR_PUBSUB_RABBITMQ)),
  ];
}

export function barLines(bars: readonly Bar[]): string[] {
  const width = Math.max(...bars.map((entry) => entry.name.length));
  return bars.map((entry) => `${entry.pass === null ? 'n/a ' : entry.pass ? 'PASS' : 'FAIL'}  ${entry.name.padEnd(width)}  ${entry.measured}`);
}
