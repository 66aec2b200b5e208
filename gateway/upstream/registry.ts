/**
 * The service registry (docs/routing.md#serviceentry-and-workloadentry): ServiceEntries visible to this proxy, their ports and
 * endpoints (inline, WorkloadEntries selected by `workloadSelector` in the SE's namespace, and mesh
 * workloads announced by the core). Built once per snapshot; DNS names are NOT resolved here — the
 * cluster manager resolves them in the background (dns-cache.ts), never per request.
 */
import { makeDiagnostic } from '../config/diagnostics.js';
import type { ServiceEntrySpec } from '../config/kinds/service-entry.js';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { labelsMatch } from '../config/labels.js';
import { isVisibleTo } from './destination-rules.js';

export type Resolution = 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'NONE';

/** Istio's endpoint label that marks a workload able to terminate Istio mTLS (auto-mTLS). */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

export interface RegistryEndpoint {
  /** IP, or a DNS name for DNS resolution (resolved later), or `unix:///path`. */
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  /** ≥ 1 (0/unset → 1). */
  readonly weight: number;
  readonly serviceAccount: string;
  readonly locality: string;
  readonly namespace: string;
  /** True when the endpoint runs a mesh proxy (auto-mTLS applies when the DR sets no TLS). */
  readonly meshWorkload: boolean;
}

export interface RegistryPort {
  readonly number: number;
  readonly name: string;
  readonly protocol: string;
  readonly targetPort: number;
}

export interface RegistryService {
  /** Lower-cased; may be a wildcard `*.example.com`. */
  readonly host: string;
  readonly namespace: string;
  readonly resolution: Resolution;
  readonly meshInternal: boolean;
  readonly ports: readonly RegistryPort[];
  /** Endpoints per service port number. */
  readonly endpoints: ReadonlyMap<number, readonly RegistryEndpoint[]>;
  readonly subjectAltNames: readonly string[];
  /** `namespace/name` of the ServiceEntry. */
  readonly source: string;
}

/** An inbound listener of a sidecar in this mesh, announced by the core for the service it serves. */
export interface MeshWorkloadEndpoint {
  readonly host: string;
  /** Service port number this endpoint serves. */
  readonly servicePort: number;
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly locality?: string;
  readonly weight?: number;
}

export interface RegistryInput {
  readonly serviceEntries: readonly Resource<ServiceEntrySpec>[];
  readonly workloadEntries: readonly Resource<WorkloadEntrySpec>[];
  /** Namespace of this proxy: ServiceEntries not exported to it are invisible. */
  readonly clientNamespace: string;
  readonly meshWorkloads?: readonly MeshWorkloadEndpoint[];
  readonly diagnostics?: Diagnostic[];
}

export interface ServiceRegistry {
  readonly services: readonly RegistryService[];
  /** Exact host first, then the longest matching wildcard. */
  lookup(host: string): RegistryService | undefined;
}

function resolutionOf(spec: ServiceEntrySpec): Resolution {
  switch (spec.resolution) {
    case 'STATIC':
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      return spec.resolution;
    default:
      // DYNAMIC_DNS resolves the requested host at connect time: the same data path as passthrough.
      return 'NONE';
  }
}

function toEndpoint(spec: WorkloadEntrySpec, port: RegistryPort, namespace: string, address: string): RegistryEndpoint {
  const labels = spec.labels ?? {};
  return {
    address,
    port: spec.ports?.[port.name] ?? port.targetPort,
    labels,
    weight: spec.weight === undefined || spec.weight <= 0 ? 1 : spec.weight,
    serviceAccount: spec.serviceAccount ?? '',
    locality: spec.locality ?? '',
    namespace,
    meshWorkload: labels[TLS_MODE_LABEL] === 'istio',
  };
}

/** Istio's protocol selection by port name (`grpc`, `grpc-foo`, `http2-foo`) for the HTTP/2 protocols; others keep the TCP default. */
function protocolFromPortName(name: string | undefined): string | undefined {
  const prefix = (name ?? '').toLowerCase().split('-')[0];
  return prefix === 'grpc' || prefix === 'http2' ? prefix : undefined;
}

