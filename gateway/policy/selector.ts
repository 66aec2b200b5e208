/**
 * Which workloads a security/ratelimit policy applies to (docs/policies.md#which-policies-apply): a policy in the
 * root namespace applies mesh-wide, otherwise only to its own namespace; `selector.matchLabels`
 * narrows to workloads whose labels are a superset.
 */
import { labelsMatch } from '../config/labels.js';
import type { WorkloadInfo } from '../pipeline/types.js';

export interface WorkloadSelectorSpec {
  readonly matchLabels?: Readonly<Record<string, string>>;
}

export function policyAppliesTo(
  policyNamespace: string,
  selector: WorkloadSelectorSpec | undefined,
  workload: WorkloadInfo,
  rootNamespace: string,
): boolean {
  if (policyNamespace !== rootNamespace && policyNamespace !== workload.namespace) return false;
  return labelsMatch(selector?.matchLabels, workload.labels);
}
