/**
 * Route selection, run after authentication and authorization (as Envoy's router sees JWT claims and
 * RBAC runs first) and before rate limiting and faults, which depend on the chosen route.
 * Gateway listeners use the table of their port; a sidecar's outbound listener uses the mesh table and,
 * for hosts without a VirtualService, the host's default cluster (decided in the terminal step).
 */
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import type { MeshPlugin } from '../pipeline/types.js';
import type { RouteRequest } from '../router/types.js';
import type { ProxyRequestContext } from './proxy-context.js';

const AUTHORITY_PORT = /:(\d+)$/;

/** The port a route's `port` match sees: a gateway's listener port, else the authority's (or the scheme's default). */
function routedPort(ctx: ProxyRequestContext): number {
  if (ctx.listener.direction === 'gateway') return ctx.listener.port;
  const portMatch = AUTHORITY_PORT.exec(ctx.attrs.authority);
  if (portMatch !== null) return Number(portMatch[1]);
  return ctx.attrs.scheme === 'https' ? 443 : 80;
}

export function routeRequestOf(request: FastifyRequest, ctx: ProxyRequestContext): RouteRequest {
  const attrs = ctx.attrs;
  const port = routedPort(ctx);
  return {
    method: attrs.method,
    authority: attrs.authority,
    host: attrs.host,
    path: attrs.path,
    query: attrs.query,
    scheme: attrs.scheme,
    port,
    headers: request.headers,
    ...(ctx.auth === null ? {} : { claims: ctx.auth.claims }),
  };
}

export function selectRoute(request: FastifyRequest): void {
  const ctx = request.mesh as ProxyRequestContext;
  const direction = ctx.listener.direction;
  if (direction === 'inbound') return;
  const routeRequest = routeRequestOf(request, ctx);
  ctx.routeRequest = routeRequest;
  const table = direction === 'gateway' ? ctx.snapshot.gatewayRoutes.get(ctx.listener.port) : ctx.snapshot.meshRoutes;
  if (table === undefined) {
    ctx.noRoute = 'no_virtual_host';
    return;
  }
  const result = table.match(routeRequest);
  if ('route' in result) {
    ctx.route = result.route;
    ctx.routeName = result.route.name;
  } else if (direction === 'gateway' || result.noRoute === 'no_matching_route') {
    ctx.noRoute = result.noRoute;
  }
}

export const routerStep: MeshPlugin<null> = {
  name: 'router',
  compile: () => null,
  register: fp(
    async (app) => {
      // Synchronous: routing never waits, so it costs no promise per request.
      app.addHook('onRequest', (request, _reply, done) => {
        selectRoute(request);
        done();
      });
    },
    { name: 'meshgate-router', fastify: '5.x' },
  ),
};
