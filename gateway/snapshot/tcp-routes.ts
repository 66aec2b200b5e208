/**
 * VirtualService `tcp[]` and `tls[]` rules → the ordered L4 rules of one listener port (docs/tcp.md).
 * What a rule says about the source (`sourceLabels`, `sourceNamespace`, `gateways`) and the port is
 * decided here, at load time, for this proxy; per connection only the destination address and the SNI
 * are compared. First matching rule wins; no rule matching closes the connection (NR).
 *
 * A sidecar's egress TCP port serves the services that declare that port: the `tcp[]` rules of the
 * mesh VirtualServices for those hosts (on a TLS port their `tls[]` rules by SNI first), then — when
 * no rule matched — the one service declaring it (Istio identifies TCP traffic without a VIP by its
 * port alone). A Gateway PASSTHROUGH port serves the `tls[]` rules of the VirtualServices bound to its
 * servers, selected by the ClientHello's SNI; a Gateway TCP port, or a TLS port that terminates, their `tcp[]` rules.
 */
import { BlockList, isIPv6 } from 'node:net';
import type { L4MatchAttributes, RouteDestination, TLSMatchAttributes, VirtualServiceSpec } from '../config/kinds/virtual-service.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { labelsMatch } from '../config/labels.js';
import { compileForward } from '../router/compile-route.js';
import { MG_ROUTE_RULE_DROPPED, RouteCompileError, routeDiagnostic } from '../router/errors.js';
import { byDocumentOrder, intersectHosts, isVisibleTo } from '../router/hosts.js';
import { gatewayRef } from '../router/match.js';
import { NO_HEADER_OPS } from '../router/headers.js';
import type { CompiledDestination } from '../router/types.js';
import type { ServiceRegistry } from '../upstream/registry.js';

export interface TcpConnectionView {
  /** The address the client connected to (the listener's local address). */
  readonly destinationIp: string;
  /** SNI of the ClientHello on a passthrough port; '' otherwise. */
  readonly sni: string;
}

export interface TcpRule {
  /** `<ns>/<vs>.tcp[<i>]` or `.tls[<i>]`; the registry service's host for the port's default rule; `auto_passthrough`. */
  readonly name: string;
  readonly matches: (connection: TcpConnectionView) => boolean;
  /** Only AUTO_PASSTHROUGH reads the connection (its destination is in the SNI). */
  readonly pick: (random: number, connection: TcpConnectionView) => CompiledDestination;  /** The client's TLS reaches the destination's own sidecar: relay on plain TCP, never wrapped in this proxy's mTLS (AUTO_PASSTHROUGH). */
  readonly endToEndTls?: boolean;
}

/** The rules of one listener port, in order. */
export interface TcpRouteTable {
  readonly port: number;
  readonly rules: readonly TcpRule[];
}

export interface TcpScope {
  readonly listenerPort: number;
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly proxyNamespace: string;
  /** `mesh` for a sidecar, `<ns>/<name>` of each Gateway whose server the port belongs to. */
  readonly gateways: readonly string[];
}

type L4Match = L4MatchAttributes | TLSMatchAttributes;

function selectsThisProxy(match: L4Match, scope: TcpScope, virtualServiceNamespace: string): boolean {
  if (match.port !== undefined && match.port !== scope.listenerPort) return false;
  if (match.sourceNamespace !== undefined && match.sourceNamespace !== scope.proxyNamespace) return false;
  if (match.sourceLabels !== undefined && !labelsMatch(match.sourceLabels, scope.proxyLabels)) return false;
  if (match.gateways !== undefined && match.gateways.length > 0) {
    const names = match.gateways.map((ref) => gatewayRef(ref, virtualServiceNamespace));
    if (!names.some((name) => scope.gateways.includes(name))) return false;
  }
  return true;
}

