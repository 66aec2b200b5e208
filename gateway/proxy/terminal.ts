/**
 * The terminal step (Envoy's router filter): answer a redirect or direct response, or forward to the
 * chosen cluster through the shared upstream layer and relay the response as a stream. Every local
 * answer goes through sendLocalReply, so it always carries its reason.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import { effectiveGrpcTimeoutMs, isGrpcRequest, respondTrailersOnly } from '../http/grpc.js';
import { sendLocalReply } from '../http/local-reply.js';
import type { ProxyEvents } from '../pipeline/capabilities.js';
import type { LocalReply } from '../pipeline/types.js';
import type { CompiledDestination, CompiledRoute, MutableHeaders, RouteRequest } from '../router/types.js';
import { exchange } from '../upstream/forward.js';
import type { UpstreamExchange } from '../upstream/forward.js';
import { chooseDestination } from './destination.js';
import { appendForwardedFor, cleanResponseHeaders, copyRequestHeaders } from './forward-headers.js';
import { HOPS_HEADER, hopsOf } from './loop-guard.js';
import { mirrorRequest } from './mirror.js';
import type { ProxyRequestContext } from './proxy-context.js';
import { attemptsUpgrade, proxyUpgrade } from './websocket.js';
import { forwardedClientCert } from './xfcc.js';

const NO_ROUTE: Record<'no_virtual_host' | 'no_matching_route', LocalReply> = {
  no_virtual_host: { status: 404, flag: 'NR', details: 'route_not_found', message: 'no route: no virtual host serves this host' },
  no_matching_route: { status: 404, flag: 'NR', details: 'route_not_found', message: 'no route: no rule of the virtual host matched this request' },
};

function hasBody(request: FastifyRequest): boolean {
  // HTTP/2 says it by ending the stream with the HEADERS frame or not; a length is optional there.
  const stream = (request.raw as { stream?: { endAfterHeaders: boolean } }).stream;
  if (stream !== undefined) return !stream.endAfterHeaders;
  const headers = request.raw.headers;
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function pathToSend(ctx: ProxyRequestContext, route: CompiledRoute | null, routeRequest: RouteRequest | null): { path: string; original: string | null } {
  const attrs = ctx.attrs;
  const original = attrs.query === '' ? attrs.path : `${attrs.path}?${attrs.query}`;
  if (route === null || routeRequest === null || route.rewrite.path === null) return { path: original, original: null };
  const rewritten = route.rewrite.path(routeRequest);
  // Envoy's x-envoy-original-path is the whole original :path, query string included.
  return rewritten === null ? { path: original, original: null } : { path: rewritten, original };
}

function upstreamHeaders(request: FastifyRequest, ctx: ProxyRequestContext, authority: string): OutgoingHttpHeaders {
  const direction = ctx.listener.direction;
  const attrs = ctx.attrs;
  const headers = copyRequestHeaders(request.headers, direction === 'gateway');
  headers.host = authority;
  headers['x-request-id'] = ctx.requestId;
  headers[HOPS_HEADER] = String(hopsOf(request.headers) + 1);
  if (direction === 'outbound') {
    // The app's credentials and addressing for its own sidecar (Dapr deletes both before forwarding).
    delete headers['dapr-api-token'];
    delete headers['dapr-app-id'];
  }
  if (direction === 'gateway') {
    headers['x-forwarded-for'] = appendForwardedFor(request.headers['x-forwarded-for'], attrs.sourceIp);
    if (ctx.snapshot.mesh.numTrustedProxies === 0 || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = attrs.scheme;
    headers['x-envoy-external-address'] = attrs.remoteIp;
  }
  if (direction === 'inbound') {
    delete headers['x-forwarded-client-cert'];
    if (attrs.peer !== null) headers['x-forwarded-client-cert'] = forwardedClientCert(ctx.snapshot.workload.principal, attrs.peer);
  }
  return headers;
}

function relayResponse(
  reply: FastifyReply,
  ctx: ProxyRequestContext,
  destination: CompiledDestination | null,
  outcome: Extract<UpstreamExchange, { kind: 'response' }>,
  startMs: number,
): FastifyReply {
  const headers: MutableHeaders = cleanResponseHeaders(outcome.headers as Record<string, string | string[] | undefined>);
  const serviceTimeMs = Math.round(performance.now() - startMs);
  headers['x-envoy-upstream-service-time'] = String(serviceTimeMs);
  const route = ctx.route;
  // Route-level operations first, then the picked destination's, so a destination `set` wins (docs/routing.md#header-operations).
  if (route !== null && !route.responseHeaders.isEmpty) route.responseHeaders.apply(headers);
  if (destination !== null && !destination.responseHeaders.isEmpty) destination.responseHeaders.apply(headers);
  if (outcome.setCookie !== undefined) headers['set-cookie'] = appendValue(headers['set-cookie'], outcome.setCookie);
  if (ctx.responseHeaderEdits !== null) Object.assign(headers, ctx.responseHeaderEdits);
  ctx.upstreamHost = outcome.endpoint;
  for (const flag of outcome.flags) if (!ctx.responseFlags.includes(flag)) ctx.responseFlags.push(flag);
  // Headers an earlier step put on the reply (CORS) are sent too, unless the response sets them.
  const preset = reply.getHeaders();
  const sent = Object.keys(preset).length === 0 ? headers : { ...preset, ...headers };
  ctx.relayedHeaders = sent as OutgoingHttpHeaders;
  ctx.upstreamServiceTimeMs = serviceTimeMs;
  // The body goes straight from undici into the client's response, without fastify's stream send;
  // fastify still runs the onResponse hooks when the response finishes.
  reply.hijack();
  // grpc-status in the response headers is a trailers-only answer (its body is empty): it stays one.
  if (outcome.headers['grpc-status'] !== undefined && respondTrailersOnly(reply.raw, outcome.statusCode, sent as OutgoingHttpHeaders)) {
    void outcome.body.discard();
    reply.raw.end();
    return reply;
  }
  reply.raw.writeHead(outcome.statusCode, sent as OutgoingHttpHeaders);
  outcome.body.relayTo(reply.raw);
  return reply;
}

function appendValue(existing: string | string[] | number | undefined, value: string): string[] {
  if (existing === undefined) return [value];
  return Array.isArray(existing) ? [...existing, value] : [String(existing), value];
}

/** Retries and circuit-breaker overflows, for meshgate's upstream metrics (rare paths only; connect failures are read from the cluster at scrape time). */
function recordUpstreamTrouble(events: ProxyEvents, cluster: string, attempts: number, flags: readonly string[]): void {
  for (let retry = 1; retry < attempts; retry++) events.upstreamRetry(cluster);
  if (flags.includes('UO')) events.upstreamOverflow(cluster);
}

