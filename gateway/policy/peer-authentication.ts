/**
 * The effective inbound mTLS mode of one workload port (docs/policies.md#peerauthentication-mtls-modes): mesh (root namespace,
 * no selector) → namespace (no selector) → workload (selector) → port-level, each UNSET inheriting,
 * PERMISSIVE when nothing is configured. Within a scope the oldest policy wins (file order here).
 * Selector policies in the root namespace are ignored, as in Istio.
 */
import type { PeerAuthenticationSpec } from '../config/kinds/peer-authentication.js';
import type { Resource } from '../config/resource.js';
import type { WorkloadInfo } from '../pipeline/types.js';
import { labelsMatch } from '../config/labels.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

type ModeSetting = 'UNSET' | MtlsMode;

function firstInOrder<T extends Resource>(resources: readonly T[]): T | undefined {
  let first: T | undefined;
  for (const resource of resources) if (first === undefined || resource.source.order < first.source.order) first = resource;
  return first;
}

function apply(current: MtlsMode, setting: ModeSetting | undefined): MtlsMode {
  return setting === undefined || setting === 'UNSET' ? current : setting;
}

export interface PeerAuthenticationSource {
  /** `namespace/name` of each policy that contributed, narrowest last (for logs and config_dump). */
  readonly policies: readonly string[];
}

export function effectiveMtlsMode(
  policies: readonly Resource<PeerAuthenticationSpec>[],
  workload: WorkloadInfo,
  port: number,
  rootNamespace: string,
): { readonly mode: MtlsMode } & PeerAuthenticationSource {
  const contributed: string[] = [];
  let mode: MtlsMode = 'PERMISSIVE';
  const mesh = firstInOrder(policies.filter((p) => p.metadata.namespace === rootNamespace && p.spec.selector === undefined));
  const namespace =
    workload.namespace === rootNamespace
      ? undefined
      : firstInOrder(policies.filter((p) => p.metadata.namespace === workload.namespace && p.spec.selector === undefined));
  const workloadPolicy = firstInOrder(
    policies.filter(
      (p) =>
        p.metadata.namespace === workload.namespace &&
        p.metadata.namespace !== rootNamespace &&
        p.spec.selector !== undefined &&
        labelsMatch(p.spec.selector.matchLabels, workload.labels),
    ),
  );
  for (const policy of [mesh, namespace, workloadPolicy]) {
    if (policy === undefined) continue;
    contributed.push(`${policy.metadata.namespace}/${policy.metadata.name}`);
    mode = apply(mode, policy.spec.mtls?.mode);
  }
  const portSetting = workloadPolicy?.spec.portLevelMtls?.[String(port)];
  mode = apply(mode, portSetting?.mode);
  return { mode, policies: contributed };
}
