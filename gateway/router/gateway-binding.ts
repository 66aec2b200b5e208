/**
 * Gateway listeners → one route table per port (docs/routing.md#gateways-and-listeners). A VirtualService binds to a
 * server when it names the Gateway, its namespace is allowed by the server host's namespace part,
 * and one of its hosts intersects one of the server's hosts; the intersections become the virtual
 * host domains. Several VirtualServices on one domain are merged (catch-alls last); a host no
 * VirtualService binds gets no virtual host (404 NR).
 */
import type { GatewaySpec, Server } from '../config/kinds/gateway.js';
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { runSteps } from '../config/steps.js';
import type { Steps } from '../config/steps.js';
import { labelsMatch } from '../config/labels.js';
import type { RouteEntry } from './compile-route.js';
import { compileVirtualServiceRoutes } from './compile-route.js';
import { byDocumentOrder, intersectHosts, isVisibleTo, parseServerHost } from './hosts.js';
import { gatewayRef } from './match.js';
import { createRouteTable, mergeRoutes } from './table.js';
import type { HostRouteTable, VirtualHost } from './table.js';

export interface GatewayRouteInput {
  readonly gateways: readonly Resource<GatewaySpec>[];
  readonly virtualServices: readonly Resource<VirtualServiceSpec>[];
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly proxyNamespace: string;
  /** Rules dropped at compile time are reported here (warnings). */
  readonly diagnostics?: Diagnostic[];
}

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);
const PASSTHROUGH_MODES = new Set(['PASSTHROUGH', 'AUTO_PASSTHROUGH']);

/** Servers whose traffic is routed by VirtualService `http` rules: plain HTTP and terminated HTTPS. */
export function servesHttpRoutes(server: Server): boolean {
  const protocol = server.port.protocol.toUpperCase();
  if (HTTP_PROTOCOLS.has(protocol)) return true;
  return protocol === 'HTTPS' && !PASSTHROUGH_MODES.has(server.tls?.mode ?? 'PASSTHROUGH');
}

interface Binding {
  readonly virtualService: Resource<VirtualServiceSpec>;
  /** `<ns>/<name>` of the Gateway the binding came through (match-level `gateways` filter on it). */
  readonly gateway: string;
}

function boundDomains(server: Server, gatewayNamespace: string, virtualService: Resource<VirtualServiceSpec>): string[] {
  const domains: string[] = [];
  for (const entry of server.hosts) {
    const { namespace, host } = parseServerHost(entry, gatewayNamespace);
    if (namespace !== '*' && namespace !== virtualService.metadata.namespace) continue;
    for (const virtualServiceHost of virtualService.spec.hosts ?? []) {
      const domain = intersectHosts(host, virtualServiceHost);
      if (domain !== null && !domains.includes(domain)) domains.push(domain);
    }
  }
  return domains;
}

function pushUnique(target: Diagnostic[] | undefined, found: readonly Diagnostic[]): void {
  if (target === undefined) return;
  const seen = new Set(target.map((d) => `${d.code}|${d.namespace}|${d.name}|${d.field}|${d.message}`));
  for (const diagnostic of found) {
    const key = `${diagnostic.code}|${diagnostic.namespace}|${diagnostic.name}|${diagnostic.field}|${diagnostic.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      target.push(diagnostic);
    }
  }
}

export function buildGatewayRouteTables(input: GatewayRouteInput): Map<number, HostRouteTable> {
  return runSteps(gatewayRouteTableSteps(input));
}

/** The route tables built as steps, one per virtual service bound and one per virtual host, for a reload that must let requests run (steps.ts). */
export function* gatewayRouteTableSteps(input: GatewayRouteInput): Steps<Map<number, HostRouteTable>> {
  const virtualServices = byDocumentOrder(input.virtualServices).filter((vs) => isVisibleTo(vs, input.proxyNamespace));
  const found: Diagnostic[] = [];
  /** port → domain → bindings, in first-seen order. */
  const bindingsByPort = new Map<number, Map<string, Binding[]>>();

  for (const gateway of byDocumentOrder(input.gateways)) {
    if (!labelsMatch(gateway.spec.selector, input.proxyLabels)) continue;
    const gatewayName = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
    for (const server of gateway.spec.servers) {
      if (!servesHttpRoutes(server)) continue;
      let domains = bindingsByPort.get(server.port.number);
      if (domains === undefined) bindingsByPort.set(server.port.number, (domains = new Map()));
      for (const virtualService of virtualServices) {
        const refs = (virtualService.spec.gateways ?? []).map((ref) => gatewayRef(ref, virtualService.metadata.namespace));
        if (!refs.includes(gatewayName)) continue;
        for (const domain of boundDomains(server, gateway.metadata.namespace, virtualService)) {
          const list = domains.get(domain) ?? [];
          if (!list.some((b) => b.virtualService === virtualService && b.gateway === gatewayName)) {
            list.push({ virtualService, gateway: gatewayName });
          }
          domains.set(domain, list);
        }
        yield;
      }
    }
  }

  const tables = new Map<number, HostRouteTable>();
  for (const [port, domains] of bindingsByPort) {
    // A VirtualService bound on several domains compiles once: its routes are kept by spec and scope (compile-route.ts).
    const routesOf = (binding: Binding): readonly RouteEntry[] =>
      compileVirtualServiceRoutes(
        binding.virtualService,
        {
          listenerPort: port,
          proxyLabels: input.proxyLabels,
          proxyNamespace: input.proxyNamespace,
          gateway: binding.gateway,
          virtualServiceNamespace: binding.virtualService.metadata.namespace,
        },
        found,
      );
    const virtualHosts: VirtualHost[] = [];
    for (const [domain, bindings] of domains) {
      virtualHosts.push({ domains: [domain], routes: mergeRoutes(bindings.map(routesOf)) });
      yield;
    }
    tables.set(port, createRouteTable(virtualHosts));
  }
  pushUnique(input.diagnostics, found);
  return tables;
}
