/**
 * Clusters the core adds beside the registry's: a sidecar's local app, one per ingress port
 * (`inbound|<port>||`, looked up by INBOUND_APP_HOST and the listener port), and the
 * passthrough cluster for sidecar outbound traffic to hosts outside the registry (ALLOW_ANY).
 */
import type { ClusterDefinition } from '../upstream/cluster.js';
import { resolvePolicy } from '../upstream/policy.js';
import type { SidecarPlan } from './sidecar-plan.js';

/** Registry-invisible host keys: they contain '|', which no DNS name or ServiceEntry host can. */
export const INBOUND_APP_HOST = 'inbound|app';
export const PASSTHROUGH_HOST = 'passthrough|any';

export function coreClusterDefinitions(sidecar: SidecarPlan | null, namespace: string): ClusterDefinition[] {
  if (sidecar === null) return [];
  const definitions: ClusterDefinition[] = [];
  for (const { port, http2, appHost, appPort } of sidecar.ingress) {
    definitions.push({
      name: `inbound|${port}||`,
      host: INBOUND_APP_HOST,
      port,
      subset: '',
      resolution: 'STATIC',
      endpoints: [{ address: appHost, port: appPort, labels: {}, weight: 1, serviceAccount: '', locality: '', namespace, meshWorkload: false }],
      policy: resolvePolicy(undefined, undefined, appPort),
      subjectAltNames: [],
      http2,
    });
  }
  if (sidecar.outbound !== null && sidecar.outboundTrafficPolicy === 'ALLOW_ANY') {
    definitions.push({
      name: 'PassthroughCluster',
      host: PASSTHROUGH_HOST,
      port: 0,
      subset: '',
      resolution: 'NONE',
      endpoints: [],
      policy: resolvePolicy(undefined, undefined, 0),
      subjectAltNames: [],
    });
  }
  return definitions;
}
