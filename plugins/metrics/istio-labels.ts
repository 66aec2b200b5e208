/**
 * Istio's standard metric labels (docs/observability.md#metrics). Everything known at load time (this proxy's
 * own workload, ServiceEntry namespaces, WorkloadEntry addresses) is compiled once; per request only
 * the peer, destination service and outcome are filled in. Unknown values are the string `unknown`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Resource } from '../../gateway/config/resource.js';
import type { ServiceEntrySpec } from '../../gateway/config/kinds/service-entry.js';
import type { WorkloadEntrySpec } from '../../gateway/config/kinds/workload-entry.js';
import type { CompileInput, ConnectionRecord, ProxyMode } from '../../gateway/pipeline/types.js';

export const ISTIO_LABEL_NAMES = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'request_protocol',
  'response_code',
  'response_flags',
  'connection_security_policy',
  'grpc_response_status',
] as const;

export type IstioLabelName = (typeof ISTIO_LABEL_NAMES)[number];

export const UNKNOWN = 'unknown';

/** The labels describing one side of the exchange (a workload). */
interface WorkloadLabels {
  readonly workload: string;
  readonly namespace: string;
  readonly principal: string;
  readonly app: string;
  readonly version: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
}

const UNKNOWN_WORKLOAD: WorkloadLabels = {
  workload: UNKNOWN,
  namespace: UNKNOWN,
  principal: UNKNOWN,
  app: UNKNOWN,
  version: UNKNOWN,
  canonicalService: UNKNOWN,
  canonicalRevision: UNKNOWN,
};

export interface CompiledIstioLabels {
  readonly mode: ProxyMode;
  readonly local: WorkloadLabels;
  /** ServiceEntry host → namespace of the entry, for `destination_service_namespace`. */
  readonly serviceNamespaces: ReadonlyMap<string, string>;
  /**
   * WorkloadEntry `address:port` (every named port) and bare address → its workload labels (principal left
   * unknown: only a handshake proves it). An address shared by several entries (loopback meshes, one host
   * running many workloads) is left out rather than attributed to whichever entry came first.
   */
  readonly workloadsByAddress: ReadonlyMap<string, WorkloadLabels>;
  /** `<ns>/<serviceAccount>` → the workload, when exactly one WorkloadEntry runs as that identity: names the mTLS peer. */
  readonly workloadsByIdentity: ReadonlyMap<string, WorkloadLabels>;
}

/** Adds `key → labels`, or marks the key ambiguous (null) when another workload already claimed it. */
function claim(map: Map<string, WorkloadLabels | null>, key: string, labels: WorkloadLabels): void {
  map.set(key, map.has(key) ? null : labels);
}

function withoutAmbiguous(map: ReadonlyMap<string, WorkloadLabels | null>): Map<string, WorkloadLabels> {
  const unique = new Map<string, WorkloadLabels>();
  for (const [key, labels] of map) if (labels !== null) unique.set(key, labels);
  return unique;
}

function workloadLabels(name: string, namespace: string, labels: Readonly<Record<string, string>>, principal: string): WorkloadLabels {
  return {
    workload: name,
    namespace,
    principal,
    app: labels['app'] ?? UNKNOWN,
    version: labels['version'] ?? UNKNOWN,
    canonicalService: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels['app'] ?? name,
    canonicalRevision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? 'latest',
  };
}

