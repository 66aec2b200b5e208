/**
 * OTLP/JSON text of finished hop spans (opentelemetry-proto's JSON mapping, the same fields and values
 * OpenTelemetry's own JSON serializer writes; test/observability/otlp-json.test.ts compares the two).
 *
 * A span becomes its JSON text when the hop ends, and that text goes straight into the bytes of a
 * batch (span-batch.ts). Queued as span objects (an attribute map, time tuples, contexts), spans waited
 * up to the scheduled delay (5 s), long enough to be promoted to the old generation and cost the
 * collector a graph to trace: measured side by side at 1 % sampling, holding span objects cost 1.3 us
 * per request, serialising and posting them 1.4 us.
 */
import type { AttributeValue, Attributes, SpanContext, SpanKind, SpanStatus } from '@opentelemetry/api';

/** Fields of a hop's span, filled in as the hop goes; the plugin turns them into JSON when the hop ends. */
export interface HopSpanFields {
  readonly context: SpanContext;
  readonly parent: SpanContext | undefined;
  readonly kind: SpanKind;
  readonly startEpochMs: number;
  readonly attributes: Attributes;
}

/** `epochMs` (fractional milliseconds since the epoch) as the decimal nanoseconds OTLP/JSON carries. */
export function unixNanoOf(epochMs: number): string {
  let seconds = Math.floor(epochMs / 1000);
  let nanos = Math.round((epochMs - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return seconds === 0 ? String(nanos) : `${seconds}${String(nanos).padStart(9, '0')}`;
}

/** OTLP's SpanKind counts from SPAN_KIND_UNSPECIFIED = 0; the API's starts at INTERNAL = 0. */
function otlpKind(kind: SpanKind): number {
  return kind + 1;
}

/** W3C trace flags in the low byte, then whether the parent is known to be remote (opentelemetry-proto SpanFlags). */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

function anyValue(value: AttributeValue): string {
  if (typeof value === 'string') return `{"stringValue":${JSON.stringify(value)}}`;
  if (typeof value === 'boolean') return `{"boolValue":${value}}`;
  if (typeof value === 'number') return Number.isInteger(value) ? `{"intValue":${value}}` : `{"doubleValue":${value}}`;
  const values = (value as readonly (string | number | boolean | null | undefined)[]).map((item) => (item === null || item === undefined ? '{}' : anyValue(item)));
  return `{"arrayValue":{"values":[${values.join(',')}]}}`;
}

function attributesJson(attributes: Attributes): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) parts.push(`{"key":${JSON.stringify(key)},"value":${anyValue(value)}}`);
  return parts.join(',');
}

/** One span object of `scopeSpans[].spans`. */
export function otlpSpanJson(fields: HopSpanFields, name: string, status: SpanStatus, endEpochMs: number): string {
  const { context, parent } = fields;
  const parentSpanId = parent === undefined ? '' : `,"parentSpanId":"${parent.spanId}"`;
  const statusJson = status.message === undefined ? `{"code":${status.code}}` : `{"code":${status.code},"message":${JSON.stringify(status.message)}}`;
  const flags = (context.traceFlags & 0xff) | HAS_IS_REMOTE | (parent?.isRemote === true ? IS_REMOTE : 0);
  return (
    `{"traceId":"${context.traceId}","spanId":"${context.spanId}"${parentSpanId},"name":${JSON.stringify(name)},"kind":${otlpKind(fields.kind)}` +
    `,"startTimeUnixNano":"${unixNanoOf(fields.startEpochMs)}","endTimeUnixNano":"${unixNanoOf(endEpochMs)}"` +
    `,"attributes":[${attributesJson(fields.attributes)}],"droppedAttributesCount":0,"events":[],"droppedEventsCount":0` +
    `,"status":${statusJson},"links":[],"droppedLinksCount":0,"flags":${flags}}`
  );
}

/** The request body around a batch of spans (span-batch.ts): one resource (the proxy's service name), one scope. */
export class OtlpTracesRequest {
  private readonly head: Buffer;
  private static readonly TAIL = Buffer.from(']}]}]}', 'latin1');

  constructor(serviceName: string) {
    this.head = Buffer.from(
      `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":${JSON.stringify(serviceName)}}}],"droppedAttributesCount":0}` +
        `,"scopeSpans":[{"scope":{"name":"meshgate"},"spans":[`,
    );
  }

  body(spansJson: Uint8Array): Buffer {
    return Buffer.concat([this.head, spansJson, OtlpTracesRequest.TAIL]);
  }
}
