/**
 * The tracing plugin: one SERVER span per hop, continued from the incoming W3C/B3 context when it is
 * trusted, and propagated upstream so that the application's spans are children of this hop's span.
 * With no collector configured the snapshot compiles to `null` and the hooks return at once: no
 * spans, no ids, incoming trace headers forwarded untouched.
 */
import { SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import type { Attributes, SpanStatus } from '@opentelemetry/api';
import fastifyPlugin from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { afterResponseHook, runPendingAfterResponse } from '../../gateway/pipeline/after-response.js';
import type { MeshPlugin } from '../../gateway/pipeline/types.js';
import { effectiveMeshConfig } from '../../gateway/config/effective-mesh-config.js';
import { endDeliverySpan, startDeliverySpan } from './delivery-span.js';
import { extractTraceContext, hopIds, injectTraceContext, isSampled, removeTraceHeaders } from './propagation.js';
import type { ExtractedContext, HeaderBag } from './propagation.js';
import { requestTrace, setRequestTrace } from './request-span.js';
import type { RequestTrace } from './request-span.js';
import { otlpHeadersFromEnv } from './otlp-exporter.js';
import { TracingRuntime } from './runtime.js';
import type { HopSpanFields } from './otlp-json.js';
import type { TracingRuntimeSettings } from './runtime.js';
import { otlpTracesUrl, tracingLimits } from './schema.js';
import type { TracingLimits } from './schema.js';

export const TRACING_PLUGIN_NAME = 'tracing';

export interface CompiledTracing {
  readonly runtime: TracingRuntime;
  /** False only at the edge (ingress) when MeshConfig says not to trust clients' trace context. */
  readonly trustIncomingContext: boolean;
}

export interface TracingPlugin extends MeshPlugin<CompiledTracing | null> {
  /** Export every finished span now (tests, shutdown). */
  flush(): Promise<void>;
  /** Flush and stop every exporter this plugin started. */
  shutdown(): Promise<void>;
}

export interface TracingPluginOptions {
  readonly limits?: Partial<TracingLimits>;
  /** Environment consulted for OTEL_EXPORTER_OTLP_* (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** How long a runtime replaced by a reload keeps exporting for requests still in flight. */
  readonly retireAfterMs?: number;
}

export { traceIdOf } from './request-span.js';

/**
 * Parent-based sampling decided here, so that the unsampled majority costs two random ids and a
 * header: no span fields, no attribute map. A trusted incoming context decides for its trace; a new
 * trace is sampled with the configured ratio.
 */
function startHop(request: FastifyRequest, state: CompiledTracing): void {
  const incoming = state.trustIncomingContext ? extractTraceContext(request.headers) : null;
  const sampled = incoming !== null ? isSampled(incoming.spanContext) : state.runtime.settings.samplingRatio > Math.random();
  const format = incoming?.format ?? 'w3c';
  const traceState = incoming?.spanContext.traceState?.serialize() ?? '';
  const { traceId, spanId, traceparent } = hopIds(incoming?.spanContext.traceId ?? null, sampled);
  const span = sampled ? hopSpanFields(request, traceId, spanId, incoming) : null;
  const current: RequestTrace = { traceId, spanId, traceparent, sampled, traceState, format, runtime: state.runtime, span, ended: false };
  setRequestTrace(request, current);
  // Only a span has anything to end when the client goes away first: an unsampled request adds no listener
  // (a fastify onRequestAbort hook would add one to every request).
  if (span !== null) request.raw.once('close', () => endAbortedSpan(request));
  // The forwarded request continues from this hop, whatever the proxy step does with the headers.
  const headers = request.headers as HeaderBag;
  removeTraceHeaders(headers);
  injectTraceContext(headers, current);
}

/** Span attribute values are cut to this many characters (client-controlled ones can be huge). */
const MAX_ATTRIBUTE_LENGTH = 1024;

function bounded(value: string): string {
  return value.length > MAX_ATTRIBUTE_LENGTH ? value.slice(0, MAX_ATTRIBUTE_LENGTH) : value;
}

function hopSpanFields(request: FastifyRequest, traceId: string, spanId: string, incoming: ExtractedContext | null): HopSpanFields {
  const attrs = request.mesh.attrs;
  const attributes: Attributes = {
    'http.request.method': attrs.method,
    'url.path': bounded(attrs.path),
    'url.scheme': attrs.scheme,
    'server.address': bounded(attrs.host),
    'network.peer.address': attrs.sourceIp,
  };
  const userAgent = request.headers['user-agent'];
  if (userAgent !== undefined) attributes['user_agent.original'] = bounded(userAgent);
  return {
    context: { traceId, spanId, traceFlags: TraceFlags.SAMPLED },
    parent: incoming?.spanContext,
    kind: SpanKind.SERVER,
    startEpochMs: performance.timeOrigin + performance.now(),
    attributes,
  };
}

const STATUS_UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const STATUS_ERROR: SpanStatus = { code: SpanStatusCode.ERROR };

/** Ends the hop's span at `endMs` (performance.now() time), once. */
function endSpan(request: FastifyRequest, statusCode: number, extraFlag: string, endMs: number): void {
  const current = requestTrace(request);
  if (current === undefined || current.ended) return;
  current.ended = true;
  const { span } = current;
  if (span === null) return;
  const mesh = request.mesh;
  const flags = extraFlag === '' ? mesh.responseFlags : [...mesh.responseFlags, extraFlag];
  const { attributes } = span;
  attributes['http.response.status_code'] = statusCode;
  attributes['meshgate.route'] = mesh.routeName;
  attributes['meshgate.upstream_cluster'] = mesh.upstreamCluster;
  attributes['meshgate.upstream_host'] = mesh.upstreamHost;
  attributes['meshgate.response_flags'] = flags.length === 0 ? '-' : flags.join(',');
  attributes['meshgate.peer_principal'] = mesh.attrs.peer?.uri ?? '';
  attributes['meshgate.request_id'] = bounded(mesh.requestId);
  const name = mesh.routeName !== '' ? mesh.routeName : `${bounded(mesh.attrs.authority)}/*`;
  current.runtime.finish(span, name, statusCode >= 500 || statusCode === 0 ? STATUS_ERROR : STATUS_UNSET, performance.timeOrigin + endMs);
}

/** The client went away before the response: Envoy's DC (downstream connection termination). As fastify's onRequestAbort, on `aborted`. */
function endAbortedSpan(request: FastifyRequest): void {
  if (request.raw.aborted) endSpan(request, 0, 'DC', performance.now());
}

export function createTracingPlugin(options: TracingPluginOptions = {}): TracingPlugin {
  const limits = tracingLimits(options.limits);
  const env = options.env ?? process.env;
  const retireAfterMs = options.retireAfterMs ?? 30000;
  let active: TracingRuntime | null = null;
  const retiring = new Set<TracingRuntime>();

  function runtimeFor(settings: TracingRuntimeSettings): TracingRuntime {
    if (active !== null && JSON.stringify(active.settings) === JSON.stringify(settings)) return active;
    if (active !== null) retire(active);
    active = new TracingRuntime(settings);
    return active;
  }

  function retire(runtime: TracingRuntime): void {
    retiring.add(runtime);
    setTimeout(() => {
      retiring.delete(runtime);
      void runtime.shutdown();
    }, retireAfterMs).unref();
  }

  function onRequest(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
    const mesh = request.mesh as FastifyRequest['mesh'] | null;
    const state = mesh?.pluginState<CompiledTracing | null>(TRACING_PLUGIN_NAME) ?? null;
    if (state !== null) startHop(request, state);
    done();
  }

  // Only a sampled hop has a span to end; the others propagate their ids and are done.
  const onResponse = afterResponseHook({
    applies: (request) => requestTrace(request)?.span != null,
    run: (request, reply) => endSpan(request, reply.statusCode, '', request.mesh.responseEndMs),
  });

  return {
    name: TRACING_PLUGIN_NAME,
    everyRequest: true,
    compile(input) {
      const { tracing } = effectiveMeshConfig(input.resources);
      const url = otlpTracesUrl(tracing.otlpEndpoint, env);
      if (url === '') {
        if (active !== null) retire(active);
        active = null;
        return null;
      }
      const runtime = runtimeFor({
        url,
        samplingRatio: tracing.samplingPercent / 100,
        serviceName: `${input.workload.name}.${input.workload.namespace}`,
        headers: otlpHeadersFromEnv(env),
        limits,
      });
      return { runtime, trustIncomingContext: input.mode !== 'ingress' || tracing.trustIncomingContext };
    },
    deliveries: {
      started(compiled, delivery) {
        if (compiled !== null) startDeliverySpan((compiled as CompiledTracing).runtime, delivery);
      },
      finished: (_compiled, delivery) => endDeliverySpan(delivery),
    },
    register: fastifyPlugin(
      async (app) => {
        app.addHook('onRequest', onRequest);
        app.addHook('onResponse', onResponse);
      },
      { name: 'meshgate-tracing' },
    ),
    async flush() {
      runPendingAfterResponse();
      for (const runtime of [...retiring, ...(active === null ? [] : [active])]) await runtime.forceFlush();
    },
    async shutdown() {
      runPendingAfterResponse();
      const runtimes = [...retiring, ...(active === null ? [] : [active])];
      retiring.clear();
      active = null;
      await Promise.all(runtimes.map((runtime) => runtime.shutdown()));
    },
  };
}

export const tracingPlugin = createTracingPlugin();
