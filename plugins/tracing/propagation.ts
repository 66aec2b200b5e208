/**
 * Trace-context headers: W3C (`traceparent`, `tracestate`) and B3 (single `b3` and multi `x-b3-*`).
 * Written here because @opentelemetry/propagator-b3 is not a dependency and a propagator is a few
 * lines of parsing. Extraction prefers W3C, then B3 single, then B3 multi; a malformed header is
 * ignored (a new trace starts) rather than failing the request. Injection mirrors the incoming format,
 * and always adds W3C so that applications on either format can continue the trace.
 */
import { TraceFlags } from '@opentelemetry/api';
import type { SpanContext } from '@opentelemetry/api';
import type * as OtelCore from '@opentelemetry/core';
import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';

export type PropagationFormat = 'w3c' | 'b3-single' | 'b3-multi';

export interface ExtractedContext {
  readonly spanContext: SpanContext;
  readonly format: PropagationFormat;
}

/** Every header this module reads or writes, removed from the forwarded request before injection. */
export const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'] as const;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const TRACE_ID = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const ALL_ZERO = /^0+$/;
/** tracestate is client-controlled: beyond this it is dropped rather than parsed and forwarded. */
const MAX_TRACESTATE_LENGTH = 512;

let traceStateClass: typeof OtelCore.TraceState | null = null;

/** @opentelemetry/core is loaded on the first request that carries a `tracestate`, not by every proxy. */
function parseTraceState(value: string): OtelCore.TraceState {
  traceStateClass ??= (createRequire(import.meta.url)('@opentelemetry/core') as typeof OtelCore).TraceState;
  return new traceStateClass(value);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function validIds(traceId: string, spanId: string): boolean {
  return !ALL_ZERO.test(traceId) && !ALL_ZERO.test(spanId);
}

function extractW3c(headers: IncomingHttpHeaders): SpanContext | null {
  const traceparent = single(headers['traceparent'])?.trim().toLowerCase();
  if (traceparent === undefined) return null;
  const match = TRACEPARENT.exec(traceparent);
  if (match === null) return null;
  const [, version = '', traceId = '', spanId = '', flags = '', rest] = match;
  // Version ff is forbidden; version 00 has exactly four fields (later versions may append more).
  if (version === 'ff' || (version === '00' && rest !== undefined) || !validIds(traceId, spanId)) return null;
  const rawState = headers['tracestate'];
  const state = Array.isArray(rawState) ? rawState.join(',') : rawState;
  const spanContext: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
  if (state !== undefined && state !== '' && state.length <= MAX_TRACESTATE_LENGTH) spanContext.traceState = parseTraceState(state);
  return spanContext;
}

/** 64-bit B3 trace ids are left-padded to W3C's 128 bits, as OpenTelemetry's B3 propagator does. */
function b3Context(traceId: string, spanId: string, sampled: boolean): SpanContext | null {
  const trace = traceId.toLowerCase();
  const span = spanId.toLowerCase();
  if (!TRACE_ID.test(trace) || !SPAN_ID.test(span)) return null;
  const padded = trace.padStart(32, '0');
  if (!validIds(padded, span)) return null;
  return { traceId: padded, spanId: span, traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true };
}

function extractB3Single(headers: IncomingHttpHeaders): SpanContext | null {
  const b3 = single(headers['b3'])?.trim();
  if (b3 === undefined) return null;
  const [traceId = '', spanId = '', sampling] = b3.split('-');
  return b3Context(traceId, spanId, sampling === '1' || sampling === 'd');
}

function extractB3Multi(headers: IncomingHttpHeaders): SpanContext | null {
  const traceId = single(headers['x-b3-traceid']);
  const spanId = single(headers['x-b3-spanid']);
  if (traceId === undefined || spanId === undefined) return null;
  const sampled = single(headers['x-b3-sampled'])?.toLowerCase();
  const debug = single(headers['x-b3-flags']) === '1';
  return b3Context(traceId.trim(), spanId.trim(), debug || sampled === '1' || sampled === 'true');
}

export function extractTraceContext(headers: IncomingHttpHeaders): ExtractedContext | null {
  const w3c = extractW3c(headers);
  if (w3c !== null) return { spanContext: w3c, format: 'w3c' };
  const b3Single = extractB3Single(headers);
  if (b3Single !== null) return { spanContext: b3Single, format: 'b3-single' };
  const b3Multi = extractB3Multi(headers);
  if (b3Multi !== null) return { spanContext: b3Multi, format: 'b3-multi' };
  return null;
}

export type HeaderBag = Record<string, string | string[] | number | undefined>;

export function removeTraceHeaders(headers: HeaderBag): void {
  // Deleting a key that is not there is not free either: it can turn the header object into a slow dictionary.
  for (const name of TRACE_HEADERS) if (headers[name] !== undefined) delete headers[name];
}

/** What the next hop needs to continue a trace: this hop's ids, the decision, and the vendor state. */
export interface HopContext {
  readonly traceId: string;
  /** This hop's span id: the parent of whatever the receiver does next. */
  readonly spanId: string;
  readonly sampled: boolean;
  /** Serialised `tracestate`, '' when there is none. */
  readonly traceState: string;
  /** Format the context arrived in; the forwarded request carries the same (plus W3C). */
  readonly format: PropagationFormat;
}

export function isSampled(spanContext: SpanContext): boolean {
  return (spanContext.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
}

/** Headers that make this hop the parent of whatever the receiver does next. */
export function injectTraceContext(headers: HeaderBag, hop: HopContext): void {
  const { traceId, spanId, sampled } = hop;
  headers['traceparent'] = `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
  if (hop.traceState !== '') headers['tracestate'] = hop.traceState;
  if (hop.format === 'b3-single') {
    headers['b3'] = `${traceId}-${spanId}-${sampled ? '1' : '0'}`;
  } else if (hop.format === 'b3-multi') {
    headers['x-b3-traceid'] = traceId;
    headers['x-b3-spanid'] = spanId;
    headers['x-b3-sampled'] = sampled ? '1' : '0';
  }
}

/** A trace id (16 bytes) and a span id (8 bytes), drawn together. */
const ID_BYTES = 24;
const idBuffer = Buffer.allocUnsafe(ID_BYTES);
const ZERO_SPAN_ID = '0'.repeat(16);
const ZERO_TRACE_ID = '0'.repeat(32);

export interface HopIds {
  readonly traceId: string;
  readonly spanId: string;
}

/**
 * A random trace id and span id, neither all zero (invalid in W3C), hex-encoded in one call (the ids
 * are slices of one string). Math.random, as OpenTelemetry's own id generator: ids must be unique,
 * not secret, and this is the unsampled hot path.
 */
export function randomHopIds(): HopIds {
  for (;;) {
    for (let offset = 0; offset < ID_BYTES; offset += 4) idBuffer.writeUInt32BE((Math.random() * 0x1_0000_0000) >>> 0, offset);
    const hex = idBuffer.toString('hex');
    const traceId = hex.slice(0, 32);
    const spanId = hex.slice(32);
    if (traceId !== ZERO_TRACE_ID && spanId !== ZERO_SPAN_ID) return { traceId, spanId };
  }
}
