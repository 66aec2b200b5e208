/**
 * Which proxy this process is. The ingress takes its identity from MeshConfig.ingress; a sidecar is
 * the WorkloadEntry named by `--workload` (its namespace, labels and service account), so that one
 * file describes every proxy of the mesh.
 */
import { makeDiagnostic, type DiagnosticCode } from '../config/diagnostics.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.js';
import type { ProxyMode, WorkloadInfo } from '../pipeline/types.js';

export const MG_WORKLOAD_NOT_FOUND = 'MG0901' satisfies DiagnosticCode;
export const MG_WORKLOAD_AMBIGUOUS = 'MG0902' satisfies DiagnosticCode;
export const MG_WORKLOAD_REQUIRED = 'MG0903' satisfies DiagnosticCode;

const NO_POSITION = { file: '<command line>', line: 0, col: 0 };

function existingWorkloads(workloadEntries: readonly Resource<WorkloadEntrySpec>[]): string {
  if (workloadEntries.length === 0) return 'the config has no WorkloadEntry';
  return `WorkloadEntries: ${workloadEntries.map((entry) => `${entry.metadata.namespace}/${entry.metadata.name}`).join(', ')}`;
}

export function resolveWorkload(
  mode: ProxyMode,
  workloadName: string | undefined,
  workloadEntries: readonly Resource<WorkloadEntrySpec>[],
  mesh: MeshConfigSpec,
  diagnostics: Diagnostic[],
): WorkloadInfo {
  if (mode === 'ingress') {
    const { namespace, serviceAccount, labels } = mesh.ingress;
    return { name: 'ingressgateway', namespace, serviceAccount, labels, principal: `${mesh.trustDomain}/ns/${namespace}/sa/${serviceAccount}` };
  }
  const fallback: WorkloadInfo = { name: workloadName ?? '', namespace: 'default', serviceAccount: 'default', labels: {}, principal: '' };
  if (workloadName === undefined) {
    diagnostics.push(makeDiagnostic(MG_WORKLOAD_REQUIRED, 'sidecar mode needs --workload NAME (a WorkloadEntry name)', NO_POSITION));
    return fallback;
  }
  const [namespacePart, namePart] = workloadName.includes('/') ? workloadName.split('/', 2) : [undefined, workloadName];
  const candidates = workloadEntries.filter(
    (entry) => entry.metadata.name === namePart && (namespacePart === undefined || entry.metadata.namespace === namespacePart),
  );
  if (candidates.length !== 1) {
    diagnostics.push(
      candidates.length === 0
        ? makeDiagnostic(MG_WORKLOAD_NOT_FOUND, `no WorkloadEntry named "${workloadName}" describes this sidecar (${existingWorkloads(workloadEntries)})`, NO_POSITION)
        : makeDiagnostic(
            MG_WORKLOAD_AMBIGUOUS,
            `${candidates.length} WorkloadEntries are named "${workloadName}"; use --workload <namespace>/<name>`,
            candidates[1]?.source ?? NO_POSITION,
          ),
    );
    return fallback;
  }
  const entry = candidates[0] as Resource<WorkloadEntrySpec>;
  const namespace = entry.metadata.namespace;
  const serviceAccount = entry.spec.serviceAccount ?? 'default';
  return {
    name: entry.metadata.name,
    namespace,
    serviceAccount,
    labels: entry.spec.labels ?? {},
    principal: `${mesh.trustDomain}/ns/${namespace}/sa/${serviceAccount}`,
  };
}
