/**
 * Which workloads a security/ratelimit policy applies to (docs/policies.md#which-policies-apply): a policy in the
 * root namespace applies mesh-wide, otherwise only to its own namespace; `selector.matchLabels`
 * narrows to workloads whose labels are a superset.
 */
import type { WorkloadInfo } from '../pipeline/types.js';

export interface WorkloadSelectorSpec {
  readonly matchLabels?: Readonly<Record<string, string>>;
}

export function labelsMatch(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector)) {
    if (labels[key] !== value) return false;
  }
  return true;
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
