/** The trace context of the hop a request belongs to, for the access log (`trace_id`) and the proxy step (injection). */
import type { Span } from '@opentelemetry/api';
import type { FastifyRequest } from 'fastify';
import type { HopContext } from './propagation.js';

export interface RequestTrace extends HopContext {
  /** The recorded span; null for an unsampled request, which only propagates its ids. */
  readonly span: Span | null;
  /** A response and an abort can both be reported for one request; the span ends once. */
  ended: boolean;
}

const traces = new WeakMap<FastifyRequest, RequestTrace>();

export function setRequestTrace(request: FastifyRequest, trace: RequestTrace): void {
  traces.set(request, trace);
}

export function requestTrace(request: FastifyRequest): RequestTrace | undefined {
  return traces.get(request);
}

/** Hex trace id of the request's hop, or '' when tracing is off. */
export function traceIdOf(request: FastifyRequest): string {
  return traces.get(request)?.traceId ?? '';
}