function subnetMatcher(subnets: readonly string[] | undefined): ((ip: string) => boolean) | null {
  if (subnets === undefined || subnets.length === 0) return null;
  const list = new BlockList();
  for (const subnet of subnets) {
    const [address = '', prefix] = subnet.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return (ip) => {
    const mapped = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    return list.check(mapped, isIPv6(mapped) ? 'ipv6' : 'ipv4');
  };
}

/** `*.example.com` covers `a.example.com`; `*` everything. */
function sniMatcher(hosts: readonly string[]): (sni: string) => boolean {
  const patterns = hosts.map((host) => host.toLowerCase());
  return (sni) => sni !== '' && patterns.some((pattern) => intersectHosts(pattern, sni.toLowerCase()) === sni.toLowerCase());
}

function compileMatch(match: L4Match): (connection: TcpConnectionView) => boolean {
  const subnets = subnetMatcher(match.destinationSubnets);
  const sni = 'sniHosts' in match ? sniMatcher(match.sniHosts) : null;
  return (connection) => (subnets === null || subnets(connection.destinationIp)) && (sni === null || sni(connection.sni));
}

function compileRules(
  virtualService: Resource<VirtualServiceSpec>,
  kind: 'tcp' | 'tls',
  scope: TcpScope,
  diagnostics: Diagnostic[] | undefined,
): TcpRule[] {
  const rules: TcpRule[] = [];
  const namespace = virtualService.metadata.namespace;
  const source = kind === 'tcp' ? (virtualService.spec.tcp ?? []) : (virtualService.spec.tls ?? []);
  for (const [index, rule] of source.entries()) {
    const matches = (rule.match ?? []).filter((match) => selectsThisProxy(match, scope, namespace));
    // A rule whose every match block names another port, source or gateway is not this listener's.
    if ((rule.match ?? []).length > 0 && matches.length === 0) continue;
    let pick: (random: number) => CompiledDestination;
    try {
      pick = compileDestinations(rule.route ?? [], ['route']);
    } catch (error) {
      if (!(error instanceof RouteCompileError)) throw error;
      diagnostics?.push(routeDiagnostic(virtualService, MG_ROUTE_RULE_DROPPED, ['spec', kind, index, ...error.field], `${kind} rule dropped: ${error.message}`));
      continue;
    }
    const tests = matches.map(compileMatch);
    rules.push({
      name: `${namespace}/${virtualService.metadata.name}.${kind}[${index}]`,
      matches: tests.length === 0 ? () => true : (connection) => tests.some((test) => test(connection)),
      pick,
    });
  }
  return rules;
}

function compileDestinations(route: readonly RouteDestination[], field: readonly (string | number)[]): (random: number) => CompiledDestination {
  if (route.length === 0) throw new RouteCompileError(field, 'a rule needs at least one route destination');
  const forward = compileForward(route, field);
  return (random) => forward.pick(random);
}

function declaresPort(registry: ServiceRegistry, host: string, port: number): boolean {
  return registry.services.some((service) => intersectHosts(service.host, host) !== null && service.ports.some((p) => p.number === port));
}

export interface SidecarTcpInput {
  readonly virtualServices: readonly Resource<VirtualServiceSpec>[];
  readonly registry: ServiceRegistry;
  /** A TLS port: `tls` rules (by SNI) come before the `tcp` rules. */
  readonly sni: boolean;
  readonly scope: TcpScope;
  readonly diagnostics?: Diagnostic[];
}

/** A sidecar egress TCP port: mesh VirtualServices' `tls[]` (TLS port) and `tcp[]` rules for the services on the port, then the service itself. */
export function buildSidecarTcpTable(input: SidecarTcpInput): TcpRouteTable {
  const { scope, registry } = input;
  const kinds: readonly ('tls' | 'tcp')[] = input.sni ? ['tls', 'tcp'] : ['tcp'];
  const candidates = byDocumentOrder(input.virtualServices).filter((vs) => {
    const gateways = vs.spec.gateways ?? [];
    return (gateways.length === 0 || gateways.includes('mesh')) && isVisibleTo(vs, scope.proxyNamespace);
  });
  const rules: TcpRule[] = [];
  for (const kind of kinds) {
    for (const virtualService of candidates) {
      const source = virtualService.spec[kind] ?? [];
      const forPort =
        (virtualService.spec.hosts ?? []).some((host) => declaresPort(registry, host, scope.listenerPort)) ||
        source.some((rule) => (rule.match ?? []).some((match) => match.port === scope.listenerPort));
      if (source.length > 0 && forPort) rules.push(...compileRules(virtualService, kind, scope, input.diagnostics));
    }
  }
  const services = registry.services.filter((service) => service.ports.some((p) => p.number === scope.listenerPort));
  const [only] = services;
  if (services.length === 1 && only !== undefined) {
    const pick = compileDestinations([{ destination: { host: only.host, port: { number: scope.listenerPort } } }], []);
    rules.push({ name: only.host, matches: () => true, pick });
  }
  return { port: scope.listenerPort, rules };
}

export interface GatewayL4Input {
  readonly virtualServices: readonly Resource<VirtualServiceSpec>[];
  /** The servers of the port: their Gateway (`<ns>/<name>`) and hosts. */
  readonly servers: readonly { readonly gateway: string; readonly hosts: readonly { readonly namespace: string; readonly dnsName: string }[] }[];
  readonly scope: TcpScope;
  readonly diagnostics?: Diagnostic[];
}

/**
 * A Gateway L4 port: the `tls[]` rules (PASSTHROUGH servers) or `tcp[]` rules (TCP servers, TLS servers
 * that terminate) of the VirtualServices bound to its gateways whose hosts a server there admits.
 */
export function buildGatewayL4Table(input: GatewayL4Input, kind: 'tls' | 'tcp'): TcpRouteTable {
  const { scope } = input;
  const rules: TcpRule[] = [];
  for (const virtualService of byDocumentOrder(input.virtualServices)) {
    const bound = (virtualService.spec.gateways ?? []).map((ref) => gatewayRef(ref, virtualService.metadata.namespace));
    const admitted = input.servers.some(
      (server) =>
        bound.includes(server.gateway) &&
        server.hosts.some(
          (host) =>
            (host.namespace === '*' || host.namespace === virtualService.metadata.namespace) &&
            (virtualService.spec.hosts ?? []).some((vsHost) => intersectHosts(host.dnsName, vsHost) !== null),
        ),
    );
    if (!admitted) continue;
    rules.push(...compileRules(virtualService, kind, scope, input.diagnostics));
  }
  return { port: scope.listenerPort, rules };
}

/** Istio's SNI for a mesh mTLS connection to `host:port` (subset or ''): what a sidecar sends and AUTO_PASSTHROUGH routes by. */
const MESH_SNI = /^outbound_\.(\d{1,5})_\.([^_]*)_\.(.+)$/;

function meshDestination(sni: string): CompiledDestination | null {
  const parsed = MESH_SNI.exec(sni);
  if (parsed === null) return null;
  const [, port = '', subset = '', host = ''] = parsed;
  return { host, port: Number(port), ...(subset === '' ? {} : { subset }), requestHeaders: NO_HEADER_OPS, responseHeaders: NO_HEADER_OPS, authorityRewrite: null };
}

/**
 * Gateway AUTO_PASSTHROUGH servers (Istio's multi-network east-west gateway): no VirtualService is
 * needed, the destination is the cluster the client's SNI names (`outbound_.<port>_.<subset>_.<host>`),
 * if a server of the port admits that host; the client's mesh mTLS passes through to the destination's
 * sidecar untouched. After the port's `tls` rules.
 */
export function autoPassthroughRule(hosts: readonly string[]): TcpRule {
  const admitted = hosts.map((host) => host.toLowerCase());
  const admits = (host: string): boolean => admitted.some((pattern) => intersectHosts(pattern, host) === host);
  return {
    name: 'auto_passthrough',
    matches: (connection) => {
      const destination = meshDestination(connection.sni.toLowerCase());
      return destination !== null && admits(destination.host);
    },
    pick: (_random, connection) => meshDestination(connection.sni.toLowerCase()) as CompiledDestination,
    endToEndTls: true,
  };
}

/** The first rule matching the connection, or null (the connection is closed with NR). */
export function routeConnection(table: TcpRouteTable | undefined, connection: TcpConnectionView): TcpRule | null {
  if (table === undefined) return null;
  for (const rule of table.rules) if (rule.matches(connection)) return rule;
  return null;
}