export type ProxyHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/** A listener's terminal step, made when the listener opens: it tells `events` of upstream trouble. */
export function createProxyHandler(events: ProxyEvents): ProxyHandler {
  return (request, reply) => proxyRequest(request, reply, events);
}

async function proxyRequest(request: FastifyRequest, reply: FastifyReply, events: ProxyEvents): Promise<FastifyReply> {
  const ctx = request.mesh as ProxyRequestContext;
  if (ctx.noRoute !== null) return sendLocalReply(request, reply, NO_ROUTE[ctx.noRoute]);
  const route = ctx.route;
  const routeRequest = ctx.routeRequest;
  if (route !== null && routeRequest !== null) {
    if (route.cors !== null) {
      const cors = route.cors.decide(routeRequest);
      if (cors.kind === 'preflight') return reply.code(200).headers(cors.headers).send();
      reply.headers(cors.responseHeaders);
    }
    if (route.action.kind === 'redirect') {
      return reply.code(route.action.status).header('location', route.action.location(routeRequest)).send();
    }
    if (route.action.kind === 'direct-response') {
      if (!route.responseHeaders.isEmpty) {
        const headers: MutableHeaders = {};
        route.responseHeaders.apply(headers);
        reply.headers(headers);
      }
      return reply.code(route.action.status).send(route.action.body.length === 0 ? undefined : route.action.body);
    }
  }

  const choice = chooseDestination(ctx, Math.random());
  if (choice.kind === 'reply') return sendLocalReply(request, reply, choice.reply);
  const { cluster, destination } = choice;
  ctx.upstreamCluster = cluster.name;

  const authority =
    destination?.authorityRewrite ?? route?.rewrite.authority ?? (ctx.attrs.authority === '' ? cluster.host : ctx.attrs.authority);
  const headers = upstreamHeaders(request, ctx, authority);
  const { path, original } = pathToSend(ctx, route, routeRequest);
  if (original !== null) headers['x-envoy-original-path'] = original;
  if (route !== null && !route.requestHeaders.isEmpty) route.requestHeaders.apply(headers as MutableHeaders);
  if (destination !== null && !destination.requestHeaders.isEmpty) destination.requestHeaders.apply(headers as MutableHeaders);

  if (attemptsUpgrade(request, route?.upgrades ?? null)) {
    return proxyUpgrade(request, reply, ctx, { cluster, method: request.method, path, headers, ...(choice.passthrough === undefined ? {} : { passthrough: choice.passthrough }) });
  }

  const withBody = hasBody(request);
  if (route !== null && route.mirrors.length > 0 && !withBody) mirrorRequest(ctx, route, request.method, path, headers);

  const startMs = performance.now();
  const grpc = isGrpcRequest(request.headers);
  const outcome = await exchange(cluster, {
    method: request.method,
    path,
    headers: headers as Readonly<Record<string, string | readonly string[] | undefined>>,
    body: withBody ? request.raw : null,
    ...(withBody ? { trailers: () => request.raw.trailers } : {}),
    retry: route?.retry ?? (ctx.listener.direction === 'inbound' ? ctx.snapshot.defaultRetry.inbound : ctx.snapshot.defaultRetry.outbound),
    streamBody: grpc,
    timeoutMs: grpc ? effectiveGrpcTimeoutMs(route?.timeoutMs ?? 0, request.headers) : (route?.timeoutMs ?? 0),
    sourceIp: ctx.attrs.remoteIp,
    signal: null,
    client: reply.raw,
    ...(choice.passthrough === undefined ? {} : { destination: choice.passthrough }),
  });
  if (outcome.attempts > 1 || outcome.flags.length > 0) recordUpstreamTrouble(events, cluster.name, outcome.attempts, outcome.flags);
  if (outcome.kind === 'local') {
    if (outcome.endpoint !== undefined) ctx.upstreamHost = outcome.endpoint;
    for (const flag of outcome.flags) if (!ctx.responseFlags.includes(flag)) ctx.responseFlags.push(flag);
    return sendLocalReply(request, reply, outcome.reply, outcome.extraHeaders);
  }
  return relayResponse(reply, ctx, destination, outcome, startMs);
}
