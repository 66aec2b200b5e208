/**
 * The `dapr` suite: the sidecar's Dapr API measured against its own bars. Not wrk targets — each is one
 * measurement run after the rounds (like the mTLS handshakes).
 *
 * - `dapr-pubsub-redis`, `dapr-pubsub-rabbitmq`: publisher → sidecar A (`bench/client`, CPU 0) publish →
 *   broker → sidecar B (`bench/server`, CPU 1; declarative Subscription) → the app. One run of
 *   publish → delivery latency (events one at a time, dapr-client.ts on CPU 0), then DAPR_REPETITIONS (5)
 *   throughput runs per publisher (DAPR_PUBLISHERS; dapr-throughput.ts) of DAPR_MESSAGES (20 000) events
 *   with 64 publishes in flight, each waiting until every event arrived; every id is counted, a loss
 *   stops the suite, and every process's CPU per message is read from /proc over the run's window.
 *   Redis runs on CPU 0 (a private redis-server); RabbitMQ is the machine's (MESHGATE_TEST_AMQP_URL, else
 *   127.0.0.1:5672), with an exchange and queue of the run's own, deleted afterwards.
 * - `dapr-state-get`: `GET /v1.0/state/store/bench` through sidecar A (state.redis) and a direct ioredis
 *   GET of the same value, alternated request by request (dapr-client.ts), DAPR_REPETITIONS runs of
 *   BENCH_SECONDS each; sidecar A's CPU per GET is read from /proc over the client's run.
 */
import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Amqp from 'amqplib';
import { stringify } from 'yaml';
import { median } from './median.js';
import { CLIENT_WORKLOAD, MESH_NAMESPACE, SERVER_WORKLOAD } from './mesh-config.js';
import { meshLayout, startSidecar } from './mesh-targets.js';
import { startRedis } from './policy-targets.js';
import { treeCpuMicros } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU, pinnedCommand, runToCompletion } from './processes.js';
import type { ChildService, Pinning } from './processes.js';
import { BASELINE_CLI } from './targets.js';
import type { TargetContext } from './targets.js';
import { freePort } from '../test/helpers/ports.js';
import type { LatencyReport, StateReport, StateRepetition } from './dapr-client.js';
import { medianAccount, pidsNamed } from './cpu-accounting.js';
import type { CpuAccount, NamedProcess } from './cpu-accounting.js';
import type { ThroughputReport } from './dapr-delivery.js';
import { IN_FLIGHT, SIDECAR_A_PART, SIDECAR_B_PART, measuredRun } from './dapr-throughput.js';
import type { DaprPublisher, MeasuredRun, RunTarget } from './dapr-throughput.js';

export const DAPR_PUBSUB_REDIS = 'dapr-pubsub-redis';
export const DAPR_PUBSUB_RABBITMQ = 'dapr-pubsub-rabbitmq';
export const DAPR_STATE_GET = 'dapr-state-get';
export const DAPR_MEASUREMENTS: readonly string[] = [DAPR_PUBSUB_REDIS, DAPR_PUBSUB_RABBITMQ, DAPR_STATE_GET];

