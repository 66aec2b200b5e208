/**
 * One tracer provider per distinct tracing configuration: OTLP/HTTP (JSON) exporter behind a batch
 * processor whose queue is bounded by us, so that every span we give up on is counted
 * (`meshgate_tracing_spans_dropped_total{reason}`) instead of vanishing in the SDK.
 */
import type { Context, Span, Tracer } from '@opentelemetry/api';
import type * as OtelCore from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { createRequire } from 'node:module';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as OtelResources from '@opentelemetry/resources';
import type * as SdkTraceBase from '@opentelemetry/sdk-trace-base';
import type { BasicTracerProvider, ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BoundedCounter } from '../metrics/registry.js';
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

/**
 * Spans held in memory between `onEnd` and the end of their export (queued or in flight): a slow
 * collector holds batches in flight, and those count against the bound as much as queued ones.
 */
class BoundedQueue {
  pending = 0;
  constructor(readonly capacity: number) {}
}

class CountingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly queue: BoundedQueue,
    private readonly successCode: OtelCore.ExportResultCode,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.queue.pending -= spans.length;
      if (result.code === this.successCode) spansExported.inc({}, spans.length);
      else spansDropped.inc({ reason: 'export_failed' }, spans.length);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

class BoundedSpanProcessor implements SpanProcessor {
  constructor(
    private readonly inner: SpanProcessor,
    private readonly queue: BoundedQueue,
  ) {}

  onStart(span: Span & ReadableSpan, parentContext: Context): void {
    this.inner.onStart(span as Parameters<SpanProcessor['onStart']>[0], parentContext);
  }

  onEnd(span: ReadableSpan): void {
    if (this.queue.pending >= this.queue.capacity) {
      spansDropped.inc({ reason: 'queue_full' });
      return;
    }
    this.queue.pending++;
    this.inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

export interface TracingRuntimeSettings {
  readonly url: string;
  /** 0..1, applied to new traces by the plugin; a trusted parent's decision is followed (parent-based sampling). */
  readonly samplingRatio: number;
  readonly serviceName: string;
  readonly limits: TracingLimits;
}

export class TracingRuntime {
  readonly tracer: Tracer;
  private readonly provider: BasicTracerProvider;

  constructor(readonly settings: TracingRuntimeSettings) {
    const { limits } = settings;
    const queue = new BoundedQueue(limits.maxQueueSize);
    // The SDK and the OTLP exporter (~6 MB of RSS together) are loaded only by proxies that export traces.
    const load = createRequire(import.meta.url);
    const { OTLPTraceExporter } = load('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp;
    const { ExportResultCode } = load('@opentelemetry/core') as typeof OtelCore;
    const { resourceFromAttributes } = load('@opentelemetry/resources') as typeof OtelResources;
    const { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor } = load('@opentelemetry/sdk-trace-base') as typeof SdkTraceBase;
    const otlp = new OTLPTraceExporter({ url: settings.url, timeoutMillis: limits.exportTimeoutMillis });
    const exporter = new CountingExporter(otlp, queue, ExportResultCode.SUCCESS);
    const batch = new BatchSpanProcessor(exporter, {
      maxQueueSize: limits.maxQueueSize,
      maxExportBatchSize: Math.min(limits.maxExportBatchSize, limits.maxQueueSize),
      scheduledDelayMillis: limits.scheduledDelayMillis,
      exportTimeoutMillis: limits.exportTimeoutMillis,
    });
    this.provider = new BasicTracerProvider({
      // The plugin decides sampling before it asks for a span (so unsampled requests create none).
      sampler: new AlwaysOnSampler(),
      resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
      spanLimits: { attributeValueLengthLimit: 1024, attributeCountLimit: 64 },
      spanProcessors: [new BoundedSpanProcessor(batch, queue)],
    });
    this.tracer = this.provider.getTracer('meshgate');
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
