/**
 * The metrics plugin: records Istio's standard request series when each response completes (unless
 * MeshConfig `metrics.enabled` is false: then the hook returns after one lookup).
 * It exposes nothing itself; the admin server serves `renderPrometheus()` / `renderStatsText()`.
 */
import fastifyPlugin from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { effectiveMeshConfig } from './effective-mesh-config.js';
import { compileIstioLabels } from './istio-labels.js';
import type { CompiledIstioLabels } from './istio-labels.js';
import { IstioSeriesCache, istioSeries } from './istio-metrics.js';
import { wireBytes } from './wire-bytes.js';

export const METRICS_PLUGIN_NAME = 'metrics';

export interface MetricsPluginOptions {
  /** Cap on distinct Istio label sets (default DEFAULT_MAX_SERIES, shared process-wide cache). */
  readonly maxSeries?: number;
}

export function createMetricsPlugin(options: MetricsPluginOptions = {}): MeshPlugin<CompiledIstioLabels | null> {
  const cache = options.maxSeries === undefined ? istioSeries : new IstioSeriesCache(options.maxSeries);

  function recordRequest(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const mesh = request.mesh as FastifyRequest['mesh'] | null;
    const compiled = mesh?.pluginState<CompiledIstioLabels | null>(METRICS_PLUGIN_NAME) ?? null;
    if (mesh !== null && compiled !== null) {
      const bytes = wireBytes(request, reply);
      const series = cache.seriesFor(compiled, request, reply);
      series.requests.inc();
      series.duration.observe(performance.now() - mesh.startMs);
      series.requestSize.observe(bytes.received);
      series.responseSize.observe(bytes.sent);
    }
    done();
  }

  return {
    name: METRICS_PLUGIN_NAME,
    compile: (input) => (effectiveMeshConfig(input.resources).metrics.enabled ? compileIstioLabels(input) : null),
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
export { meshRegistry, BoundedCounter, BoundedGauge, BoundedHistogram, boundLabelValue } from './registry.js';
