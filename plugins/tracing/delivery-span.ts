/**
 * A span per message the sidecar delivers to its app: a CONSUMER span, child of the publisher's context
 * carried in the CloudEvent's `traceparent` (sampled as that context says, else at the configured
 * ratio), covering every post to the app until the message settled. The app receives this span's
 * context as `traceparent`, so its own spans continue the publisher's trace through the delivery.
 */
import { SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import type { Attributes, SpanStatus } from '@opentelemetry/api';
import type { DeliveryRecord, HopTrace, SettledDelivery } from '../../gateway/pipeline/types.js';
import { extractTraceContext, hopIds, isSampled } from './propagation.js';
import type { HopSpanFields } from './otlp-json.js';
import type { TracingRuntime } from './runtime.js';

interface DeliveryTrace extends HopTrace {
  readonly runtime: TracingRuntime;
  /** Null when the delivery is not sampled: it only propagates its ids. */
  readonly span: HopSpanFields | null;
}

const STATUS_UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const STATUS_ERROR: SpanStatus = { code: SpanStatusCode.ERROR };

export function startDeliverySpan(runtime: TracingRuntime, delivery: DeliveryRecord): void {
  const incoming = delivery.publisherTraceparent === '' ? null : extractTraceContext({ traceparent: delivery.publisherTraceparent });
  const sampled = incoming !== null ? isSampled(incoming.spanContext) : runtime.settings.samplingRatio > Math.random();
  const { traceId, spanId, traceparent } = hopIds(incoming?.spanContext.traceId ?? null, sampled);
  let span: HopSpanFields | null = null;
  if (sampled) {
    const attributes: Attributes = {
      'messaging.system': 'dapr',
      'messaging.operation.type': 'process',
      'messaging.destination.name': delivery.topic,
      'messaging.message.id': delivery.eventId,
      'meshgate.pubsub': delivery.pubsubName,
      'http.request.method': 'POST',
      'url.path': delivery.path,
      'server.address': delivery.appAddress,
    };
    span = {
      context: { traceId, spanId, traceFlags: TraceFlags.SAMPLED },
      parent: incoming?.spanContext,
      kind: SpanKind.CONSUMER,
      startEpochMs: performance.timeOrigin + delivery.startMs,
      attributes,
    };
  }
  const trace: DeliveryTrace = { traceId, runtime, span };
  delivery.trace = trace;
  delivery.traceparent = traceparent;
}

export function endDeliverySpan(delivery: SettledDelivery): void {
  // Only this module sets a delivery's trace, always to a DeliveryTrace.
  const trace = delivery.trace as DeliveryTrace | null;
  if (trace === null || trace.span === null) return;
  const { span } = trace;
  span.attributes['http.response.status_code'] = delivery.status;
  span.attributes['meshgate.delivery.attempts'] = delivery.attempts;
  span.attributes['meshgate.delivery.result'] = delivery.result;
  const failed = delivery.result === 'returned-to-broker' || delivery.result === 'dead-lettered';
  trace.runtime.finish(span, `pubsub/${delivery.pubsubName}/${delivery.topic}`, failed ? STATUS_ERROR : STATUS_UNSET, performance.timeOrigin + delivery.endMs);
}
