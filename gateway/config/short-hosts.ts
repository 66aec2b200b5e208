/**
 * Short host names, as Istio resolves them (docs/routing.md#short-host-names): a host without a dot in
 * a VirtualService (`hosts`, every destination) or a DestinationRule (`host`) means
 * `<host>.<resource namespace>.svc.<clusterDomain>` — Istio's ResolveShortnameToFQDN. `*`, IP
 * addresses and names with a dot are kept. ServiceEntry hosts, Gateway server hosts and
 * AuthorizationPolicy `hosts` are never expanded (Istio takes them as written).
 *
 * The loader's resources are rewritten once, before validation, so every later stage (validation,
 * route tables, DestinationRule lookup, clusters, metrics labels, config_dump) sees one name per service.
 */
import { isIP } from 'node:net';
import type { DestinationRuleSpec } from './kinds/destination-rule.js';
import type { Destination, VirtualServiceSpec } from './kinds/virtual-service.js';
import { deepFreeze } from './frozen.js';
import type { Resource } from './resource.js';
import { runSteps } from './steps.js';
import type { Steps } from './steps.js';

export function expandShortHost(host: string, namespace: string, clusterDomain: string): string {
  if (host === '*' || host.includes('.') || isIP(host) !== 0) return host;
  return `${host}.${namespace}.svc.${clusterDomain}`;
}

/**
 * The names a client in `clientNamespace` may use for the service `host` besides the FQDN, as Istio's
 * sidecar virtual hosts accept them: `name.ns.svc` and `name.ns`, plus `name` from the service's own
 * namespace. Hosts outside `*.svc.<clusterDomain>` have no other names.
 */
export function hostAliases(host: string, clientNamespace: string, clusterDomain: string): string[] {
  const suffix = `.svc.${clusterDomain}`;
  if (!host.endsWith(suffix)) return [];
  const [name, namespace, ...rest] = host.slice(0, -suffix.length).split('.');
  if (name === undefined || namespace === undefined || rest.length > 0 || name === '*') return [];
  const aliases = [`${name}.${namespace}.svc`, `${name}.${namespace}`];
  if (namespace === clientNamespace) aliases.push(name);
  return aliases;
}

function expandDestination<D extends { readonly destination: Destination }>(entry: D, expand: (host: string) => string): D {
  return { ...entry, destination: { ...entry.destination, host: expand(entry.destination.host) } };
}

function expandVirtualService(spec: VirtualServiceSpec, expand: (host: string) => string): VirtualServiceSpec {
  return {
    ...spec,
    ...(spec.hosts === undefined ? {} : { hosts: spec.hosts.map(expand) }),
    ...(spec.http === undefined
      ? {}
      : {
          http: spec.http.map((rule) => ({
            ...rule,
            ...(rule.route === undefined ? {} : { route: rule.route.map((d) => expandDestination(d, expand)) }),
            ...(rule.mirror === undefined ? {} : { mirror: { ...rule.mirror, host: expand(rule.mirror.host) } }),
            ...(rule.mirrors === undefined ? {} : { mirrors: rule.mirrors.map((m) => expandDestination(m, expand)) }),
          })),
        }),
    ...(spec.tcp === undefined
      ? {}
      : { tcp: spec.tcp.map((rule) => (rule.route === undefined ? rule : { ...rule, route: rule.route.map((d) => expandDestination(d, expand)) })) }),
    ...(spec.tls === undefined
      ? {}
      : { tls: spec.tls.map((rule) => (rule.route === undefined ? rule : { ...rule, route: rule.route.map((d) => expandDestination(d, expand)) })) }),
  };
}

/**
 * Expanded specs by the loaded spec they came from. A document whose text did not change since the
 * last load keeps its frozen spec (parse-documents.ts), so a reload expands only what changed.
 */
const expandedSpecs = new WeakMap<object, { readonly namespace: string; readonly clusterDomain: string; readonly spec: object }>();

function expandedSpec(resource: Resource<object>, clusterDomain: string): object {
  const { namespace } = resource.metadata;
  const known = expandedSpecs.get(resource.spec);
  if (known !== undefined && known.namespace === namespace && known.clusterDomain === clusterDomain) return known.spec;
  const expand = (host: string): string => expandShortHost(host, namespace, clusterDomain);
  const spec =
    resource.kind === 'VirtualService'
      ? expandVirtualService(resource.spec as VirtualServiceSpec, expand)
      : { ...(resource.spec as DestinationRuleSpec), host: expand((resource.spec as DestinationRuleSpec).host) };
  expandedSpecs.set(resource.spec, { namespace, clusterDomain, spec: deepFreeze(spec) });
  return spec;
}

/** The resources with short hosts expanded, one resource per step; resources without any are returned as they are. */
export function* expandShortHostsSteps(resources: readonly Resource[], clusterDomain: string): Steps<Resource[]> {
  const expanded: Resource[] = [];
  for (const resource of resources) {
    expanded.push(resource.kind === 'VirtualService' || resource.kind === 'DestinationRule' ? { ...resource, spec: expandedSpec(resource as Resource<object>, clusterDomain) } : resource);
    yield;
  }
  return expanded;
}

export function expandShortHosts(resources: readonly Resource[], clusterDomain: string): Resource[] {
  return runSteps(expandShortHostsSteps(resources, clusterDomain));
}

/**
 * Maps the names a client in `clientNamespace` may use (see hostAliases) to the service host they stand
 * for; a name that is itself one of `hosts`, and any other name, maps to itself.
 */
export function serviceHostResolver(hosts: Iterable<string>, clientNamespace: string, clusterDomain: string): (host: string) => string {
  const known = new Set(hosts);
  const aliases = new Map<string, string>();
  for (const host of known) {
    for (const alias of hostAliases(host, clientNamespace, clusterDomain)) if (!known.has(alias) && !aliases.has(alias)) aliases.set(alias, host);
  }
  return (host) => (aliases.size === 0 ? host : (aliases.get(host.toLowerCase()) ?? host));
}
