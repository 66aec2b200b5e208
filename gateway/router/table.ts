/**
 * The immutable route table of one listener (docs/routing.md#how-a-request-is-routed): virtual host by Host without
 * port — exact domain, then the longest `*.suffix` wildcard, then `*` — and the first route of that
 * virtual host whose predicate holds. Domain lookups are Map hits, never scans of the config.
 */
import type { RouteEntry } from './compile-route.js';
import { RequestView } from './request-view.js';
import type { RouteMatchResult, RouteRequest, RouteTable } from './types.js';

export interface VirtualHost {
  /** Lower-case domains: `a.example.com`, `*.example.com` or `*`. */
  readonly domains: readonly string[];
  readonly routes: readonly RouteEntry[];
}

export interface HostRouteTable extends RouteTable {
  /** Whether some virtual host serves this host (port-less, any case). */
  hasHost(host: string): boolean;
}

const NO_VIRTUAL_HOST: RouteMatchResult = Object.freeze({ noRoute: 'no_virtual_host' as const });
const NO_MATCHING_ROUTE: RouteMatchResult = Object.freeze({ noRoute: 'no_matching_route' as const });

/** Earlier virtual hosts win a domain claimed twice. */
export function createRouteTable(virtualHosts: readonly VirtualHost[]): HostRouteTable {
  const exact = new Map<string, VirtualHost>();
  /** Keyed by the suffix after `*`, e.g. `.example.com`. */
  const wildcard = new Map<string, VirtualHost>();
  let fallback: VirtualHost | null = null;
  for (const virtualHost of virtualHosts) {
    for (const rawDomain of virtualHost.domains) {
      const domain = rawDomain.toLowerCase();
      if (domain === '*') fallback ??= virtualHost;
      else if (domain.startsWith('*.')) {
        if (!wildcard.has(domain.slice(1))) wildcard.set(domain.slice(1), virtualHost);
      } else if (!exact.has(domain)) exact.set(domain, virtualHost);
    }
  }

  const find = (rawHost: string): VirtualHost | null => {
    const host = rawHost.toLowerCase();
    const exactHit = exact.get(host);
    if (exactHit !== undefined) return exactHit;
    if (wildcard.size > 0) {
      // Longest suffix first: `.b.x.com` before `.x.com`. The wildcard needs at least one character.
      for (let dot = host.indexOf('.', 1); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const hit = wildcard.get(host.slice(dot));
        if (hit !== undefined) return hit;
      }
    }
    return fallback;
  };

  return Object.freeze({
    hasHost: (host: string) => find(host) !== null,
    match(req: RouteRequest): RouteMatchResult {
      const virtualHost = find(req.host);
      if (virtualHost === null) return NO_VIRTUAL_HOST;
      const view = new RequestView(req);
      for (const entry of virtualHost.routes) {
        if (entry.test(view)) return { route: entry.route };
      }
      return NO_MATCHING_ROUTE;
    },
  });
}

/** Gateway merging (docs/routing.md#gateways-and-listeners): keep order, move catch-alls behind everything else (stable). */
export function mergeRoutes(routeLists: readonly (readonly RouteEntry[])[]): RouteEntry[] {
  const all = routeLists.flat();
  return [...all.filter((entry) => !entry.catchAll), ...all.filter((entry) => entry.catchAll)];
}