function buildService(
  entry: Resource<ServiceEntrySpec>,
  host: string,
  workloadEntries: readonly Resource<WorkloadEntrySpec>[],
  meshWorkloads: readonly MeshWorkloadEndpoint[],
): RegistryService {
  const spec = entry.spec;
  const namespace = entry.metadata.namespace;
  const resolution = resolutionOf(spec);
  const ports: RegistryPort[] = (spec.ports ?? []).map((p) => ({
    number: p.number,
    name: p.name,
    protocol: (p.protocol ?? protocolFromPortName(p.name) ?? 'TCP').toUpperCase(),
    targetPort: p.targetPort ?? p.number,
  }));
  const sources: { spec: WorkloadEntrySpec; namespace: string }[] = [];
  if (spec.workloadSelector !== undefined) {
    const selector = spec.workloadSelector.labels ?? {};
    for (const we of workloadEntries) {
      if (we.metadata.namespace === namespace && labelsMatch(selector, { ...we.metadata.labels, ...we.spec.labels })) {
        sources.push({ spec: { ...we.spec, labels: { ...we.metadata.labels, ...we.spec.labels } }, namespace });
      }
    }
  } else {
    for (const inline of spec.endpoints ?? []) sources.push({ spec: inline, namespace });
  }
  const endpoints = new Map<number, RegistryEndpoint[]>();
  for (const port of ports) {
    const list: RegistryEndpoint[] = [];
    if (resolution !== 'NONE') {
      for (const source of sources) {
        const address = source.spec.address ?? '';
        if (address !== '') list.push(toEndpoint(source.spec, port, source.namespace, address));
      }
      // With DNS and no endpoints, the host itself is the name to resolve (never a wildcard).
      if (list.length === 0 && resolution !== 'STATIC' && !host.startsWith('*')) {
        list.push(toEndpoint({}, port, namespace, host));
      }
    }
    for (const workload of meshWorkloads) {
      if (workload.host.toLowerCase() !== host || workload.servicePort !== port.number) continue;
      list.push({
        address: workload.address,
        port: workload.port,
        labels: workload.labels,
        weight: workload.weight === undefined || workload.weight <= 0 ? 1 : workload.weight,
        serviceAccount: workload.serviceAccount,
        locality: workload.locality ?? '',
        namespace: workload.namespace,
        meshWorkload: true,
      });
    }
    endpoints.set(port.number, list);
  }
  return {
    host,
    namespace,
    resolution,
    meshInternal: spec.location === 'MESH_INTERNAL',
    ports,
    endpoints,
    subjectAltNames: spec.subjectAltNames ?? [],
    source: `${namespace}/${entry.metadata.name}`,
  };
}

export function buildServiceRegistry(input: RegistryInput): ServiceRegistry {
  const byHost = new Map<string, RegistryService>();
  const entries = [...input.serviceEntries].sort((a, b) => a.source.order - b.source.order);
  for (const entry of entries) {
    if (!isVisibleTo(entry.spec.exportTo, entry.metadata.namespace, input.clientNamespace)) continue;
    for (const rawHost of entry.spec.hosts) {
      const host = rawHost.toLowerCase();
      const existing = byHost.get(host);
      if (existing !== undefined) {
        input.diagnostics?.push(
          makeDiagnostic('MG0219', `host "${host}" is already defined by ServiceEntry ${existing.source}; this definition is ignored`, entry.at(['spec', 'hosts']), {
            kind: entry.kind,
            namespace: entry.metadata.namespace,
            name: entry.metadata.name,
            field: 'spec.hosts',
          }),
        );
        continue;
      }
      byHost.set(host, buildService(entry, host, input.workloadEntries, input.meshWorkloads ?? []));
    }
  }
  const wildcards = [...byHost.values()]
    .filter((s) => s.host.startsWith('*.'))
    .sort((a, b) => b.host.length - a.host.length);
  return {
    services: [...byHost.values()],
    lookup(host) {
      const lower = host.toLowerCase();
      return byHost.get(lower) ?? wildcards.find((s) => lower.endsWith(s.host.slice(1)));
    },
  };
}
