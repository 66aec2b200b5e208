/**
 * The Dapr HTTP API on a sidecar's outbound listener. Its calls get the same metrics, access log and
 * span as proxied traffic (the observer plugins' hooks), and pub/sub checks its scopes. What no building block
 * serves under `/v1.0/` or `/v1.0-alpha1/` is answered at once with a Dapr error: those paths are
 * never forwarded (forwarding them to the sidecar's own address looped). Invocation
 * (`/v1.0/invoke/<id>/method/…` or a `dapr-app-id` header) goes to the proxy step once its app id is
 * known to be a service of the mesh; an unknown id is a Dapr error, not a passthrough attempt.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import { daprInvocation } from '../invocation.js';
import type { DaprApiHost } from './building-block.js';
import { DAPR_BUILDING_BLOCKS } from './building-blocks.js';
import { daprError } from './errors.js';
import { daprSnapshotOf } from './request.js';

const API_TOKEN_HEADER = 'dapr-api-token';

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

/** Dapr exempts only the health checks from the API token (orchestrators probe them without it). */
function isHealthCheck(method: string, path: string): boolean {
  return method === 'GET' && (path === '/v1.0/healthz' || path === '/v1.0/healthz/outbound');
}

function tokenMatches(sent: string | string[] | undefined, expected: string): boolean {
  if (typeof sent !== 'string') return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Synchronous onRequest step, only on outbound listeners: the API token, and invocation of an app id
 * the mesh does not know. Traffic that is neither a Dapr call nor an invocation costs two checks.
 */
function daprGate(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const url = request.raw.url ?? '/';
  const appIdHeader = request.headers['dapr-app-id'];
  if (!url.startsWith('/v1.0') && appIdHeader === undefined) {
    done();
    return;
  }
  const dapr = daprSnapshotOf(request);
  const path = pathOf(url);
  if (dapr.apiToken !== null && !isHealthCheck(request.raw.method ?? '', path) && !tokenMatches(request.headers[API_TOKEN_HEADER], dapr.apiToken)) {
    daprError(request, reply, 401, 'ERR_UNAUTHORIZED', 'invalid api token');
    return;
  }
  const invoked = daprInvocation(path, appIdHeader);
  if (invoked !== null && dapr.invokeHost(invoked.appId) === null) {
    daprError(request, reply, 500, 'ERR_DIRECT_INVOKE', `failed to invoke, id: ${invoked.appId}, err: no service of the mesh has app id "${invoked.appId}"`);
    return;
  }
  done();
}

function unknownApi(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = pathOf(request.raw.url ?? '/');
  if (path.startsWith('/v1.0/invoke')) {
    return daprError(request, reply, 404, 'ERR_DIRECT_INVOKE', 'failed to invoke: the path must be /v1.0/invoke/<app-id>/method/<method>');
  }
  return daprError(request, reply, 404, 'ERR_NOT_FOUND', `the Dapr API of this sidecar has no ${request.raw.method ?? ''} ${path}`);
}

/**
 * The gate (for every request of the listener) and the building blocks' routes, on the context whose
 * hooks are the observers only: the sidecar answers these calls itself, so routing, rate limits,
 * faults and users' plugins, which are about forwarded traffic, never run for them.
 */
export async function registerDaprApi(app: FastifyInstance, host: DaprApiHost): Promise<void> {
  app.addHook('onRequest', daprGate);
  for (const block of DAPR_BUILDING_BLOCKS) await block.register(app, host);
  app.all('/v1.0/*', unknownApi);
  app.all('/v1.0-alpha1/*', unknownApi);
}

/** Invocation is forwarded traffic: its routes go where the whole pipeline runs. */
export function registerDaprInvocation(app: FastifyInstance, proxy: RouteHandlerMethod): void {
  app.all('/v1.0/invoke/:appId/method', proxy);
  app.all('/v1.0/invoke/:appId/method/*', proxy);
}
