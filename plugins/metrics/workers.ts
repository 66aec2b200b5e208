/**
 * Metrics of a proxy running several worker threads: each worker counts into its own registry and
 * sends it as JSON when asked; the supervisor thread merges the workers' series with its own
 * (restarts, and the config's: compiles, reloads, diagnostics, generation) into one exposition — what prom-client's AggregatorRegistry does for node:cluster.
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { BoundedCounter, meshRegistry, refreshScrapedSeries } from '../../gateway/metrics/registry.js';
import { renderStatsText } from './render.js';
import type { RenderedMetrics } from '../../gateway/pipeline/capabilities.js';

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

const supervisorRegistry = new Registry();

const workerRestarts = new Counter({
  name: 'meshgate_worker_restarts_total',
  help: 'Worker threads that stopped without being asked to and were replaced.',
  registers: [supervisorRegistry],
});

const workersRunning = new Gauge({
  name: 'meshgate_workers',
  help: 'Worker threads serving the proxy listeners.',
  registers: [supervisorRegistry],
});

// Registered by the first worker that asks, so that a single-threaded proxy exposes no such series.
let workerConnections: BoundedCounter<'worker'> | null = null;

export function recordWorkerRestart(): void {
  workerRestarts.inc();
}

export function setWorkersRunning(count: number): void {
  workersRunning.set(count);
}

/** The counting function of worker `index`, prepared once so that an accepted connection costs one increment. */
export function workerConnectionCounter(index: number): () => void {
  workerConnections ??= new BoundedCounter({
    name: 'meshgate_worker_connections_total',
    help: 'Client connections accepted on the proxy listeners, by worker thread (how evenly the kernel spreads them).',
    labelNames: ['worker'],
  });
  const series = workerConnections.series({ worker: String(index) });
  return () => series.inc();
}

/** In a worker: its whole registry, for the supervisor to merge. */
export async function workerMetricsJson(): Promise<WorkerMetrics> {
  refreshScrapedSeries();
  return (await meshRegistry.getMetricsAsJSON()) as WorkerMetrics;
}

/** The supervisor alone compiles the config and sees rejected reloads: these series are its thread's, not the workers'. */
const SUPERVISOR_CONFIG_SERIES = ['meshgate_config_compiles_total', 'meshgate_config_reloads_total', 'meshgate_config_diagnostics', 'meshgate_config_generation'];

async function merged(workers: readonly WorkerMetrics[]): Promise<Registry> {
  const config = await Promise.all(SUPERVISOR_CONFIG_SERIES.flatMap((name) => meshRegistry.getSingleMetric(name)?.get() ?? []));
  return AggregatorRegistry.aggregate([...workers, [...(await supervisorRegistry.getMetricsAsJSON()), ...config] as WorkerMetrics]);
}

export async function renderMergedPrometheus(workers: readonly WorkerMetrics[]): Promise<RenderedMetrics> {
  const registry = await merged(workers);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

export async function renderMergedStatsText(workers: readonly WorkerMetrics[]): Promise<string> {
  return renderStatsText(await merged(workers));
}
