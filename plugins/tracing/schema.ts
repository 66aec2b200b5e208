/**
 * Tracing settings. Sampling, the collector endpoint and `trustIncomingContext` come from MeshConfig
 * `tracing`; the exporter bounds below are process options (MeshConfig has no field for them). They
 * are what keeps an unreachable collector from costing memory or latency: a bounded queue whose
 * overflow is dropped and counted, and a short export timeout.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const TracingLimits = Type.Object(
  {
    maxQueueSize: Type.Integer({ minimum: 1, default: 2048, description: 'Finished spans waiting for export; beyond it new spans are dropped and counted.' }),
    maxExportBatchSize: Type.Integer({ minimum: 1, default: 512, description: 'Spans per OTLP request (at most maxQueueSize).' }),
    scheduledDelayMillis: Type.Integer({ minimum: 1, default: 5000, description: 'Delay between two exports.' }),
    exportTimeoutMillis: Type.Integer({ minimum: 100, default: 10000, description: 'How long one OTLP request may take before it is abandoned.' }),
  },
  { additionalProperties: false, description: 'Bounds of the span export pipeline.' },
);
export type TracingLimits = Static<typeof TracingLimits>;

export function tracingLimits(overrides: Partial<TracingLimits> = {}): TracingLimits {
  const limits = Value.Default(TracingLimits, { ...overrides }) as TracingLimits;
  if (!Value.Check(TracingLimits, limits)) throw new Error(`invalid tracing limits: ${JSON.stringify(overrides)}`);
  return limits;
}

/**
 * The OTLP/HTTP traces URL: MeshConfig `tracing.otlpEndpoint` first, then the standard
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) and OTEL_EXPORTER_OTLP_ENDPOINT (+ `/v1/traces`).
 * A MeshConfig endpoint without a path gets `/v1/traces` too. '' means no export (tracing off).
 */
export function otlpTracesUrl(configured: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (configured !== undefined && configured !== '') {
    const url = new URL(configured);
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/traces';
    return url.toString();
  }
  const traces = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];
  if (traces !== undefined && traces !== '') return traces;
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (base !== undefined && base !== '') return `${base.replace(/\/+$/, '')}/v1/traces`;
  return '';
}
