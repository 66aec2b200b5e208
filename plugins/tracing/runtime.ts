/**
 * One span exporter per distinct tracing configuration: finished hop spans wait in a queue bounded by
 * us and leave in batches as OTLP/HTTP JSON, sent from a thread of their own (exporter.ts), so that
 * every span we give up on is counted (`meshgate_tracing_spans_dropped_total{reason}`) instead of
 * vanishing.
 *
 * Spans are recorded here rather than through the SDK's tracer and batch processor. A proxy has one
 * kind of span, whose fields are all known when the hop ends, and at 1 % sampling the SDK's generic
 * span path runs so rarely that it stays unoptimised for a long time: measured side by side, 1 %
 * sampling cost 7.3 us per request 4-10 s after start and still 2 us after 20 s, against the spans'
 * direct cost of ~0.1 us per request. A finished span is written once, as its OTLP/JSON bytes in a
 * batch (span-batch.ts).
 */
import type { SpanStatus } from '@opentelemetry/api';
import { BoundedCounter } from '../../gateway/metrics/registry.js';
import { SpanExporter } from './exporter.js';
import { otlpSpanJson } from './otlp-json.js';
import { SpanBatch } from './span-batch.js';
import type { HopSpanFields } from './otlp-json.js';
import type { TracingLimits } from './schema.js';

const spansDropped = new BoundedCounter({
  name: 'meshgate_tracing_spans_dropped_total',
  help: 'Sampled spans not delivered to the collector: queue_full (export backlog at its bound) or export_failed.',
  labelNames: ['reason'],
  maxSeries: 4,
});

const spansExported = new BoundedCounter({
  name: 'meshgate_tracing_spans_exported_total',
  help: 'Spans accepted by the OTLP collector.',
  labelNames: [],
});

export interface TracingRuntimeSettings {
  readonly url: string;
  /** 0..1, applied to new traces by the plugin; a trusted parent's decision is followed (parent-based sampling). */
  readonly samplingRatio: number;
  readonly serviceName: string;
  /** Extra request headers for the collector (OTEL_EXPORTER_OTLP_*HEADERS). */
  readonly headers: Readonly<Record<string, string>>;
  readonly limits: TracingLimits;
}

export class TracingRuntime {
  private readonly exporter: SpanExporter;
  /** Finished spans, oldest batch first; only the last one may still be filling. */
  private readonly batches: SpanBatch[] = [];
  /** Spans queued or in an export still running: a slow collector's batches hold memory as much as queued ones. */
  private pending = 0;
  private exporting: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Spans per export: a full batch leaves at once, a partial one after the scheduled delay. */
  private readonly batchSize: number;

  constructor(readonly settings: TracingRuntimeSettings) {
    this.exporter = new SpanExporter({ url: settings.url, serviceName: settings.serviceName, timeoutMs: settings.limits.exportTimeoutMillis, headers: settings.headers });
    this.batchSize = Math.min(settings.limits.maxExportBatchSize, settings.limits.maxQueueSize);
    // Every series starts at 0: a scrape shows them before the first export, and the counting code runs
    // once before traffic. Its first run under load (at the first export's answer) deoptimised ~20 of
    // the proxy's optimised functions at once (V8 "code dependencies"), and recompiling them cost the
    // proxy for seconds.
    spansExported.inc({}, 0);
    for (const reason of ['queue_full', 'export_failed']) spansDropped.inc({ reason }, 0);
  }

  /** Queues the finished hop span for export, or counts it dropped when the backlog is at its bound. */
  finish(fields: HopSpanFields, name: string, status: SpanStatus, endEpochMs: number): void {
    if (this.pending >= this.settings.limits.maxQueueSize) {
      spansDropped.inc({ reason: 'queue_full' });
      return;
    }
    this.pending++;
    let batch = this.batches[this.batches.length - 1];
    if (batch === undefined || batch.spans >= this.batchSize) {
      batch = new SpanBatch();
      this.batches.push(batch);
    }
    batch.add(otlpSpanJson(fields, name, status, endEpochMs));
    this.scheduleExport();
  }

  private scheduleExport(): void {
    const oldest = this.batches[0];
    if (oldest === undefined) return;
    if (oldest.spans >= this.batchSize) this.exportNext();
    else this.timer ??= setTimeout(this.onTimer, this.settings.limits.scheduledDelayMillis).unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.exportNext();
  };

  /** Starts the next batch unless one is already on its way (it starts the next when it ends). */
  private exportNext(): void {
    if (this.exporting !== null || this.batches.length === 0) return;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.batches.shift() as SpanBatch;
    const spans = batch.spans;
    this.exporting = this.exporter
      .export(batch.json)
      .then((accepted) => {
        this.pending -= spans;
        if (accepted) spansExported.inc({}, spans);
        else spansDropped.inc({ reason: 'export_failed' }, spans);
      })
      .finally(() => {
        this.exporting = null;
        this.scheduleExport();
      });
  }

  /** Exports every finished span now and waits for every export started. */
  async forceFlush(): Promise<void> {
    while (this.exporting !== null || this.batches.length > 0) {
      this.exportNext();
      await this.exporting;
    }
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.exporter.shutdown();
  }
}
