/** The trace context of the hop a request belongs to, for the access log (`trace_id`) and the proxy step (injection). */
import type { FastifyRequest } from 'fastify';
import type { HopContext } from './propagation.js';
import type { HopSpanFields } from './otlp-json.js';
import type { TracingRuntime } from './runtime.js';

export interface RequestTrace extends HopContext {
  /** Where the span goes when the hop ends (the runtime of the snapshot that started it). */
  readonly runtime: TracingRuntime;
  /** The span being recorded; null for an unsampled request, which only propagates its ids. */
  readonly span: HopSpanFields | null;
  /** A response and an abort can both be reported for one request; the span ends once. */
  ended: boolean;
}

// Kept on the request context rather than in a WeakMap keyed by the request: a short-lived WeakMap key
// is an ephemeron every scavenge has to process, on every request.
export function setRequestTrace(request: FastifyRequest, trace: RequestTrace): void {
  request.mesh.trace = trace;
}

export function requestTrace(request: FastifyRequest): RequestTrace | undefined {
  // Only this module sets `trace`, always to a RequestTrace. (No context: the request failed before the core's first hook.)
  const mesh = request.mesh as FastifyRequest['mesh'] | null;
  return (mesh?.trace as RequestTrace | null | undefined) ?? undefined;
}

/** Hex trace id of the request's hop, or '' when tracing is off. */
export function traceIdOf(request: FastifyRequest): string {
  const mesh = request.mesh as FastifyRequest['mesh'] | null;
  return mesh?.trace?.traceId ?? '';
}
