/**
 * The metrics plugin: records Istio's standard request series for each completed response, in the
 * event-loop turn's after-response batch (unless MeshConfig `metrics.enabled` is false: then the hook
 * returns after one lookup).
 * It exposes nothing itself; the admin server serves `renderPrometheus()` / `renderStatsText()`.
 */
import fastifyPlugin from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { afterResponseHook } from '../../gateway/pipeline/after-response.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { effectiveMeshConfig } from './effective-mesh-config.js';
import { compileIstioLabels } from './istio-labels.js';
import type { CompiledIstioLabels } from './istio-labels.js';
import { IstioSeriesCache, istioSeries } from './istio-metrics.js';
import { recordConnectionClosed, recordConnectionOpened, recordConnectionProgress } from './tcp-metrics.js';
import { wireBytes } from './wire-bytes.js';

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
export type { RenderedMetrics } from './render.js';
export * from './meshgate-metrics.js';
export * from './workers.js';
export { meshRegistry, BoundedCounter, BoundedGauge, BoundedHistogram, boundLabelValue } from './registry.js';
