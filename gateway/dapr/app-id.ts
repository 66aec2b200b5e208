/**
 * The sidecar's Dapr app id: the WorkloadEntry's `dapr.io/app-id` annotation (Dapr's own annotation
 * name) when set, else the WorkloadEntry's name — the one file names every proxy, so the override
 * sits on the workload it belongs to.
 */
import { makeDiagnostic } from '../config/diagnostics.js';
import type { DiagnosticCode } from '../config/diagnostics.js';
import { isDns1123Label } from '../config/envelope.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { WorkloadInfo } from '../pipeline/types.js';

export const APP_ID_ANNOTATION = 'dapr.io/app-id';
export const MG_DAPR_BAD_APP_ID = 'MG1306' satisfies DiagnosticCode;

export function daprAppId(resources: readonly Resource[], workload: WorkloadInfo, diagnostics: Diagnostic[]): string {
  const entry = resources.find((r) => r.kind === 'WorkloadEntry' && r.metadata.name === workload.name && r.metadata.namespace === workload.namespace);
  const annotated = entry?.metadata.annotations[APP_ID_ANNOTATION];
  if (entry === undefined || annotated === undefined) return workload.name;
  if (!isDns1123Label(annotated)) {
    diagnostics.push(
      makeDiagnostic(MG_DAPR_BAD_APP_ID, `app id ${JSON.stringify(annotated)} is not a DNS-1123 label (lower-case letters, digits, "-"; no ".")`, entry.at(['metadata', 'annotations', APP_ID_ANNOTATION]), {
        kind: entry.kind,
        namespace: entry.metadata.namespace,
        name: entry.metadata.name,
        field: `metadata.annotations.${APP_ID_ANNOTATION}`,
      }),
    );
    return workload.name;
  }
  return annotated;
}
