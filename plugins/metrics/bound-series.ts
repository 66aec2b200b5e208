/**
 * Counters and histograms whose series are bound once and then updated with no label work at all.
 * prom-client's `labels(...)` children re-hash and re-validate every label on every update; Istio's
 * series carry 23 labels and a request updates four of them, which made metrics one of the largest
 * costs of a proxied request. Here a bound series is a plain object the caller keeps (IstioSeriesCache
 * binds each label set once), and labels are only touched at scrape time. Binding the same key twice
 * (two caches, one label set) returns the same series, as prom-client merges equal label sets. Both classes register in a
 * prom-client Registry and render exactly as prom-client's own Counter and Histogram do.
 */
import type { Metric, MetricValue, MetricValueWithName, Registry } from 'prom-client';

export type SeriesLabels = Readonly<Record<string, string>>;

interface MetricJson<V> {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: 'sum';
  readonly values: V[];
}

interface RegistrableMetric {
  readonly name: string;
  get(): Promise<MetricJson<MetricValue<string>>>;
  reset(): void;
}

/** The registry only calls name/help/type/aggregator, get() and reset(); prom-client's typings ask for its own class. */
function register(registry: Registry, metric: RegistrableMetric): void {
  registry.registerMetric(metric as unknown as Metric);
}

export class CounterSeries {
  value = 0;
  constructor(readonly labels: SeriesLabels) {}

  inc(): void {
    this.value += 1;
  }

  add(amount: number): void {
    this.value += amount;
  }
}

export class BoundCounter implements RegistrableMetric {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, CounterSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    register(registry, this);
  }

  /** `key` identifies the label set (the caller's joined label values). */
  bind(key: string, labels: SeriesLabels): CounterSeries {
    let series = this.series.get(key);
    if (series === undefined) {
      series = new CounterSeries(labels);
      this.series.set(key, series);
    }
    return series;
  }

  async get(): Promise<MetricJson<MetricValue<string>>> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series.values()].map(({ value, labels }) => ({ value, labels })) };
  }

  /** Zeroes every series (bound handles stay valid, so a series is never lost to a reset). */
  reset(): void {
    for (const series of this.series.values()) series.value = 0;
  }
}

export class HistogramSeries {
  /** Per-bucket (non-cumulative) counts, one per upper bound; values above the last bound only reach `count`. */
  readonly bucketCounts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: SeriesLabels,
    private readonly upperBounds: readonly number[],
  ) {
    this.bucketCounts = new Float64Array(upperBounds.length);
  }

  clear(): void {
    this.bucketCounts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.bucketCounts[i] = (this.bucketCounts[i] as number) + 1;
        return;
      }
    }
  }
}

export class BoundHistogram implements RegistrableMetric {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upperBounds: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.upperBounds = [...buckets].sort((a, b) => a - b);
    register(registry, this);
  }

  /** `key` identifies the label set (the caller's joined label values). */
  bind(key: string, labels: SeriesLabels): HistogramSeries {
    let series = this.series.get(key);
    if (series === undefined) {
      series = new HistogramSeries(labels, this.upperBounds);
      this.series.set(key, series);
    }
    return series;
  }

  /** The same samples, in the same order, as prom-client's Histogram: cumulative buckets, +Inf, _sum, _count. */
  async get(): Promise<MetricJson<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const series of this.series.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, index) => {
        cumulative += series.bucketCounts[index] as number;
        values.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: bucketName });
      });
      values.push({ labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: bucketName });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const series of this.series.values()) series.clear();
  }
}
