/**
 * Turns the registry and the DestinationRules of one snapshot into cluster definitions: for every
 * service port, the host's default cluster plus one cluster per DR subset (endpoints whose labels are
 * a superset of the subset's), each with its resolved policy (docs/routing.md#policy-resolution). Subset policies therefore apply
 * only to traffic that a route sends to that subset's cluster.
 */
import { labelsMatch } from '../policy/selector.js';
import { clusterName } from './cluster.js';
import type { ClusterDefinition } from './cluster.js';
import type { DestinationRuleIndex } from './destination-rules.js';
import { resolvePolicy } from './policy.js';
import type { RegistryPort, ServiceRegistry } from './registry.js';

/**
 * Istio's upstream protocol choice for GRPC and HTTP2 ports: they always speak HTTP/2 upstream.
 * `h2UpgradePolicy: UPGRADE` on HTTP ports is resolved but not yet acted on (docs/grpc.md): the shipped
 * demo and its tests set it in front of HTTP/1.1-only apps, which h2c prior knowledge would break.
 */
export function speaksHttp2(port: RegistryPort): boolean {
  return port.protocol === 'GRPC' || port.protocol === 'HTTP2';
}

export function buildClusterDefinitions(
  registry: ServiceRegistry,
  destinationRules: DestinationRuleIndex,
): ClusterDefinition[] {
  const definitions: ClusterDefinition[] = [];
  for (const service of registry.services) {
    const rule = destinationRules.lookup(service.host, service.namespace);
    for (const port of service.ports) {
      const endpoints = service.endpoints.get(port.number) ?? [];
      const base = {
        host: service.host,
        port: port.number,
        resolution: service.resolution,
        subjectAltNames: service.subjectAltNames,
      };
      const policy = resolvePolicy(rule?.trafficPolicy, undefined, port.number);
      definitions.push({
        ...base,
        name: clusterName(service.host, port.number, ''),
        subset: '',
        endpoints,
        policy,
        http2: speaksHttp2(port),
      });
      for (const subset of rule?.subsets.values() ?? []) {
        const subsetEndpoints = endpoints.filter((e) => labelsMatch(subset.labels, e.labels));
        const subsetPolicy = resolvePolicy(rule?.trafficPolicy, subset.trafficPolicy, port.number);
        definitions.push({
          ...base,
          name: clusterName(service.host, port.number, subset.name),
          subset: subset.name,
          endpoints: subsetEndpoints,
          policy: subsetPolicy,
          http2: speaksHttp2(port),
        });
      }
    }
  }
  return definitions;
}
