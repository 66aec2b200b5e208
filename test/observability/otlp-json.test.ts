/**
 * plugins/tracing writes OTLP/JSON itself; OpenTelemetry's own serializer (a devDependency) is the
 * reference it must agree with, field for field.
 */
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { SpanStatus } from '@opentelemetry/api';
import t from 'tap';
import { OtlpTracesRequest, otlpSpanJson, unixNanoOf } from '../../plugins/tracing/otlp-json.js';
import { SpanBatch } from '../../plugins/tracing/span-batch.js';
import type { HopSpanFields } from '../../plugins/tracing/otlp-json.js';

type ReferenceSpan = Parameters<typeof JsonTraceSerializer.serializeRequest>[0][number];

const SERVICE = 'istio-ingressgateway.istio-system';
const resource = resourceFromAttributes({ 'service.name': SERVICE });

function hrTime(epochMs: number): [number, number] {
  const nanos = BigInt(unixNanoOf(epochMs));
  return [Number(nanos / 1_000_000_000n), Number(nanos % 1_000_000_000n)];
}

/** The same finished span as OpenTelemetry's SDK hands it to an exporter. */
function referenceSpan(fields: HopSpanFields, name: string, status: SpanStatus, endEpochMs: number): ReferenceSpan {
  const startTime = hrTime(fields.startEpochMs);
  const endTime = hrTime(endEpochMs);
  return {
    name,
    kind: fields.kind,
    spanContext: () => fields.context,
    parentSpanContext: fields.parent,
    startTime,
    endTime,
    duration: [0, 0],
    status,
    attributes: fields.attributes,
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: { name: 'meshgate' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  } as unknown as ReferenceSpan;
}

const START = 1764169200123.4375;
const spans: [HopSpanFields, string, SpanStatus, number][] = [
  [
    {
      context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 },
      parent: undefined,
      kind: SpanKind.SERVER,
      startEpochMs: START,
      attributes: { 'http.request.method': 'GET', 'url.path': '/a"b\\c\u0001é', 'http.response.status_code': 200, 'meshgate.peer_principal': '' },
    },
    'reviews-route',
    { code: SpanStatusCode.UNSET },
    START + 3.25,
  ],
  [
    {
      context: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 },
      parent: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true },
      kind: SpanKind.SERVER,
      startEpochMs: 1764169200999.75,
      attributes: { ratio: 0.5, sampled: true, list: ['a', 'b'] },
    },
    'api.example.com/*',
    { code: SpanStatusCode.ERROR },
    1764169201000.5,
  ],
];

t.test('a batch of spans is the JSON OpenTelemetry\'s serializer writes for the same spans', async (t) => {
  const batch = new SpanBatch();
  for (const [fields, name, status, end] of spans) batch.add(otlpSpanJson(fields, name, status, end));
  const ours = new OtlpTracesRequest(SERVICE).body(batch.json);
  const reference = JsonTraceSerializer.serializeRequest(spans.map(([fields, name, status, end]) => referenceSpan(fields, name, status, end)));
  t.ok(reference !== undefined);
  t.strictSame(JSON.parse(ours.toString('utf8')), JSON.parse(Buffer.from(reference ?? new Uint8Array()).toString('utf8')));
});

t.test('times are exact decimal nanoseconds, carried into the next second when they round up to it', async (t) => {
  t.equal(unixNanoOf(1764169200123.25), '1764169200123250000');
  t.equal(unixNanoOf(2999.9999996), '3000000000');
  t.equal(unixNanoOf(5), '5000000');
});
