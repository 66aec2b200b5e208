/**
 * Turns the registry and the DestinationRules of one snapshot into cluster definitions: for every
 * service port, the host's default cluster plus one cluster per DR subset (endpoints whose labels are
 * a superset of the subset's), each with its resolved policy (docs/routing.md#policy-resolution). Subset policies therefore apply
 * only to traffic that a route sends to that subset's cluster.
 */
import { labelsMatch } from '../config/labels.js';
import { clusterName } from './cluster.js';
import type { ClusterDefinition } from './cluster.js';
import type { DestinationRuleIndex } from './destination-rules.js';
import { isHttp2Protocol } from '../config/port-protocol.js';
import { resolvePolicy } from './policy.js';
import type { ResolvedPolicy } from './policy.js';
import type { RegistryPort, ServiceRegistry } from './registry.js';

/**
 * Istio's upstream protocol choice (`shouldH2Upgrade`, docs/grpc.md#http2-upstreams): GRPC and HTTP2
 * ports always speak HTTP/2 upstream; otherwise the cluster's `h2UpgradePolicy` decides, `UPGRADE`
 * whatever the port's protocol, `DEFAULT` as the mesh-wide policy says for HTTP ports. Istio's
 * `useClientProtocol` turns the upgrade off (meshgate then keeps HTTP/1.1).
 */
export function speaksHttp2(port: RegistryPort, policy: ResolvedPolicy, meshPolicy: MeshH2UpgradePolicy): boolean {
  if (isHttp2Protocol(port.protocol)) return true;
  const pool = policy.connectionPool;
  if (pool.useClientProtocol || pool.h2UpgradePolicy === 'DO_NOT_UPGRADE') return false;
  if (pool.h2UpgradePolicy === 'UPGRADE') return true;
  return meshPolicy === 'UPGRADE' && port.protocol === 'HTTP';
}

export type MeshH2UpgradePolicy = 'DO_NOT_UPGRADE' | 'UPGRADE';

export function buildClusterDefinitions(
  registry: ServiceRegistry,
  destinationRules: DestinationRuleIndex,
  meshPolicy: MeshH2UpgradePolicy,
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
        http2: speaksHttp2(port, policy, meshPolicy),
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
          http2: speaksHttp2(port, subsetPolicy, meshPolicy),
        });
      }
    }
  }
  return definitions;
}
