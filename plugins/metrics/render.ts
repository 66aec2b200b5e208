/** What the admin server serves: `/stats/prometheus` + `/metrics` (exposition format) and `/stats` (plain text). */
import type { MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client';
import type { RenderedMetrics } from '../../gateway/pipeline/capabilities.js';
import { meshRegistry, refreshScrapedSeries } from '../../gateway/metrics/registry.js';

export async function renderPrometheus(): Promise<RenderedMetrics> {
  refreshScrapedSeries();
  return { contentType: meshRegistry.contentType, body: await meshRegistry.metrics() };
}

function labelText(labels: Partial<Record<string, string | number>>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}=${value ?? ''}`).join(',')}}`;
}

type AnyMetric = MetricObjectWithValues<MetricValue<string> | MetricValueWithName<string>>;

function histogramLines(metric: AnyMetric): string[] {
  const sums = new Map<string, { labels: string; sum: number; count: number }>();
  for (const value of metric.values) {
    const name = 'metricName' in value ? value.metricName : undefined;
    if (name === undefined || name.endsWith('_bucket')) continue;
    const labels = labelText(value.labels);
    const entry = sums.get(labels) ?? { labels, sum: 0, count: 0 };
    if (name.endsWith('_sum')) entry.sum = value.value;
    else entry.count = value.value;
    sums.set(labels, entry);
  }
  return [...sums.values()].map(({ labels, sum, count }) => {
    const mean = count === 0 ? 0 : sum / count;
    return `${metric.name}${labels}: count=${count} sum=${sum} mean=${Number(mean.toFixed(3))}`;
  });
}

// prom-client's typings declare `type` as an enum its JavaScript never exports; at runtime it is a string.
function isHistogram(metric: AnyMetric): boolean {
  return String(metric.type) === 'histogram';
}

/** One `name{label=value,…}: value` line per series, sorted; histograms as count/sum/mean. */
export async function renderStatsText(registry: Registry = meshRegistry): Promise<string> {
  refreshScrapedSeries();
  const metrics = (await registry.getMetricsAsJSON()) as AnyMetric[];
  const lines: string[] = [];
  for (const metric of metrics) {
    if (isHistogram(metric)) {
      lines.push(...histogramLines(metric));
      continue;
    }
    for (const value of metric.values) lines.push(`${metric.name}${labelText(value.labels)}: ${value.value}`);
  }
  return `${lines.sort().join('\n')}\n`;
}
