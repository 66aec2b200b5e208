/**
 * A sidecar's shape comes from Istio's own `Sidecar` resource: `ingress[0]` is the inbound listener and
 * its `defaultEndpoint` the local app; `egress[0]` is the outbound listener the app calls. A
 * WorkloadEntry that some Sidecar selects runs a mesh proxy, so it is marked with Istio's tlsMode label
 * and clients reach it with mesh mTLS (auto-mTLS) — the same signal Istio itself uses.
 */
import { makeDiagnostic, type DiagnosticCode } from '../config/diagnostics.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { SidecarSpec } from '../config/kinds/sidecar.js';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { WorkloadInfo } from '../pipeline/types.js';
import { labelsMatch } from '../policy/selector.js';
import { TLS_MODE_LABEL } from '../upstream/registry.js';

export const MG_SIDECAR_MISSING = 'MG0904' satisfies DiagnosticCode;
export const MG_SIDECAR_BAD_ENDPOINT = 'MG0905' satisfies DiagnosticCode;

export const DEFAULT_OUTBOUND_PORT = 15001;

export interface SidecarPlan {
  /** `namespace/name` of the Sidecar resource. */
  readonly source: string;
  readonly inbound: { readonly bind: string; readonly port: number; readonly appHost: string; readonly appPort: number } | null;
  readonly outbound: { readonly bind: string; readonly port: number } | null;
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

function selects(sidecar: Resource<SidecarSpec>, namespace: string, labels: Readonly<Record<string, string>>, rootNamespace: string): boolean {
  const ns = sidecar.metadata.namespace;
  if (ns !== namespace && ns !== rootNamespace) return false;
  return labelsMatch(sidecar.spec.workloadSelector?.labels, labels);
}

/** Istio's precedence: a Sidecar with a workloadSelector beats the namespace default; earlier documents win ties. */
function pickSidecar(
  sidecars: readonly Resource<SidecarSpec>[],
  namespace: string,
  labels: Readonly<Record<string, string>>,
  rootNamespace: string,
): Resource<SidecarSpec> | undefined {
  const candidates = sidecars.filter((s) => selects(s, namespace, labels, rootNamespace));
  return candidates.find((s) => s.spec.workloadSelector !== undefined && s.metadata.namespace === namespace) ??
    candidates.find((s) => s.metadata.namespace === namespace) ??
    candidates[0];
}

export function markSidecarWorkloads(
  workloadEntries: readonly Resource<WorkloadEntrySpec>[],
  sidecars: readonly Resource<SidecarSpec>[],
  rootNamespace: string,
): Resource<WorkloadEntrySpec>[] {
  return workloadEntries.map((entry) => {
    const labels = { ...entry.metadata.labels, ...entry.spec.labels };
    const sidecar = pickSidecar(sidecars, entry.metadata.namespace, labels, rootNamespace);
    if (sidecar === undefined || (sidecar.spec.ingress ?? []).length === 0 || labels[TLS_MODE_LABEL] !== undefined) return entry;
    return { ...entry, spec: { ...entry.spec, labels: { ...entry.spec.labels, [TLS_MODE_LABEL]: 'istio' } } };
  });
}

function parseEndpoint(value: string): { host: string; port: number } | null {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (match === null) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  const host = (match[1] as string).replace(/^\[|\]$/g, '');
  return { host: host === '0.0.0.0' ? '127.0.0.1' : host, port };
}

export function selectSidecar(
  sidecars: readonly Resource<SidecarSpec>[],
  workload: WorkloadInfo,
  mesh: MeshConfigSpec,
  diagnostics: Diagnostic[],
): SidecarPlan | null {
  const sidecar = pickSidecar(sidecars, workload.namespace, workload.labels, mesh.rootNamespace);
  if (sidecar === undefined) {
    diagnostics.push(
      makeDiagnostic(
        MG_SIDECAR_MISSING,
        `no Sidecar resource selects workload ${workload.namespace}/${workload.name} (labels ${JSON.stringify(workload.labels)}); it defines the inbound port and the local app`,
        { file: '<command line>', line: 0, col: 0 },
      ),
    );
    return null;
  }
  const ingress = sidecar.spec.ingress?.[0];
  let inbound: SidecarPlan['inbound'] = null;
  if (ingress !== undefined) {
    const app = parseEndpoint(ingress.defaultEndpoint ?? '');
    if (app === null) {
      diagnostics.push(
        makeDiagnostic(
          MG_SIDECAR_BAD_ENDPOINT,
          `ingress.defaultEndpoint must be "<ip>:<port>" of the local app, got "${ingress.defaultEndpoint ?? ''}"`,
          sidecar.at(['spec', 'ingress', 0, 'defaultEndpoint']),
          { kind: 'Sidecar', namespace: sidecar.metadata.namespace, name: sidecar.metadata.name, field: 'spec.ingress[0].defaultEndpoint' },
        ),
      );
    } else {
      inbound = { bind: ingress.bind ?? '0.0.0.0', port: ingress.port.number, appHost: app.host, appPort: app.port };
    }
  }
  const egress = sidecar.spec.egress?.[0];
  return {
    source: `${sidecar.metadata.namespace}/${sidecar.metadata.name}`,
    inbound,
    outbound: egress === undefined ? null : { bind: egress.bind ?? '127.0.0.1', port: egress.port?.number ?? DEFAULT_OUTBOUND_PORT },
    outboundTrafficPolicy: sidecar.spec.outboundTrafficPolicy?.mode ?? mesh.outboundTrafficPolicy.mode,
  };
}
