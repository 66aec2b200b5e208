/**
 * The one Prometheus registry of the process, and bounded metric wrappers every module uses to add
 * series to it. It sits in the core so that each plugin defines and counts its own series here without
 * importing another plugin; the metrics plugin exposes the registry. Label values often come from the network (Host header, peer identity), so each value
 * is truncated and each metric has a cap on distinct label sets: beyond it, new label sets collapse
 * into a single `overflow` series and `meshgate_metric_series_dropped_total{metric}` counts them.
 * That keeps a hostile client from growing the scrape (and our memory) without bound.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const meshRegistry = new Registry();

/** Longest label value kept; longer values are cut (Prometheus has no limit, scrapers and TSDBs do). */
export const LABEL_VALUE_MAX_LENGTH = 128;
/** Distinct label sets per metric before new ones collapse into `overflow`. */
export const DEFAULT_MAX_SERIES = 5000;
export const OVERFLOW_LABEL_VALUE = 'overflow';

export type Labels<L extends string> = Readonly<Record<L, string>>;

export interface BoundedMetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly maxSeries?: number;
}

/** How worker threads' values of one gauge merge into the one exposition (counters and histograms add up). */
export type GaugeMerge = 'sum' | 'first' | 'min' | 'max';

export interface BoundedGaugeOptions<L extends string> extends BoundedMetricOptions<L> {
  /** Default `sum`: a per-worker quantity (requests in flight). A per-process fact (build, generation) is not. */
  readonly merge?: GaugeMerge;
}

export function boundLabelValue(value: string): string {
  return value.length > LABEL_VALUE_MAX_LENGTH ? value.slice(0, LABEL_VALUE_MAX_LENGTH) : value;
}

const seriesDropped = new Counter({
  name: 'meshgate_metric_series_dropped_total',
  help: 'Label sets collapsed into the `overflow` series because their metric reached its series cap.',
  labelNames: ['metric'],
  registers: [meshRegistry],
});

const scrapeRefreshers: (() => void)[] = [];

/** A module whose series follow cumulative counts kept elsewhere (a store's state, clusters' ejections) brings them up to date here. */
export function refreshBeforeScrape(refresh: () => void): void {
  scrapeRefreshers.push(refresh);
}

/** What a cumulative count added since the last scrape; a source that started again (a cluster rebuilt by a reload) counts from 0. */
export function sinceLastScrape(seen: Map<string, number>, name: string, total: number): number {
  const previous = seen.get(name) ?? 0;
  seen.set(name, total);
  return total >= previous ? total - previous : total;
}

/** Called by every exposition (the admin and metrics ports, a worker's series for the merge) before it reads the registry. */
export function refreshScrapedSeries(): void {
  for (const refresh of scrapeRefreshers) refresh();
}

/**
 * Admits label sets up to the cap and maps the rest onto the overflow set. Keys are built by the
 * caller (joined label values) so that the hot path never sorts or hashes a label object twice.
 */
export class SeriesGuard<L extends string> {
  private readonly admitted = new Set<string>();
  readonly overflowLabels: Labels<L>;

  constructor(
    private readonly metricName: string,
    labelNames: readonly L[],
    private readonly maxSeries: number,
  ) {
    this.overflowLabels = Object.fromEntries(labelNames.map((name) => [name, OVERFLOW_LABEL_VALUE])) as Labels<L>;
  }

  /** True when the label set identified by `key` may have its own series. */
  admit(key: string): boolean {
    if (this.admitted.has(key)) return true;
    if (this.admitted.size >= this.maxSeries) {
      seriesDropped.inc({ metric: this.metricName });
      return false;
    }
    this.admitted.add(key);
    return true;
  }

  forget(key: string): void {
    this.admitted.delete(key);
  }

  get size(): number {
    return this.admitted.size;
  }
}

function boundedLabels<L extends string>(labelNames: readonly L[], labels: Labels<L>): { key: string; values: Labels<L> } {
  const values = {} as Record<L, string>;
  const parts: string[] = [];
  for (const name of labelNames) {
    const value = boundLabelValue(labels[name]);
    values[name] = value;
    parts.push(value);
  }
  return { key: parts.join('\u0001'), values };
}