export function compileIstioLabels(input: CompileInput): CompiledIstioLabels {
  const serviceNamespaces = new Map<string, string>();
  const byAddress = new Map<string, WorkloadLabels | null>();
  const byIdentity = new Map<string, WorkloadLabels | null>();
  for (const resource of input.resources) {
    if (resource.kind === 'ServiceEntry') {
      const spec = (resource as Resource<ServiceEntrySpec>).spec;
      for (const host of spec.hosts) if (!serviceNamespaces.has(host)) serviceNamespaces.set(host, resource.metadata.namespace);
    } else if (resource.kind === 'WorkloadEntry') {
      const spec = (resource as Resource<WorkloadEntrySpec>).spec;
      const labels = workloadLabels(resource.metadata.name, resource.metadata.namespace, spec.labels ?? {}, UNKNOWN);
      if (spec.address !== undefined && spec.address !== '') {
        claim(byAddress, spec.address, labels);
        const host = spec.address.includes(':') ? `[${spec.address}]` : spec.address;
        for (const port of new Set(Object.values(spec.ports ?? {}))) claim(byAddress, `${host}:${port}`, labels);
      }
      if (spec.serviceAccount !== undefined && spec.serviceAccount !== '') claim(byIdentity, `${resource.metadata.namespace}/${spec.serviceAccount}`, labels);
    }
  }
  const { workload } = input;
  return {
    mode: input.mode,
    local: workloadLabels(workload.name, workload.namespace, workload.labels, `spiffe://${workload.principal}`),
    serviceNamespaces,
    workloadsByAddress: withoutAmbiguous(byAddress),
    workloadsByIdentity: withoutAmbiguous(byIdentity),
  };
}

interface DestinationService {
  readonly service: string;
  readonly name: string;
  readonly namespace: string;
}

const KUBERNETES_SERVICE_HOST = /^([^.]+)\.([^.]+)\.svc(?:\.|$)/;
const SPECIAL_CLUSTERS = new Set(['BlackHoleCluster', 'PassthroughCluster']);

/** `outbound|<port>|<subset>|<host>` → host; inbound clusters name no host, so the Host header stands in. */
function destinationService(compiled: CompiledIstioLabels, cluster: string, hostHeader: string): DestinationService {
  if (SPECIAL_CLUSTERS.has(cluster)) return { service: cluster, name: cluster, namespace: UNKNOWN };
  let host = '';
  if (cluster.startsWith('outbound|')) host = cluster.slice(cluster.lastIndexOf('|') + 1);
  if (host === '') host = hostHeader;
  if (host === '') return { service: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN };
  const kubernetes = KUBERNETES_SERVICE_HOST.exec(host);
  if (kubernetes !== null) return { service: host, name: kubernetes[1] ?? UNKNOWN, namespace: kubernetes[2] ?? UNKNOWN };
  return { service: host, name: host, namespace: compiled.serviceNamespaces.get(host) ?? UNKNOWN };
}

function hostOf(address: string): string {
  if (address.startsWith('[')) return address.slice(1, address.indexOf(']'));
  const colon = address.lastIndexOf(':');
  return colon === -1 || address.indexOf(':') !== colon ? address : address.slice(0, colon);
}

/** Sidecar inbound traffic is reported by the destination; everything else (gateway, sidecar outbound) by the source. */
export function isDestinationReporter(compiled: CompiledIstioLabels, request: FastifyRequest): boolean {
  if (compiled.mode === 'ingress') return false;
  const cluster = request.mesh.upstreamCluster;
  if (cluster.startsWith('inbound|')) return true;
  // A local reply before routing names no cluster; only inbound traffic arrives over mesh mTLS.
  return cluster === '' && request.mesh.attrs.peer !== null;
}

/** The other side of the exchange as the labels see it: the peer for a destination reporter, else the upstream endpoint. */
export function counterpartOf(request: FastifyRequest, destinationReporter: boolean): string {
  const mesh = request.mesh;
  if (!destinationReporter) return mesh.upstreamHost;
  return mesh.attrs.peer === null ? mesh.attrs.sourceIp : mesh.attrs.peer.uri;
}

