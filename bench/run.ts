/**
 * The benchmark driver (`npm run bench`). Method (bench/README.md#method), with
 * interleaved rounds (round 1 runs every target, then round 2…), each target in a fresh process set,
 * a warm-up, then a saturating run (`-c50`) and an unloaded run (`-c1`); cells are medians over rounds.
 * Prints two tables and the headline ratios, and writes everything to bench-results/<timestamp>.json.
 *
 * Knobs (environment): BENCH_SUITE (all | ingress | mesh | policies; default all), BENCH_SECONDS (3 for
 * the whole set, 5 for one suite), BENCH_ROUNDS (3), BENCH_WARMUP_SECONDS (3), BENCH_CONNECTIONS (50),
 * BENCH_TARGETS (comma-separated names across suites; wins over BENCH_SUITE), BENCH_HANDSHAKES (500), BENCH_HANDSHAKE_REPETITIONS (5).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROUTE_RULE_COUNT, writeServerCertificate } from './config.js';
import { detectLoadGenerator } from './load-generator.js';
import type { LoadGenerator } from './load-generator.js';
import { barLines, computeBars } from './bars.js';
import { SIDE_BY_SIDE_PAIRS, measureSideBySide, sideBySideLine, sideBySideRepetitions } from './side-by-side.js';
import type { SideBySideResult } from './side-by-side.js';
import { componentSamples, componentTable, recordComponentSamples, snapshotCpu, summarizeComponents, sumOrNull } from './components.js';
import type { ComponentSamples } from './components.js';
import { measureDapr } from './dapr-bench.js';
import { daprLines } from './dapr-report.js';
import type { DaprResults } from './dapr-bench.js';
import { parsePublishers } from './dapr-throughput.js';
import { GRPC_TARGET, grpcLines, measureGrpcUnary } from './grpc-bench.js';
import type { GrpcResult } from './grpc-bench.js';
import { handshakeLines, measureHandshakes } from './handshake-bench.js';
import type { HandshakeResult } from './handshake-bench.js';
import { measureMemory, measureMemoryParts, memoryLines, memoryPartLines, WARMUP_REQUESTS_PER_SECOND } from './memory-bench.js';
import type { MemoryPart, MemoryResults } from './memory-bench.js';
import { measureTcp, tcpLines } from './tcp-bench.js';
import type { TcpCase } from './tcp-bench.js';
import { treeCpuMicros, treePeakRssBytes } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, ProcessSet, SERVICE_CPU, detectPinning } from './processes.js';
import { probe } from './probe.js';
import { headlines, saturationTable, summarize, unloadedTable } from './report.js';
import type { CellSummary, Mode, Sample } from './report.js';
import { selectTargets } from './suites.js';
import { LARGE_TABLE_TARGET, measureLargeTableCompile } from './scale.js';
import type { CompileTiming } from './scale.js';
import { measureReloadStall } from './reload-stall.js';
import type { LatencySummary, ReloadStall } from './reload-stall.js';
import { REPO_ROOT } from './targets.js';
import type { BenchTarget, RunningTarget, TargetContext } from './targets.js';

function positiveIntegerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got "${raw}")`);
  return value;
}

const selection = selectTargets(process.env.BENCH_SUITE, process.env.BENCH_TARGETS);
/** The whole set (11 targets) at 2 × 3 s stays under ~4 minutes; one suite keeps the baseline's 3 × 5 s. */
const WHOLE_SET = selection.suite === 'all';
const settings = {
  suite: selection.suite,
  seconds: positiveIntegerFromEnv('BENCH_SECONDS', WHOLE_SET ? 3 : 5),
  rounds: positiveIntegerFromEnv('BENCH_ROUNDS', 3),
  // A 3 s warm-up (bench/README.md#method): shorter, the first seconds measured still carry JIT compilation.
  warmupSeconds: positiveIntegerFromEnv('BENCH_WARMUP_SECONDS', 3),
  connections: positiveIntegerFromEnv('BENCH_CONNECTIONS', 50),
  handshakes: positiveIntegerFromEnv('BENCH_HANDSHAKES', 500),
  handshakeRepetitions: positiveIntegerFromEnv('BENCH_HANDSHAKE_REPETITIONS', 5),
  memoryWarmupSeconds: positiveIntegerFromEnv('BENCH_MEMORY_WARMUP_SECONDS', 10),
  dapr: {
    repetitions: positiveIntegerFromEnv('DAPR_REPETITIONS', 5),
    messages: positiveIntegerFromEnv('DAPR_MESSAGES', 20_000),
    latencyMessages: positiveIntegerFromEnv('DAPR_LATENCY_MESSAGES', 2_000),
    seconds: positiveIntegerFromEnv('BENCH_SECONDS', WHOLE_SET ? 3 : 5),
    sidecarNodeArgs: (process.env.DAPR_SIDECAR_NODE_ARGS ?? '').split(/\s+/).filter((arg) => arg !== ''),
    leanAppCpu: process.env.DAPR_LEAN_APP_CPU === '0' ? LOAD_GENERATOR_CPU : SERVICE_CPU,
    publishers: parsePublishers(process.env.DAPR_PUBLISHERS, spawnSync('wrk', ['-v'], { stdio: 'ignore' }).error === undefined),
  },
};
const SATURATION: Mode = { name: 'sat', connections: settings.connections, title: `Saturation (wrk -t1 -c${settings.connections})` };
const UNLOADED: Mode = { name: 'c1', connections: 1, title: 'Unloaded (wrk -t1 -c1: one connection, serial requests)' };
const MODES: readonly Mode[] = [SATURATION, UNLOADED];
const PROBE_REQUESTS = 100;
/** 1-minute load average above which the machine is visibly busy with something else. */
const BUSY_LOAD_AVERAGE = 0.5;

