/**
 * The sidecar's outbound route table (docs/routing.md#sidecars): VirtualServices that apply to the
 * mesh (`gateways` omitted or containing `mesh`), one per host — the earliest document wins, later
 * ones are ignored for that host (sidecars never merge). Hosts without a VirtualService are routed
 * by the caller straight to the host (`hasHost` tells which). A host `name.ns.svc.<clusterDomain>` is
 * also served under the names a client may use for it (`name.ns.svc`, `name.ns`, and `name` from its
 * own namespace), unless another VirtualService claims that name itself.
 */
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { hostAliases } from '../config/short-hosts.js';
import { compileVirtualServiceRoutes } from './compile-route.js';
import { MG_ROUTE_DUPLICATE_HOST, routeDiagnostic } from './errors.js';
import { byDocumentOrder, isVisibleTo } from './hosts.js';
import { createRouteTable } from './table.js';
import type { HostRouteTable, VirtualHost } from './table.js';

export interface MeshRouteInput {
  readonly virtualServices: readonly Resource<VirtualServiceSpec>[];
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly proxyNamespace: string;
  readonly clusterDomain: string;
  /** Service port the table is for. Absent: match-level `port` selectors are checked per request
   * against the port in the request's authority (default 80/443 by scheme). */
  readonly port?: number;
  readonly diagnostics?: Diagnostic[];
}

export function appliesToMesh(virtualService: Resource<VirtualServiceSpec>): boolean {
  const gateways = virtualService.spec.gateways ?? [];
  return gateways.length === 0 || gateways.includes('mesh');
}

export function buildMeshRouteTable(input: MeshRouteInput): HostRouteTable {
  const claimed = new Set<string>();
  const virtualHosts: VirtualHost[] = [];
  const aliasHosts: VirtualHost[] = [];
  const candidates = byDocumentOrder(input.virtualServices).filter(
    (vs) => appliesToMesh(vs) && isVisibleTo(vs, input.proxyNamespace),
  );
  for (const virtualService of candidates) {
    const domains: string[] = [];
    for (const [index, rawHost] of (virtualService.spec.hosts ?? []).entries()) {
      const host = rawHost.toLowerCase();
      if (claimed.has(host)) {
        input.diagnostics?.push(
          routeDiagnostic(
            virtualService,
            MG_ROUTE_DUPLICATE_HOST,
            ['spec', 'hosts', index],
            `host ${host} already has an earlier VirtualService; sidecars use only the first one, this one is ignored for it`,
          ),
        );
        continue;
      }
      claimed.add(host);
      domains.push(host);
    }
    if (domains.length === 0) continue;
    const routes = compileVirtualServiceRoutes(
      virtualService,
      {
        listenerPort: input.port ?? null,
        proxyLabels: input.proxyLabels,
        proxyNamespace: input.proxyNamespace,
        gateway: 'mesh',
        virtualServiceNamespace: virtualService.metadata.namespace,
      },
      input.diagnostics,
    );
    virtualHosts.push({ domains, routes });
    aliasHosts.push({ domains: domains.flatMap((host) => hostAliases(host, input.proxyNamespace, input.clusterDomain)), routes });
  }
  // After every host named as written, so that an alias never shadows a VirtualService's own host.
  return createRouteTable([...virtualHosts, ...aliasHosts]);
}