export function isGrpc(request: FastifyRequest): boolean {
  const contentType = request.headers['content-type'];
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

/**
 * A string that two requests share only if istioLabelValues gives them equal values (under one
 * compiled state): it joins the handful of inputs those values are derived from, so a request of an
 * already seen kind finds its series without building the 23 values.
 */
export function istioLabelKey(compiled: CompiledIstioLabels, request: FastifyRequest, reply: FastifyReply): string {
  const mesh = request.mesh;
  const destinationReporter = isDestinationReporter(compiled, request);
  const counterpart = counterpartOf(request, destinationReporter);
  const grpc = isGrpc(request) ? `grpc:${String(mesh.responseHeader(reply, 'grpc-status') ?? '')}` : '';
  const flags = mesh.responseFlags.length === 0 ? '-' : mesh.responseFlags.join(',');
  return `${destinationReporter ? 'd' : 's'}\u0001${reply.statusCode}\u0001${flags}\u0001${mesh.upstreamCluster}\u0001${counterpart}\u0001${mesh.attrs.host}\u0001${grpc}`;
}

/** Label values in ISTIO_LABEL_NAMES order. */
/** Who is on each side of a request or connection, as the reporting proxy sees it. */
interface Parties {
  readonly source: WorkloadLabels;
  readonly destination: WorkloadLabels;
  readonly securityPolicy: string;
}

function partiesOf(compiled: CompiledIstioLabels, destinationReporter: boolean, peer: ConnectionRecord['attrs']['peer'], sourceIp: string, upstreamHost: string): Parties {
  if (!destinationReporter) {
    const destination = compiled.workloadsByAddress.get(upstreamHost) ?? compiled.workloadsByAddress.get(hostOf(upstreamHost)) ?? UNKNOWN_WORKLOAD;
    return { source: compiled.local, destination, securityPolicy: UNKNOWN };
  }
  if (peer === null) {
    return { source: compiled.workloadsByAddress.get(sourceIp) ?? UNKNOWN_WORKLOAD, destination: { ...compiled.local, principal: UNKNOWN }, securityPolicy: 'none' };
  }
  const known = compiled.workloadsByIdentity.get(`${peer.namespace}/${peer.serviceAccount}`) ?? UNKNOWN_WORKLOAD;
  return { source: { ...known, principal: peer.uri, namespace: peer.namespace }, destination: compiled.local, securityPolicy: 'mutual_tls' };
}

/** The values from `reporter` to `destination_canonical_revision`, shared by the HTTP and TCP series. */
function partyValues(destinationReporter: boolean, { source, destination }: Parties, service: DestinationService): string[] {
  return [
    destinationReporter ? 'destination' : 'source',
    source.workload,
    source.namespace,
    source.principal,
    source.app,
    source.version,
    source.canonicalService,
    source.canonicalRevision,
    destination.workload,
    destination.namespace,
    destination.principal,
    destination.app,
    destination.version,
    service.service,
    service.name,
    service.namespace,
    destination.canonicalService,
    destination.canonicalRevision,
  ];
}

export function istioLabelValues(compiled: CompiledIstioLabels, request: FastifyRequest, reply: FastifyReply): string[] {
  const mesh = request.mesh;
  const destinationReporter = isDestinationReporter(compiled, request);
  const parties = partiesOf(compiled, destinationReporter, mesh.attrs.peer, mesh.attrs.sourceIp, mesh.upstreamHost);
  const service = destinationService(compiled, mesh.upstreamCluster, mesh.attrs.host);
  const grpc = isGrpc(request);
  const grpcStatus = grpc ? mesh.responseHeader(reply, 'grpc-status') : undefined;
  return [
    ...partyValues(destinationReporter, parties, service),
    grpc ? 'grpc' : 'http',
    String(reply.statusCode),
    mesh.responseFlags.length === 0 ? '-' : mesh.responseFlags.join(','),
    parties.securityPolicy,
    grpcStatus === undefined ? '' : String(grpcStatus),
  ];
}

/** The labels of Istio's TCP series: the request label set without `response_code` and `grpc_response_status`. */
export const TCP_LABEL_NAMES = ISTIO_LABEL_NAMES.filter((name) => name !== 'response_code' && name !== 'grpc_response_status');

/** Label values of one TCP connection, in TCP_LABEL_NAMES order. A sidecar's inbound connections are reported by the destination. */
export function tcpLabelValues(compiled: CompiledIstioLabels, record: ConnectionRecord): string[] {
  const destinationReporter = record.attrs.direction === 'inbound';
  const parties = partiesOf(compiled, destinationReporter, record.attrs.peer, record.attrs.sourceIp, record.upstreamHost);
  const service = destinationService(compiled, record.upstreamCluster, record.attrs.sni);
  return [
    ...partyValues(destinationReporter, parties, service),
    'tcp',
    record.responseFlags.length === 0 ? '-' : record.responseFlags.join(','),
    parties.securityPolicy,
  ];
}