function cpuMicrosOrNull(pid: number | null): number | null {
  return pid === null ? null : treeCpuMicros(pid);
}

function perRequest(before: number | null, after: number | null, requests: number): number | null {
  return before === null || after === null || requests === 0 ? null : (after - before) / requests;
}

async function measure(generator: LoadGenerator, running: RunningTarget, mode: Mode, round: number, signal: AbortSignal): Promise<Sample> {
  const proxyBefore = cpuMicrosOrNull(running.proxyPid);
  const upstreamBefore = treeCpuMicros(running.upstreamPid);
  const componentsBefore = snapshotCpu(running.components ?? []);
  const result = await generator.run({ url: running.url, host: running.host, headers: running.headers ?? {}, connections: mode.connections, seconds: settings.seconds, signal });
  const upstreamCpuUsPerRequest = perRequest(upstreamBefore, treeCpuMicros(running.upstreamPid), result.requests);
  if (running.components !== undefined && running.components.length > 0) {
    // Several proxies: each is reported on its own (components table); the main tables show their sum.
    const components = componentSamples(running.components, componentsBefore, result.requests);
    const values = [...components.values()];
    return {
      ...result,
      round,
      proxyCpuUsPerRequest: sumOrNull(values.map((component) => component.cpuUsPerRequest)),
      upstreamCpuUsPerRequest,
      proxyPeakRssBytes: sumOrNull(values.map((component) => component.peakRssBytes)),
      components: Object.fromEntries(components),
    };
  }
  return {
    ...result,
    round,
    proxyCpuUsPerRequest: perRequest(proxyBefore, cpuMicrosOrNull(running.proxyPid), result.requests),
    upstreamCpuUsPerRequest,
    proxyPeakRssBytes: running.proxyPid === null ? null : treePeakRssBytes(running.proxyPid),
  };
}

function describeSplit(byListener: Readonly<Record<string, number>>): string {
  return Object.entries(byListener)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([listener, count]) => `listener ${listener}: ${count}`)
    .join(', ');
}

interface RunState {
  readonly samples: Map<string, Map<string, Sample[]>>;
  readonly failures: Map<string, string>;
  readonly components: ComponentSamples;
  /** Connections per worker, by target, one list per round. */
  readonly workerConnections: Map<string, (readonly number[])[]>;
}