/** One label set of a BoundedCounter, held by a hot path that counts it on every request. */
export interface PreparedCounter {
  inc(value?: number): void;
}

/**
 * Counts in plain numbers and hands them to prom-client when the metric is collected (scrape), so an
 * increment costs neither building the label object nor prom-client's hashing of it. Admission is
 * still asked on every increment, as `BoundedCounter.inc` does.
 */
class PreparedSeries<L extends string> implements PreparedCounter {
  private admitted = 0;
  private overflowed = 0;

  constructor(
    private readonly guard: SeriesGuard<L>,
    private readonly key: string,
    private readonly values: Labels<L>,
  ) {}

  inc(value = 1): void {
    if (this.guard.admit(this.key)) this.admitted += value;
    else this.overflowed += value;
  }

  flushInto(metric: Counter<L>): void {
    if (this.admitted > 0) metric.inc(this.values, this.admitted);
    if (this.overflowed > 0) metric.inc(this.guard.overflowLabels, this.overflowed);
    this.admitted = 0;
    this.overflowed = 0;
  }
}

export class BoundedCounter<L extends string> {
  readonly metric: Counter<L>;
  private readonly guard: SeriesGuard<L>;
  private readonly prepared = new Map<string, PreparedSeries<L>>();

  constructor(private readonly options: BoundedMetricOptions<L>) {
    const prepared = this.prepared;
    this.metric = new Counter({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      registers: [meshRegistry],
      collect() {
        for (const series of prepared.values()) series.flushInto(this);
      },
    });
    this.guard = new SeriesGuard(options.name, options.labelNames, options.maxSeries ?? DEFAULT_MAX_SERIES);
  }

  inc(labels: Labels<L>, value = 1): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.metric.inc(this.guard.admit(key) ? values : this.guard.overflowLabels, value);
  }

  /** The series of `labels` for a caller that keeps it and counts through it (same totals as `inc`). */
  series(labels: Labels<L>): PreparedCounter {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    let series = this.prepared.get(key);
    if (series === undefined) {
      series = new PreparedSeries(this.guard, key, values);
      this.prepared.set(key, series);
    }
    return series;
  }
}

export class BoundedGauge<L extends string> {
  readonly metric: Gauge<L>;
  private readonly guard: SeriesGuard<L>;

  constructor(private readonly options: BoundedGaugeOptions<L>) {
    this.metric = new Gauge({ name: options.name, help: options.help, labelNames: options.labelNames, registers: [meshRegistry], aggregator: options.merge ?? 'sum' });
    this.guard = new SeriesGuard(options.name, options.labelNames, options.maxSeries ?? DEFAULT_MAX_SERIES);
  }

  set(labels: Labels<L>, value: number): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.metric.set(this.guard.admit(key) ? values : this.guard.overflowLabels, value);
  }

  inc(labels: Labels<L>, value = 1): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.metric.inc(this.guard.admit(key) ? values : this.guard.overflowLabels, value);
  }

  dec(labels: Labels<L>, value = 1): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.metric.dec(this.guard.admit(key) ? values : this.guard.overflowLabels, value);
  }

  /** Drop a series that no longer describes anything (a removed cluster, a rotated identity). */
  remove(labels: Labels<L>): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.guard.forget(key);
    this.metric.remove(values);
  }
}

export class BoundedHistogram<L extends string> {
  readonly metric: Histogram<L>;
  private readonly guard: SeriesGuard<L>;

  constructor(private readonly options: BoundedMetricOptions<L> & { readonly buckets: readonly number[] }) {
    this.metric = new Histogram({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      buckets: [...options.buckets],
      registers: [meshRegistry],
    });
    this.guard = new SeriesGuard(options.name, options.labelNames, options.maxSeries ?? DEFAULT_MAX_SERIES);
  }

  observe(labels: Labels<L>, value: number): void {
    const { key, values } = boundedLabels(this.options.labelNames, labels);
    this.metric.observe(this.guard.admit(key) ? values : this.guard.overflowLabels, value);
  }
}
