/**
 * Counters user plugins declare (`setup.metrics.counter`), on meshgate's registry, and meshgate's count
 * of their failures (`meshgate_plugin_errors_total`). prom-client allows a
 * name once per registry, and a plugin declares its counters again on every snapshot, so a name maps to
 * one counter for the life of the process; declaring it again with other labels is a config problem.
 */
import { BoundedCounter } from '../../gateway/metrics/registry.js';
import type { PluginCounter, PluginCounterOptions } from '../../gateway/plugin-api/index.js';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const RESERVED_PREFIXES = ['meshgate_', 'istio_', 'envoy_'];

interface Declared {
  readonly labelNames: readonly string[];
  readonly counter: BoundedCounter<string>;
}

const declared = new Map<string, Declared>();

const pluginErrors = new BoundedCounter({
  name: 'meshgate_plugin_errors_total',
  help: 'User plugin hooks that threw or rejected, by plugin (`<ns>/<name>`) and what happened to the request: local_reply (500, FAIL_CLOSE) or skipped (FAIL_OPEN).',
  labelNames: ['plugin', 'outcome'],
});

export function recordPluginError(plugin: string, outcome: 'local_reply' | 'skipped'): void {
  pluginErrors.inc({ plugin, outcome });
}

export type CounterDeclaration = { readonly ok: true; readonly counter: PluginCounter<string> } | { readonly ok: false; readonly problem: string };

export function declarePluginCounter(options: PluginCounterOptions<string>): CounterDeclaration {
  const labelNames = [...(options.labelNames ?? [])];
  if (!METRIC_NAME.test(options.name)) return { ok: false, problem: `metric name "${options.name}" is not a Prometheus metric name` };
  if (RESERVED_PREFIXES.some((prefix) => options.name.startsWith(prefix))) {
    return { ok: false, problem: `metric name "${options.name}" uses a prefix reserved for meshgate's own metrics (${RESERVED_PREFIXES.join(', ')})` };
  }
  const existing = declared.get(options.name);
  if (existing !== undefined) {
    if (existing.labelNames.join('\u0000') !== labelNames.join('\u0000')) {
      return { ok: false, problem: `metric "${options.name}" is already declared with labels [${existing.labelNames.join(', ')}], not [${labelNames.join(', ')}]` };
    }
    return { ok: true, counter: wrap(existing.counter, labelNames) };
  }
  let counter: BoundedCounter<string>;
  try {
    counter = new BoundedCounter({ name: options.name, help: options.help, labelNames });
  } catch (error) {
    return { ok: false, problem: `metric "${options.name}": ${(error as Error).message}` };
  }
  declared.set(options.name, { labelNames, counter });
  return { ok: true, counter: wrap(counter, labelNames) };
}

const NO_LABELS: Readonly<Record<string, string>> = {};

/** A label the caller left out counts as '' (prom-client would throw in the middle of a request). */
function wrap(counter: BoundedCounter<string>, labelNames: readonly string[]): PluginCounter<string> {
  return {
    inc: (labels = NO_LABELS, value = 1) => {
      const complete = labelNames.every((name) => typeof labels[name] === 'string');
      counter.inc(complete ? labels : Object.fromEntries(labelNames.map((name) => [name, labels[name] ?? ''])), value);
    },
  };
}
