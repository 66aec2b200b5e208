/**
 * A sidecar's shape comes from Istio's own `Sidecar` resource: every `ingress[]` entry is an inbound
 * listener in front of its `defaultEndpoint` (a port of the local app), every `egress[]` entry an
 * outbound listener the app calls. A port's protocol decides how it is proxied, as Istio's protocol
 * selection does: TCP, TLS, MONGO, REDIS and MYSQL as opaque TCP, anything else as HTTP. A
 * WorkloadEntry that some Sidecar selects runs a mesh proxy, so it is marked with Istio's tlsMode label
 * and clients reach it with mesh mTLS (auto-mTLS) — the same signal Istio itself uses.
 */
import { makeDiagnostic, type DiagnosticCode } from '../config/diagnostics.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import { carriesTls, isHttp2Protocol, portKind } from '../config/port-protocol.js';
import type { PortKind } from '../config/port-protocol.js';
import type { SidecarSpec } from '../config/kinds/sidecar.js';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { WorkloadInfo } from '../pipeline/types.js';
import { labelsMatch } from '../config/labels.js';
import { TLS_MODE_LABEL } from '../upstream/registry.js';

export const MG_SIDECAR_MISSING = 'MG0904' satisfies DiagnosticCode;
export const MG_SIDECAR_BAD_ENDPOINT = 'MG0905' satisfies DiagnosticCode;

export const DEFAULT_OUTBOUND_PORT = 15001;

export interface SidecarIngressPort {
  readonly bind: string;
  readonly port: number;
  readonly kind: PortKind;
  /** The app speaks HTTP/2 on this port (protocol GRPC or HTTP2): the inbound cluster does too. */
  readonly http2: boolean;
  readonly appHost: string;
  readonly appPort: number;
}

export interface SidecarEgressPort {
  readonly bind: string;
  readonly port: number;
  readonly kind: PortKind;
  /** Protocol TLS: connections are routed by the ClientHello's SNI (`tls` rules) before the `tcp` rules. */
  readonly sni: boolean;
}

export interface SidecarPlan {
  /** `namespace/name` of the Sidecar resource. */
  readonly source: string;
  /** Every usable `ingress[]` entry, in document order. */
  readonly ingress: readonly SidecarIngressPort[];
  /** The app's HTTP channel: the first HTTP ingress entry (Dapr calls the app there), null when none. */
  readonly inbound: SidecarIngressPort | null;
  /** Every `egress[]` entry, in document order. */
  readonly egress: readonly SidecarEgressPort[];
  /** The first HTTP egress entry: where the app's HTTP calls (and Dapr's) leave. */
  readonly outbound: SidecarEgressPort | null;
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
  const ingress: SidecarIngressPort[] = [];
  for (const [index, entry] of (sidecar.spec.ingress ?? []).entries()) {
    const app = parseEndpoint(entry.defaultEndpoint ?? '');
    if (app === null) {
      diagnostics.push(
        makeDiagnostic(
          MG_SIDECAR_BAD_ENDPOINT,
          `ingress.defaultEndpoint must be "<ip>:<port>" of the local app, got "${entry.defaultEndpoint ?? ''}"`,
          sidecar.at(['spec', 'ingress', index, 'defaultEndpoint']),
          { kind: 'Sidecar', namespace: sidecar.metadata.namespace, name: sidecar.metadata.name, field: `spec.ingress[${index}].defaultEndpoint` },
        ),
      );
      continue;
    }
    ingress.push({ bind: entry.bind ?? '0.0.0.0', port: entry.port.number, kind: portKind(entry.port.protocol), http2: isHttp2Protocol(entry.port.protocol), appHost: app.host, appPort: app.port });
  }
  const egress: SidecarEgressPort[] = (sidecar.spec.egress ?? []).map((entry) => ({
    bind: entry.bind ?? '127.0.0.1',
    port: entry.port?.number ?? DEFAULT_OUTBOUND_PORT,
    kind: portKind(entry.port?.protocol),
    sni: carriesTls(entry.port?.protocol),
  }));
  return {
    source: `${sidecar.metadata.namespace}/${sidecar.metadata.name}`,
    ingress,
    inbound: ingress.find((port) => port.kind === 'http') ?? null,
    egress,
    outbound: egress.find((port) => port.kind === 'http') ?? null,
    outboundTrafficPolicy: sidecar.spec.outboundTrafficPolicy?.mode ?? mesh.outboundTrafficPolicy.mode,
  };
}
