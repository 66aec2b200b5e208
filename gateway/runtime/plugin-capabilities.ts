/**
 * The capabilities (pipeline/capabilities.ts) of the plugins a runtime, a supervisor or a CLI command
 * is given, gathered once when it is built: the core then calls prepared functions and never looks a
 * plugin up per event or per request.
 */
import type { DescribedRequest, Explanation, MetricsExposition, ProxyEventHooks, ProxyEvents } from '../pipeline/capabilities.js';
import type { MeshPlugin } from '../pipeline/types.js';

/** Every plugin's proxy event hooks behind one object; a hook no plugin has costs an empty loop. */
export function proxyEventsOf(plugins: readonly MeshPlugin[]): ProxyEvents {
  const hooks: readonly ProxyEventHooks[] = plugins.flatMap((plugin) => (plugin.proxyEvents === undefined ? [] : [plugin.proxyEvents]));
  return {
    buildInfo: (version) => {
      for (const hook of hooks) hook.buildInfo?.(version);
    },
    configGeneration: (generation) => {
      for (const hook of hooks) hook.configGeneration?.(generation);
    },
    configDiagnostics: (diagnostics) => {
      for (const hook of hooks) hook.configDiagnostics?.(diagnostics);
    },
    configCompiled: () => {
      for (const hook of hooks) hook.configCompiled?.();
    },
    reload: (result) => {
      for (const hook of hooks) hook.reload?.(result);
    },
    certificateExpiry: (identity, notAfter) => {
      for (const hook of hooks) hook.certificateExpiry?.(identity, notAfter);
    },
    certificateGone: (identity) => {
      for (const hook of hooks) hook.certificateGone?.(identity);
    },
    observeUpstreams: (source) => {
      const stops = hooks.flatMap((hook) => (hook.observeUpstreams === undefined ? [] : [hook.observeUpstreams(source)]));
      return () => {
        for (const stop of stops) stop();
      };
    },
    upstreamRetry: (cluster) => {
      for (const hook of hooks) hook.upstreamRetry?.(cluster);
    },
    upstreamOverflow: (cluster) => {
      for (const hook of hooks) hook.upstreamOverflow?.(cluster);
    },
    abusiveSession: (listener) => {
      for (const hook of hooks) hook.abusiveSession?.(listener);
    },
    pubsubPublish: (pubsub, topic, result) => {
      for (const hook of hooks) hook.pubsubPublish?.(pubsub, topic, result);
    },
    workersRunning: (count) => {
      for (const hook of hooks) hook.workersRunning?.(count);
    },
    workerRestarted: () => {
      for (const hook of hooks) hook.workerRestarted?.();
    },
    workerConnectionCounter: (index) => {
      const counters = hooks.flatMap((hook) => (hook.workerConnectionCounter === undefined ? [] : [hook.workerConnectionCounter(index)]));
      const [only] = counters;
      if (counters.length === 1 && only !== undefined) return only;
      return () => {
        for (const count of counters) count();
      };
    },
  };
}

/** A table without a metrics plugin serves no series of its own (the metrics port still merges the app's). */
const NO_METRICS: MetricsExposition = {
  prometheus: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: '' }),
  statsText: async () => '',
  workerSeries: async () => null,
  mergedPrometheus: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: '' }),
  mergedStatsText: async () => '',
};

function onlyOne<T>(plugins: readonly MeshPlugin[], what: string, has: (plugin: MeshPlugin) => T | undefined): { plugin: MeshPlugin; value: T } | null {
  const offering = plugins.flatMap((plugin) => {
    const value = has(plugin);
    return value === undefined ? [] : [{ plugin, value }];
  });
  if (offering.length > 1) throw new Error(`plugins ${offering.map(({ plugin }) => plugin.name).join(' and ')} both offer ${what}; a table may have one`);
  return offering[0] ?? null;
}

export function metricsExpositionOf(plugins: readonly MeshPlugin[]): MetricsExposition {
  return onlyOne(plugins, 'the metrics exposition', (plugin) => plugin.exposition)?.value ?? NO_METRICS;
}

/** Explains a described request with the compiled state of one snapshot. */
export type Explainer = (pluginStates: ReadonlyMap<string, unknown>, request: DescribedRequest) => Explanation;

/** Null when no plugin of the table explains its decisions. */
export function explainerOf(plugins: readonly MeshPlugin[]): Explainer | null {
  const found = onlyOne(plugins, 'explanations', (plugin) => plugin.explain?.bind(plugin));
  if (found === null) return null;
  const { plugin, value: explain } = found;
  return (pluginStates, request) => explain(pluginStates.get(plugin.name), request);
}