const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));
const RUN_TIMEOUT_MS = 300_000;
const REDIS_PART = 'redis-server (CPU 0)';
const RABBITMQ_PART = 'RabbitMQ beam.smp (not pinned)';
const AMQP_URL = process.env['MESHGATE_TEST_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
/** The app id of sidecar B (`bench/server`): its consumer group and the RabbitMQ queue's prefix. */
const SUBSCRIBER_APP_ID = SERVER_WORKLOAD.split('/')[1] ?? 'server';

export interface DaprSettings {
  readonly repetitions: number;
  readonly messages: number;
  readonly latencyMessages: number;
  readonly seconds: number;
  /** Who publishes (`DAPR_PUBLISHERS`), the first one judged by the bars; with two, runs alternate between them. */
  readonly publishers: readonly DaprPublisher[];
  /** The lean app's CPU (`DAPR_LEAN_APP_CPU`, dapr-throughput.ts's appCpu). */
  readonly leanAppCpu: number;
  /** Node options for both sidecars (`DAPR_SIDECAR_NODE_ARGS`, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
  readonly sidecarNodeArgs: readonly string[];
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface PubSubResult extends BuildFigures {
  readonly name: string;
  readonly publisher: DaprPublisher;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly lost: number;
  readonly duplicated: number;
  readonly runs: readonly ThroughputReport[];
  /** Where the CPUs went, per message: the median over the runs of each process's part; null without /proc. */
  readonly cpu: CpuAccount | null;
  readonly cpuRuns: readonly (CpuAccount | null)[];
}

export interface StateResult {
  readonly name: string;
  readonly addedP50Us: Spread;
  readonly sidecarP50Us: Spread;
  readonly directP50Us: Spread;
  /** Sidecar A's CPU per GET over the client's whole run (warm-up included); null without /proc. */
  readonly sidecarCpuUsPerGet: number | null;
  readonly runs: readonly StateRepetition[];
}

export interface DaprResults {
  readonly pubsub: PubSubResult[];
  /** Only with BENCH_BASELINE_CLI. */
  readonly sideBySide: PubSubSideBySide[];
  readonly state: StateResult | null;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

function spreadOrNull(values: readonly (number | null)[]): Spread | null {
  const present = values.filter((value): value is number => value !== null);
  return present.length === 0 ? null : spread(present);
}

async function runClient(pinning: Pinning, args: readonly string[], signal: AbortSignal): Promise<string> {
  const [command, argv] = pinnedCommand(pinning, LOAD_GENERATOR_CPU, process.execPath, [join(BENCH_DIST, 'dapr-client.js'), ...args]);
  return runToCompletion(command, argv, RUN_TIMEOUT_MS, signal);
}

interface DaprLayout {
  readonly appPort: number;
  readonly clientOutbound: number;
  readonly sidecars: readonly ChildService[];
  readonly publisher: ChildService;
  readonly subscriber: ChildService;
}

/** The bench mesh (mesh-config.ts) plus the given Components, sidecars A and B started. */
async function startDaprMesh(
  context: TargetContext,
  name: string,
  documents: readonly Record<string, unknown>[],
  withSubscriber: boolean,
  nodeArgs: readonly string[],
  cli?: string,
): Promise<DaprLayout> {
  const appPort = await freePort();
  const { configPath, options } = await meshLayout(context, name, appPort, false);
  await appendFile(configPath, documents.map((document) => `---\n${stringify(document)}`).join(''));
  const build = { nodeArgs, ...(cli === undefined ? {} : { cli }) };
  const publisher = await startSidecar(context, `${name}-a`, configPath, CLIENT_WORKLOAD, options.client.admin, LOAD_GENERATOR_CPU, build);
  const subscriber = withSubscriber ? await startSidecar(context, `${name}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU, build) : publisher;
  // A profile file is named by pid: this says which sidecar wrote which.
  if (nodeArgs.length > 0) console.log(`  ${name}: sidecar A pid ${publisher.pid}${withSubscriber ? `, sidecar B pid ${subscriber.pid}` : ''} (${nodeArgs.join(' ')})`);
  return { appPort, clientOutbound: options.client.outbound, sidecars: withSubscriber ? [publisher, subscriber] : [publisher], publisher, subscriber };
}

function component(name: string, type: string, metadata: Readonly<Record<string, string>>): Record<string, unknown> {
  return {
    apiVersion: 'dapr.io/v1alpha1',
    kind: 'Component',
    metadata: { name, namespace: MESH_NAMESPACE },
    spec: { type, version: 'v1', metadata: Object.entries(metadata).map(([key, value]) => ({ name: key, value })) },
  };
}

function subscription(topic: string): Record<string, unknown> {
  return {
    apiVersion: 'dapr.io/v2alpha1',
    kind: 'Subscription',
    metadata: { name: 'bench', namespace: MESH_NAMESPACE },
    spec: { pubsubname: 'events', topic, routes: { default: '/bench' } },
    scopes: [SUBSCRIBER_APP_ID],
  };
}

/** What a run reads besides the app: the pair's sidecars and every broker process (the idle one too). */
function runTarget(mesh: DaprLayout, topic: string, brokers: readonly NamedProcess[], leanAppCpu: number): RunTarget {
  const sidecars = [
    { label: SIDECAR_A_PART, pid: mesh.publisher.pid },
    { label: SIDECAR_B_PART, pid: mesh.subscriber.pid },
  ];
  return { appPort: mesh.appPort, sidecarPort: mesh.clientOutbound, topic, processes: [...sidecars, ...brokers], leanAppCpu };
}

const warmUpMessages = (settings: DaprSettings): number => Math.max(IN_FLIGHT, Math.floor(settings.messages / 10));

/** Publishers in the order of repetition `index`: alternating, so that neither always runs first. */
function publishersFor(index: number, publishers: readonly DaprPublisher[]): readonly DaprPublisher[] {
  return index % 2 === 0 ? publishers : [...publishers].reverse();
}

async function measurePubSub(
  context: TargetContext,
  pinning: Pinning,
  settings: DaprSettings,
  signal: AbortSignal,
  name: string,
  pubsubComponent: Record<string, unknown>,
  topic: string,
  brokers: readonly NamedProcess[],
): Promise<PubSubResult[]> {
  const mesh = await startDaprMesh(context, name, [pubsubComponent, subscription(topic)], true, settings.sidecarNodeArgs);
  try {
    const latencyArgs = ['--mode', 'pubsub', '--app-port', String(mesh.appPort), '--sidecar-port', String(mesh.clientOutbound), '--topic', topic, '--latency', String(settings.latencyMessages)];
    const latency = JSON.parse(await runClient(pinning, latencyArgs, signal)) as LatencyReport;
    const target = runTarget(mesh, topic, brokers, settings.leanAppCpu);
    // Warm-up, not measured: the events one at a time never take the sidecars' batching paths, so the
    // first measured run compiled them (A 156–183 µs per message in it, 72–98 after).
    for (const publisher of settings.publishers) await measuredRun(pinning, publisher, target, warmUpMessages(settings), signal);
    const runs = new Map<DaprPublisher, MeasuredRun[]>(settings.publishers.map((publisher) => [publisher, []]));
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      for (const publisher of publishersFor(repetition, settings.publishers)) {
        const measured = await measuredRun(pinning, publisher, target, settings.messages, signal);
        runs.get(publisher)?.push(measured);
        const cpu = (value: number | null): string => value?.toFixed(0) ?? '-';
        console.log(
          `  ${name} run ${repetition + 1} (${publisher} publisher): ${measured.report.messagesPerSecond.toFixed(0)} msg/s, lost ${measured.report.lost}, duplicated ${measured.report.duplicated}; ` +
            `CPU per message A ${cpu(measured.publisherCpu)} / B ${cpu(measured.subscriberCpu)} us`,
        );
      }
    }
    return settings.publishers.map((publisher) => {
      const measured = runs.get(publisher) ?? [];
      const reports = measured.map((run) => run.report);
      return {
        name,
        publisher,
        latencyP50Ms: latency.latencyP50Ms,
        latencyP99Ms: latency.latencyP99Ms,
        ...buildFigures(measured),
        lost: reports.reduce((sum, run) => sum + run.lost, 0),
        duplicated: reports.reduce((sum, run) => sum + run.duplicated, 0),
        runs: reports,
        cpu: medianAccount(measured.map((run) => run.account)),
        cpuRuns: measured.map((run) => run.account),
      };
    });
  } finally {
    await context.processes.stop(mesh.sidecars);
  }
}

export interface BuildFigures {
  readonly messagesPerSecond: Spread;
  readonly publisherCpuUsPerMessage: Spread | null;
  readonly subscriberCpuUsPerMessage: Spread | null;
}

function buildFigures(runs: readonly MeasuredRun[]): BuildFigures {
  return {
    messagesPerSecond: spread(runs.map((run) => run.report.messagesPerSecond)),
    publisherCpuUsPerMessage: spreadOrNull(runs.map((run) => run.publisherCpu)),
    subscriberCpuUsPerMessage: spreadOrNull(runs.map((run) => run.subscriberCpu)),
  };
}

/** This build against BENCH_BASELINE_CLI's, both pairs loaded in the same seconds. */
export interface PubSubSideBySide {
  readonly name: string;
  readonly thisBuild: BuildFigures;
  readonly baseline: BuildFigures;
  /** This build's CPU per message over the baseline's, median (min–max) of the per-repetition ratios. */
  readonly publisherCpuRatio: Spread | null;
  readonly subscriberCpuRatio: Spread | null;
  readonly repetitions: number;
  readonly lost: number;
  readonly duplicated: number;
}

function ratios(runs: readonly MeasuredRun[], baselineRuns: readonly MeasuredRun[], side: 'publisherCpu' | 'subscriberCpu'): Spread | null {
  return spreadOrNull(
    runs.map((run, index) => {
      const [mine, theirs] = [run[side], baselineRuns[index]?.[side] ?? null];
      return mine === null || theirs === null || theirs === 0 ? null : mine / theirs;
    }),
  );
}

/**
 * Two sidecar pairs, this build's and the baseline's, each with its own topic and app, on the same CPUs
 * (both A on CPU 0, both B on CPU 1) and loaded at the same moment: whatever else the shared machine
 * does hits both alike, so their CPU per message compares where runs one after the other do not.
 */
async function measurePubSubSideBySide(
  context: TargetContext,
  pinning: Pinning,
  settings: DaprSettings,
  signal: AbortSignal,
  name: string,
  pubsubComponent: Record<string, unknown>,
  topics: { readonly thisBuild: string; readonly baseline: string },
  baselineCli: string,
  brokers: readonly NamedProcess[],
): Promise<PubSubSideBySide> {
  const mine = await startDaprMesh(context, `${name}-sbs`, [pubsubComponent, subscription(topics.thisBuild)], true, settings.sidecarNodeArgs);
  const theirs = await startDaprMesh(context, `${name}-sbs-baseline`, [pubsubComponent, subscription(topics.baseline)], true, settings.sidecarNodeArgs, baselineCli);
  try {
    // Warm-up (JIT, connections, the subscriber ready), not measured.
    const warmUp = warmUpMessages(settings);
    const publisher = settings.publishers[0] ?? 'node';
    const [myTarget, theirTarget] = [runTarget(mine, topics.thisBuild, brokers, settings.leanAppCpu), runTarget(theirs, topics.baseline, brokers, settings.leanAppCpu)];
    await Promise.all([measuredRun(pinning, publisher, myTarget, warmUp, signal), measuredRun(pinning, publisher, theirTarget, warmUp, signal)]);
    const runs: MeasuredRun[] = [];
    const baselineRuns: MeasuredRun[] = [];
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      const [run, baselineRun] = await Promise.all([measuredRun(pinning, publisher, myTarget, settings.messages, signal), measuredRun(pinning, publisher, theirTarget, settings.messages, signal)]);
      runs.push(run);
      baselineRuns.push(baselineRun);
      const cpu = (value: number | null): string => value?.toFixed(0) ?? '-';
      console.log(
        `  ${name} side by side ${repetition + 1}: this build ${run.report.messagesPerSecond.toFixed(0)} msg/s, A ${cpu(run.publisherCpu)} / B ${cpu(run.subscriberCpu)} us; ` +
          `baseline ${baselineRun.report.messagesPerSecond.toFixed(0)} msg/s, A ${cpu(baselineRun.publisherCpu)} / B ${cpu(baselineRun.subscriberCpu)} us`,
      );
    }
    const reports = [...runs, ...baselineRuns].map((run) => run.report);
    return {
      name,
      thisBuild: buildFigures(runs),
      baseline: buildFigures(baselineRuns),
      publisherCpuRatio: ratios(runs, baselineRuns, 'publisherCpu'),
      subscriberCpuRatio: ratios(runs, baselineRuns, 'subscriberCpu'),
      repetitions: runs.length,
      lost: reports.reduce((sum, run) => sum + run.lost, 0),
      duplicated: reports.reduce((sum, run) => sum + run.duplicated, 0),
    };
  } finally {
    await context.processes.stop([...mine.sidecars, ...theirs.sidecars]);
  }
}

async function deleteRabbitNames(topic: string): Promise<void> {
  const amqp = createRequire(import.meta.url)('amqplib') as typeof Amqp;
  const connection = await amqp.connect(AMQP_URL, { timeout: 5000 });
  try {
    const channel = await connection.createChannel();
    await channel.deleteQueue(`${SUBSCRIBER_APP_ID}-${topic}`);
    await channel.deleteExchange(topic);
  } finally {
    await connection.close();
  }
}

async function measureState(context: TargetContext, pinning: Pinning, settings: DaprSettings, redisPort: number, signal: AbortSignal): Promise<StateResult> {
  const mesh = await startDaprMesh(context, DAPR_STATE_GET, [component('store', 'state.redis', { redisHost: `127.0.0.1:${redisPort}` })], false, settings.sidecarNodeArgs);
  try {
    const args = ['--mode', 'state', '--sidecar-port', String(mesh.clientOutbound), '--redis-port', String(redisPort), '--seconds', String(settings.seconds), '--repetitions', String(settings.repetitions)];
    const cpuBefore = treeCpuMicros(mesh.publisher.pid);
    const { repetitions, sidecarRequests } = JSON.parse(await runClient(pinning, args, signal)) as StateReport;
    const cpuAfter = treeCpuMicros(mesh.publisher.pid);
    return {
      name: DAPR_STATE_GET,
      addedP50Us: spread(repetitions.map((run) => run.sidecarP50Us - run.directP50Us)),
      sidecarP50Us: spread(repetitions.map((run) => run.sidecarP50Us)),
      directP50Us: spread(repetitions.map((run) => run.directP50Us)),
      sidecarCpuUsPerGet: cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / sidecarRequests,
      runs: repetitions,
    };
  } finally {
    await context.processes.stop(mesh.sidecars);
  }
}

export async function measureDapr(context: TargetContext, pinning: Pinning, selected: readonly string[], settings: DaprSettings, signal: AbortSignal): Promise<DaprResults> {
  const results: { pubsub: PubSubResult[]; sideBySide: PubSubSideBySide[]; state: StateResult | null } = { pubsub: [], sideBySide: [], state: null };
  const redis = await startRedis(context);
  const redisPort = Number(new URL(redis.url).port);
  // Both brokers are read in every run (the idle one reads ~0): no process on the machine's CPUs goes unnamed.
  const brokers: NamedProcess[] = [
    { label: REDIS_PART, pid: redis.service.pid },
    ...pidsNamed('beam.smp').map((pid, _index, all) => ({ label: all.length === 1 ? RABBITMQ_PART : `${RABBITMQ_PART} pid ${pid}`, pid, alone: true })),
  ];
  try {
    if (selected.includes(DAPR_PUBSUB_REDIS)) {
      const pubsub = component('events', 'pubsub.redis', { redisHost: `127.0.0.1:${redisPort}` });
      results.pubsub.push(...(await measurePubSub(context, pinning, settings, signal, DAPR_PUBSUB_REDIS, pubsub, 'bench', brokers)));
      if (BASELINE_CLI !== undefined) {
        const topics = { thisBuild: 'bench-sbs', baseline: 'bench-sbs-baseline' };
        results.sideBySide.push(await measurePubSubSideBySide(context, pinning, settings, signal, DAPR_PUBSUB_REDIS, pubsub, topics, BASELINE_CLI, brokers));
      }
    }
    if (selected.includes(DAPR_PUBSUB_RABBITMQ)) {
      const topic = `meshgate-bench-${process.pid}-${randomBytes(3).toString('hex')}`;
      const pubsub = component('events', 'pubsub.rabbitmq', { connectionString: AMQP_URL, durable: 'false', deletedWhenUnused: 'false' });
      try {
        results.pubsub.push(...(await measurePubSub(context, pinning, settings, signal, DAPR_PUBSUB_RABBITMQ, pubsub, topic, brokers)));
      } finally {
        await deleteRabbitNames(topic);
      }
      if (BASELINE_CLI !== undefined) {
        const topics = { thisBuild: `${topic}-sbs`, baseline: `${topic}-sbs-baseline` };
        try {
          results.sideBySide.push(await measurePubSubSideBySide(context, pinning, settings, signal, DAPR_PUBSUB_RABBITMQ, pubsub, topics, BASELINE_CLI, brokers));
        } finally {
          await deleteRabbitNames(topics.thisBuild);
          await deleteRabbitNames(topics.baseline);
        }
      }
    }
    if (selected.includes(DAPR_STATE_GET)) results.state = await measureState(context, pinning, settings, redisPort, signal);
  } finally {
    await context.processes.stop([redis.service]);
  }
  return results;
}
