/** The span of the hop a request belongs to, for the access log (`trace_id`) and the proxy step (injection). */
import type { Span } from '@opentelemetry/api';
import type { FastifyRequest } from 'fastify';

const spans = new WeakMap<FastifyRequest, Span>();

export function setRequestSpan(request: FastifyRequest, span: Span): void {
  spans.set(request, span);
}

export function requestSpan(request: FastifyRequest): Span | undefined {
  return spans.get(request);
}

/** Hex trace id of the request's span, or '' when tracing is off. */
export function traceIdOf(request: FastifyRequest): string {
  return spans.get(request)?.spanContext().traceId ?? '';
}
