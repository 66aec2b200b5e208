/**
 * The capabilities the core takes from its plugin table (gateway/runtime/plugin-capabilities.ts): every
 * plugin's proxy event hooks behind one object, at most one metrics exposition and one explainer, and
 * the shipped table wiring metrics and authorization through them.
 */
import t from 'tap';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import type { DescribedRequest, ProxyEventHooks } from '../../gateway/pipeline/capabilities.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { explainerOf, metricsExpositionOf, proxyEventsOf } from '../../gateway/runtime/plugin-capabilities.js';

function plugin(name: string, extra: Partial<MeshPlugin> = {}): MeshPlugin {
  return { name, compile: () => null, register: async () => undefined, ...extra };
}

t.test('every plugin that hooks an event hears it, in table order; the others cost nothing', async (t) => {
  const heard: string[] = [];
  const hooks = (name: string): ProxyEventHooks => ({
    reload: (result) => heard.push(`${name} reload ${result}`),
    upstreamRetry: (cluster) => heard.push(`${name} retry ${cluster}`),
    observeUpstreams: () => () => heard.push(`${name} stopped observing`),
  });
  const events = proxyEventsOf([plugin('first', { proxyEvents: hooks('first') }), plugin('silent'), plugin('second', { proxyEvents: hooks('second') })]);
  events.reload('rejected');
  events.upstreamRetry('outbound|80||a.default.svc.cluster.local');
  events.abusiveSession('gateway-8080');
  const stop = events.observeUpstreams(() => []);
  t.same(heard, ['first reload rejected', 'second reload rejected', 'first retry outbound|80||a.default.svc.cluster.local', 'second retry outbound|80||a.default.svc.cluster.local']);
  stop();
  t.same(heard.slice(4), ['first stopped observing', 'second stopped observing']);
});

t.test('a worker connection counter is the one plugin\'s own prepared function, or calls each of several', async (t) => {
  let counted = 0;
  const count = (): void => void counted++;
  const counting = plugin('counting', { proxyEvents: { workerConnectionCounter: () => count } });
  t.equal(proxyEventsOf([counting]).workerConnectionCounter(3), count, 'no wrapper on the accept path');
  proxyEventsOf([counting, plugin('other'), counting]).workerConnectionCounter(3)();
  t.equal(counted, 2);
  t.doesNotThrow(() => proxyEventsOf([]).workerConnectionCounter(0)());
});

t.test('at most one plugin serves the metrics; without one the operator ports serve no series of their own', async (t) => {
  const exposition = metricsExpositionOf([plugin('quiet')]);
  t.equal((await exposition.prometheus()).body, '');
  t.equal(await exposition.mergedStatsText([await exposition.workerSeries()]), '');
  const serving = { ...exposition, statsText: async () => 'x 1\n' };
  t.equal(await metricsExpositionOf([plugin('a'), plugin('b', { exposition: serving })]).statsText(), 'x 1\n');
  t.throws(() => metricsExpositionOf([plugin('a', { exposition: serving }), plugin('b', { exposition: serving })]), /plugins a and b both offer the metrics exposition/);
});

t.test('the explainer reads the compiled state of the plugin that explains', async (t) => {
  t.equal(explainerOf([plugin('quiet')]), null);
  const seen: unknown[] = [];
  const explaining = plugin('judge', {
    explain: (compiled, request: DescribedRequest) => {
      seen.push(compiled, request.path);
      return { decision: 'DENY', policy: 'ns/p', ruleIndex: 0, details: 'denied', customPolicy: null, trace: [] };
    },
  });
  const explain = explainerOf([plugin('quiet'), explaining]);
  t.not(explain, null);
  const explanation = explain?.(new Map<string, unknown>([['judge', 'judge state'], ['quiet', 'other state']]), { path: '/x' });
  t.equal(explanation?.decision, 'DENY');
  t.same(seen, ['judge state', '/x']);
  t.throws(() => explainerOf([explaining, { ...explaining, name: 'second' }]), /both offer explanations/);
});

t.test('the shipped table wires metrics and authorization explanations through one plugin each', async (t) => {
  t.same(PIPELINE_PLUGINS.filter((candidate) => candidate.exposition !== undefined).map((candidate) => candidate.name), ['metrics']);
  t.same(PIPELINE_PLUGINS.filter((candidate) => candidate.explain !== undefined).map((candidate) => candidate.name), ['authz']);
  t.ok(PIPELINE_PLUGINS.some((candidate) => candidate.proxyEvents?.reload !== undefined), 'reloads are counted');
});

t.test('the shipped exposition declares the series each plugin defines in its own folder', async (t) => {
  const body = (await metricsExpositionOf(PIPELINE_PLUGINS).prometheus()).body;
  const ownSeries = [
    'meshgate_authz_decisions_total counter',
    'meshgate_ratelimit_decisions_total counter',
    'meshgate_ratelimit_backend_state gauge',
    'meshgate_ratelimit_backend_errors_total counter',
    'meshgate_ratelimit_fallback_decisions_total counter',
    'meshgate_ratelimit_backend_transitions_total counter',
    'meshgate_plugin_errors_total counter',
    'meshgate_access_log_truncated_fields_total counter',
    'meshgate_tracing_spans_exported_total counter',
  ];
  for (const series of ownSeries) t.match(body, `# TYPE ${series}\n`, series.split(' ')[0]);
  // The rate limiter's store statistics reach the scrape (refreshed before it) even before any policy needs the store.
  t.match(body, 'meshgate_ratelimit_backend_state{state="unused"} 1\n');
});
