/** Shared builders for the router unit tests: requests from URLs, VirtualServices, one-VS tables. */
import type { VirtualServiceSpec } from '../../gateway/config/kinds/virtual-service.js';
import type { Resource } from '../../gateway/config/resource.js';
import { buildMeshRouteTable } from '../../gateway/router/mesh-table.js';
import type { CompiledRoute, RouteRequest, RouteTable } from '../../gateway/router/types.js';
import { makeResource } from '../helpers/resources.js';

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string | string[]>;
  readonly claims?: Record<string, unknown>;
  /** Listener port; defaults to the URL's port or the scheme default. */
  readonly port?: number;
}

/** `http://Host:8080/p?q` → RouteRequest the way gateway/http would present it. */
export function request(url: string, options: RequestOptions = {}): RouteRequest {
  const match = /^(https?):\/\/([^/?]+)([^?]*)(?:\?(.*))?$/.exec(url);
  if (match === null) throw new Error(`bad test url ${url}`);
  const scheme = match[1] as 'http' | 'https';
  const authority = (match[2] ?? '').toLowerCase();
  const colon = authority.lastIndexOf(':');
  const host = colon === -1 ? authority : authority.slice(0, colon);
  const urlPort = colon === -1 ? (scheme === 'https' ? 443 : 80) : Number(authority.slice(colon + 1));
  return {
    method: options.method ?? 'GET',
    authority,
    host,
    path: match[3] === '' ? '/' : (match[3] ?? '/'),
    query: match[4] ?? '',
    scheme,
    port: options.port ?? urlPort,
    headers: options.headers ?? {},
    ...(options.claims !== undefined ? { claims: options.claims } : {}),
  };
}

export function virtualService(
  name: string,
  spec: VirtualServiceSpec,
  namespace = 'default',
): Resource<VirtualServiceSpec> {
  return makeResource('VirtualService', name, spec, { namespace });
}

/** A sidecar table holding the given VirtualServices (the simplest scope: `mesh`, any port). */
export function meshTable(
  specs: readonly Resource<VirtualServiceSpec>[],
  options: { port?: number; labels?: Record<string, string>; namespace?: string } = {},
): RouteTable & { hasHost(host: string): boolean } {
  return buildMeshRouteTable({
    virtualServices: specs,
    proxyLabels: options.labels ?? {},
    proxyNamespace: options.namespace ?? 'default',
    clusterDomain: 'cluster.local',
    ...(options.port !== undefined ? { port: options.port } : {}),
  });
}

/** The route name matched, or the no-route reason. */
export function routed(table: RouteTable, req: RouteRequest): string {
  const result = table.match(req);
  return 'route' in result ? result.route.name : `!${result.noRoute}`;
}

export function mustRoute(table: RouteTable, req: RouteRequest): CompiledRoute {
  const result = table.match(req);
  if (!('route' in result)) throw new Error(`expected a route for ${req.authority}${req.path}, got ${result.noRoute}`);
  return result.route;
}

/** Deterministic PRNG (mulberry32) so statistical tests cannot flake. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}
