/**
 * The metrics plugin: records Istio's standard request series for each completed response, in the
 * event-loop turn's after-response batch (unless MeshConfig `metrics.enabled` is false: then the hook
 * returns after one lookup).
 * It opens no port itself: the core serves its `exposition` on the admin and metrics ports, and tells
 * its `proxyEvents` hooks of reloads, certificates, upstream trouble and workers (the series of
 * meshgate-metrics.ts and workers.ts).
 */
import fastifyPlugin from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { afterResponseHook } from '../../gateway/pipeline/after-response.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { effectiveMeshConfig } from '../../gateway/config/effective-mesh-config.js';
import { compileIstioLabels } from './istio-labels.js';
import type { CompiledIstioLabels } from './istio-labels.js';
import { IstioSeriesCache, istioSeries } from './istio-metrics.js';
import {
  observeUpstreams,
  recordAbusiveSession,
  recordPubSubDelivery,
  recordPubSubPublish,
  recordReload,
  recordUpstreamOverflow,
  recordUpstreamRetry,
  removeCertificateExpiry,
  setBuildInfo,
  setCertificateExpiry,
  recordConfigCompile,
  setConfigDiagnostics,
  setConfigGeneration,
} from './meshgate-metrics.js';
import { renderPrometheus, renderStatsText } from './render.js';
import { recordConnectionClosed, recordConnectionOpened, recordConnectionProgress } from './tcp-metrics.js';
import { wireBytes } from '../../gateway/pipeline/wire-bytes.js';
import { recordWorkerRestart, renderMergedPrometheus, renderMergedStatsText, setWorkersRunning, workerConnectionCounter, workerMetricsJson } from './workers.js';
import type { WorkerMetrics } from './workers.js';

export const METRICS_PLUGIN_NAME = 'metrics';

export interface MetricsPluginOptions {
  /** Cap on distinct Istio label sets (default DEFAULT_MAX_SERIES, shared process-wide cache). */
  readonly maxSeries?: number;
}

export function createMetricsPlugin(options: MetricsPluginOptions = {}): MeshPlugin<CompiledIstioLabels | null> {
  const cache = options.maxSeries === undefined ? istioSeries : new IstioSeriesCache(options.maxSeries);

  const compiledFor = (request: FastifyRequest): CompiledIstioLabels | null =>
    (request.mesh as FastifyRequest['mesh'] | null)?.pluginState<CompiledIstioLabels | null>(METRICS_PLUGIN_NAME) ?? null;

  const recordRequest = afterResponseHook({
    applies: (request) => compiledFor(request) !== null,
    run(request, reply) {
      const mesh = request.mesh;
      const bytes = wireBytes(request, reply);
      const series = cache.seriesFor(compiledFor(request) as CompiledIstioLabels, request, reply);
      series.requests.inc();
      series.duration.observe(mesh.responseEndMs - mesh.startMs);
      series.requestSize.observe(bytes.received);
      series.responseSize.observe(bytes.sent);
    },
  });

  return {
    name: METRICS_PLUGIN_NAME,
    everyRequest: true,
    compile: (input) => (effectiveMeshConfig(input.resources).metrics.enabled ? compileIstioLabels(input) : null),
    connections: {
      opened: (compiled, record) => {
        if (compiled !== null) recordConnectionOpened(compiled as CompiledIstioLabels, record);
      },
      progress: (compiled, record) => {
        if (compiled !== null) recordConnectionProgress(compiled as CompiledIstioLabels, record);
      },
      closed: (compiled, record) => {
        if (compiled !== null) recordConnectionClosed(compiled as CompiledIstioLabels, record);
      },
    },
    deliveries: {
      finished: (compiled, delivery) => {
        if (compiled !== null) recordPubSubDelivery(delivery.pubsubName, delivery.topic, delivery.result, delivery.attempts);
      },
    },
    proxyEvents: {
      buildInfo: setBuildInfo,
      configGeneration: setConfigGeneration,
      configDiagnostics: setConfigDiagnostics,
      configCompiled: recordConfigCompile,
      reload: recordReload,
      certificateExpiry: setCertificateExpiry,
      certificateGone: removeCertificateExpiry,
      observeUpstreams,
      upstreamRetry: recordUpstreamRetry,
      upstreamOverflow: recordUpstreamOverflow,
      abusiveSession: recordAbusiveSession,
      pubsubPublish: recordPubSubPublish,
      workersRunning: setWorkersRunning,
      workerRestarted: recordWorkerRestart,
      workerConnectionCounter,
    },
    exposition: {
      prometheus: renderPrometheus,
      statsText: () => renderStatsText(),
      workerSeries: workerMetricsJson,
      // Only workerSeries above makes what the supervisor hands back here.
      mergedPrometheus: (workers) => renderMergedPrometheus(workers as readonly WorkerMetrics[]),
      mergedStatsText: (workers) => renderMergedStatsText(workers as readonly WorkerMetrics[]),
    },
    register: fastifyPlugin(
      async (app) => {
        app.addHook('onResponse', recordRequest);
      },
      { name: 'meshgate-metrics' },
    ),
  };
}

export const metricsPlugin = createMetricsPlugin();

export { renderPrometheus, renderStatsText } from './render.js';
export * from './meshgate-metrics.js';
export * from './workers.js';