async function benchTarget(target: BenchTarget, round: number, context: TargetContext, generator: LoadGenerator, state: RunState, signal: AbortSignal): Promise<void> {
  const started = Date.now();
  let running: RunningTarget;
  try {
    running = await target.start(context);
    const split = await probe(running.url, running.host, PROBE_REQUESTS, running.headers ?? {});
    if (round === 1) console.log(`  ${target.name}: ${target.description}; probe ${PROBE_REQUESTS}× 200 (${describeSplit(split.byListener)})`);
  } catch (error) {
    await context.processes.stopAll();
    const message = error instanceof Error ? error.message : String(error);
    state.failures.set(target.name, message);
    console.log(`  ${target.name}: FAILED to start, skipped from now on:\n    ${message.split('\n').join('\n    ')}`);
    return;
  }
  try {
    await generator.run({ url: running.url, host: running.host, headers: running.headers ?? {}, connections: SATURATION.connections, seconds: settings.warmupSeconds, signal });
    const byMode = state.samples.get(target.name) ?? new Map<string, Sample[]>();
    state.samples.set(target.name, byMode);
    for (const mode of MODES) {
      const sample = await measure(generator, running, mode, round, signal);
      byMode.set(mode.name, [...(byMode.get(mode.name) ?? []), sample]);
      if (sample.components !== undefined) recordComponentSamples(state.components, target.name, mode.name, new Map(Object.entries(sample.components)));
    }
    if (running.connectionsPerWorker !== undefined) {
      const counts = await running.connectionsPerWorker();
      if (counts.length > 0) state.workerConnections.set(target.name, [...(state.workerConnections.get(target.name) ?? []), counts]);
      console.log(`  ${target.name}: connections per worker ${counts.length === 0 ? 'not counted (one worker)' : counts.join(' / ')}`);
    }
    const [saturated, unloaded] = MODES.map((mode) => byMode.get(mode.name)?.at(-1));
    console.log(
      `  round ${round} ${target.name}: ${saturated?.requestsPerSecond.toFixed(0)} req/s sat, p50 ${unloaded?.p50Us.toFixed(0)} us c1 (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  } finally {
    await running.stop();
  }
}

async function main(): Promise<void> {
  const targets = selection.targets;
  const pinning = detectPinning();
  const generator = detectLoadGenerator(pinning);
  const processes = new ProcessSet(pinning);
  const abort = new AbortController();
  const workDirectory = await mkdtemp(join(tmpdir(), 'meshgate-bench-'));
  let interrupted = false;
  const interrupt = (signalName: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    console.log(`\n${signalName}: stopping every process`);
    abort.abort();
    void processes
      .stopAll()
      .then(() => rm(workDirectory, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  process.on('exit', () => processes.killAllNow());

  console.log(`meshgate bench (suite ${settings.suite}): ${targets.length} targets × ${MODES.length} modes × ${settings.rounds} interleaved rounds, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s per mode${selection.handshakes ? `; then ${settings.handshakeRepetitions} × ${settings.handshakes} mTLS handshakes per case (full, resumed; sidecar, bare node:https)` : ''}${selection.dapr.length > 0 ? `; then ${selection.dapr.join(', ')}` : ''}`);
  console.log(`load generator ${generator.name}; ${pinning.enabled ? 'load generator on CPU 0, proxy + upstream on CPU 1' : 'no CPU pinning'}; ${cpus().length} CPUs, Node ${process.version}`);
  const [loadAverage] = loadavg();
  const busyNote = (loadAverage ?? 0) > BUSY_LOAD_AVERAGE ? `load average ${loadAverage?.toFixed(1)} before start: other work shares these CPUs, expect noisy, low numbers` : null;
  for (const note of [generator.note, pinning.note, busyNote]) if (note !== null) console.log(`NOTE: ${note}`);

  const state: RunState = { samples: new Map(), failures: new Map(), components: new Map(), workerConnections: new Map() };
  let handshakes: HandshakeResult | null = null;
  let compile: CompileTiming | null = null;
  let reloadStall: ReloadStall | null = null;
  let tcp: TcpCase[] = [];
  let dapr: DaprResults | null = null;
  let grpcResults: GrpcResult[] = [];
  let memory: MemoryResults = [];
  let memoryParts: MemoryPart[] = [];
  const sideBySide: SideBySideResult[] = [];
  try {
    const context: TargetContext = { processes, workDirectory, serverCertificate: await writeServerCertificate(workDirectory) };
    for (let round = 1; round <= settings.rounds && !interrupted; round += 1) {
      console.log(`round ${round}/${settings.rounds}`);
      // Even rounds run the targets in reverse, so no target always follows the same neighbour (both orders).
      for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
        if (interrupted || state.failures.has(target.name)) continue;
        await benchTarget(target, round, context, generator, state, abort.signal);
      }
    }
    const byName = new Map(targets.map((target) => [target.name, target]));
    for (const pair of SIDE_BY_SIDE_PAIRS) {
      const [reference, measured] = [byName.get(pair.reference), byName.get(pair.measured)];
      if (interrupted || reference === undefined || measured === undefined || state.failures.has(pair.reference) || state.failures.has(pair.measured)) continue;
      if (sideBySide.length === 0) console.log(`side by side (both loaded at once, ${Math.floor(settings.connections / 2)} connections each, ${sideBySideRepetitions(settings.rounds)} × ${settings.seconds} s)`);
      try {
        const result = await measureSideBySide(pair, { reference, measured }, context, generator, { connections: settings.connections, seconds: settings.seconds, warmupSeconds: settings.warmupSeconds, repetitions: sideBySideRepetitions(settings.rounds) }, abort.signal);
        sideBySide.push(result);
        console.log(`  ${sideBySideLine(result)}`);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set(`${pair.measured} vs ${pair.reference}`, message);
        console.log(`  ${pair.measured} vs ${pair.reference}: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (targets.some((target) => target.name === LARGE_TABLE_TARGET) && !interrupted) {
      compile = await measureLargeTableCompile(workDirectory);
      console.log(
        `${compile.rules}-rule config: load + compile first ${compile.first.wallMs.toFixed(0)} ms wall (${compile.first.cpuMs.toFixed(0)} ms CPU), then ${compile.wallMs.map((ms) => ms.toFixed(0)).join(', ')} ms wall, ${compile.cpuMs.map((ms) => ms.toFixed(0)).join(', ')} ms CPU`,
      );
      try {
        const stall = await measureReloadStall(context);
        const line = (summary: LatencySummary): string => `p50 ${summary.p50Ms.toFixed(2)} / p99 ${summary.p99Ms.toFixed(2)} / max ${summary.maxMs.toFixed(2)} ms (${summary.requests} requests)`;
        console.log(`  requests while not reloading: ${line(stall.quiet)}`);
        console.log(`  requests in flight during a reload: ${line(stall.reloading)}; reloads took ${stall.reloadMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
        reloadStall = stall;
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set('reload-stall', message);
        console.log(`  reload stall: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (selection.handshakes && !interrupted) {
      console.log(`mTLS handshakes on a sidecar inbound port and a bare node:https server (${settings.handshakeRepetitions} × ${settings.handshakes} per case)`);
      try {
        handshakes = await measureHandshakes(context, pinning, settings.handshakes, settings.handshakeRepetitions, abort.signal);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set('mtls-handshakes', message);
        console.log(`  mtls-handshakes: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (selection.tcp && !interrupted) {
      console.log('TCP (redis PING) through a sidecar pair and direct');
      try {
        tcp = await measureTcp(context, pinning, settings.seconds, settings.rounds, abort.signal);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set('tcp-sidecar-pair', message);
        console.log(`  tcp-sidecar-pair: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (selection.memory && !interrupted) {
      console.log(`Proxy memory: idle, then after ${settings.memoryWarmupSeconds} s at ${WARMUP_REQUESTS_PER_SECOND} req/s (${settings.rounds} fresh process sets)`);
      try {
        memory = await measureMemory(context, pinning, settings.rounds, settings.memoryWarmupSeconds, abort.signal);
        memoryParts = await measureMemoryParts(context, pinning, abort.signal);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set('proxy-memory', message);
        console.log(`  proxy-memory: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (selection.dapr.length > 0 && !interrupted) {
      console.log(`Dapr API on a sidecar pair (CPU 0: the publisher, sidecar A, redis-server; CPU 1: sidecar B${settings.dapr.leanAppCpu === SERVICE_CPU ? ', the lean app' : ''}; publisher: ${settings.dapr.publishers.join(', then ')})`);
      try {
        dapr = await measureDapr(context, pinning, selection.dapr, settings.dapr, abort.signal);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set('dapr', message);
        console.log(`  dapr: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
    if (selection.grpc && !interrupted) {
      console.log('gRPC unary calls, direct and through the ingress');
      try {
        grpcResults = await measureGrpcUnary(context, pinning, settings.seconds, settings.warmupSeconds, abort.signal);
      } catch (error) {
        await processes.stopAll();
        const message = error instanceof Error ? error.message : String(error);
        state.failures.set(GRPC_TARGET, message);
        console.log(`  ${GRPC_TARGET}: FAILED:\n    ${message.split('\n').join('\n    ')}`);
      }
    }
  } catch (error) {
    // After an interrupt the aborted load generator rejects; the signal handler finishes the exit.
    if (!interrupted) throw error;
  } finally {
    await processes.stopAll();
    await rm(workDirectory, { recursive: true, force: true });
  }
  if (interrupted) return;

  const summaries = new Map<string, Map<string, CellSummary>>();
  for (const [target, byMode] of state.samples) {
    summaries.set(target, new Map([...byMode].map(([mode, samples]) => [mode, summarize(samples)])));
  }
  if (summaries.size > 0) {
    console.log(`\nMedian of ${settings.rounds} round(s); meshgate ingress targets route through a ${ROUTE_RULE_COUNT}-rule table. Errors are totals over rounds.`);
    console.log(`\n${SATURATION.title}\n${saturationTable(summaries, SATURATION.name)}`);
    console.log(`\n${UNLOADED.title}; "added" = minus direct\n${unloadedTable(summaries, UNLOADED.name)}`);
    console.log(`\n${headlines(summaries, SATURATION.name, UNLOADED.name).join('\n')}`);
  }
  const componentSummaries = summarizeComponents(state.components);
  if (componentSummaries.size > 0) {
    console.log(`\nPer proxy (multi-proxy targets; the main tables show their sum; idle RSS = VmRSS once ready, before any request)`);
    console.log(componentTable(componentSummaries, SATURATION.name, UNLOADED.name));
  }
  if (grpcResults.length > 0) console.log(`\ngRPC unary (grpc-js client on CPU 0; server and meshgate on CPU 1; TLS to the client, h2c behind meshgate)\n${grpcLines(grpcResults).join('\n')}`);
  if (handshakes !== null) console.log(`\nNew mTLS connections (client on CPU 0, server on CPU 1); medians of ${settings.handshakeRepetitions} runs of ${settings.handshakes}, (min-max)\n${handshakeLines(handshakes).join('\n')}`);
  if (tcp.length > 0) console.log(`\nTCP through a sidecar pair (mTLS, STRICT) vs direct to redis-server; A and the load on CPU 0, B and redis on CPU 1; medians of ${settings.rounds} round(s)\n${tcpLines(tcp).join('\n')}`);
  if (memory.length > 0) console.log(`\nProxy RSS in MB, median (min-max) of ${memory.length} fresh process set(s)\n${memoryLines(memory).join('\n')}`);
  if (memoryParts.length > 0) console.log(`\nWhat an idle sidecar's RSS is made of (bench/memory-parts.ts: each step loaded in turn, after a full GC)\n${memoryPartLines(memoryParts).join('\n')}`);
  if (dapr !== null) console.log(`\nDapr API\n${daprLines(dapr, settings.dapr).join('\n')}`);
  const bars = computeBars({
    summaries,
    components: componentSummaries,
    saturationMode: SATURATION.name,
    unloadedMode: UNLOADED.name,
    latencyResolutionUs: generator.latencyResolutionUs,
    sideBySide,
    compile,
    reloadStall,
    dapr,
    memory,
    workerConnections: state.workerConnections,
    cpuCount: cpus().length,
  });
  console.log(`\nbars\n${barLines(bars).join('\n')}`);
  for (const [target, message] of state.failures) console.log(`FAILED ${target}: ${message.split('\n')[0]}`);

  const resultsDirectory = join(REPO_ROOT, 'bench-results');
  await mkdir(resultsDirectory, { recursive: true });
  const resultsPath = join(resultsDirectory, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().map((cpu) => cpu.model),
    loadAverageAtStart: loadAverage,
    loadGenerator: generator.name,
    pinned: pinning.enabled,
    settings,
    routeRules: ROUTE_RULE_COUNT,
    targets: targets.map((target) => ({ name: target.name, description: target.description })),
    modes: MODES,
    summaries: Object.fromEntries([...summaries].map(([target, byMode]) => [target, Object.fromEntries(byMode)])),
    samples: Object.fromEntries([...state.samples].map(([target, byMode]) => [target, Object.fromEntries(byMode)])),
    failures: Object.fromEntries(state.failures),
    components: Object.fromEntries([...componentSummaries].map(([target, byMode]) => [target, Object.fromEntries([...byMode].map(([mode, byLabel]) => [mode, Object.fromEntries(byLabel)]))])),
    handshakes,
    compile,
    reloadStall,
    tcp,
    dapr,
    grpc: grpcResults,
    memory,
    memoryParts,
    sideBySide,
    bars,
  };
  await writeFile(resultsPath, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nresults: ${resultsPath}`);
  if (state.failures.size > 0) process.exitCode = 1;
}

await main();
