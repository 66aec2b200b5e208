/**
 * Resources → compiled snapshot. One function builds everything the request path reads (route tables,
 * clusters, plugin states, normaliser) so that `run`, every reload and `validate` go through exactly
 * the same code. A snapshot is immutable; requests pin the one they started on.
 */
import type { FastifyBaseLogger } from 'fastify';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { pino } from 'pino';
import { dirname, resolve } from 'node:path';
import { parseDuration } from '../config/duration.js';
import type { PeerAuthenticationSpec } from '../config/kinds/peer-authentication.js';
import { buildListenerPlans } from '../listeners/plan.js';
import type { ListenerPlan } from '../listeners/plan.js';
import { effectiveMtlsMode } from '../policy/peer-authentication.js';
import type { MtlsMode } from '../policy/peer-authentication.js';
import type { DestinationRuleSpec } from '../config/kinds/destination-rule.js';
import type { GatewaySpec } from '../config/kinds/gateway.js';
import { defaultMeshConfig } from '../config/kinds/mesh-config.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { ServiceEntrySpec } from '../config/kinds/service-entry.js';
import type { SidecarSpec } from '../config/kinds/sidecar.js';
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.js';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.js';
import { loadConfig } from '../config/load.js';
import { runStepsSliced, yieldToEventLoop } from '../config/steps.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import { expandShortHostsSteps, serviceHostResolver } from '../config/short-hosts.js';
import { validationSteps } from '../config/validate.js';
import { ownOutboundMatcher } from './own-outbound.js';
import { DAPR_BUILDING_BLOCKS } from '../dapr/api/building-blocks.js';
import { compileDapr } from '../dapr/snapshot.js';
import type { DaprSnapshot } from '../dapr/snapshot.js';
import { createNormalizer } from '../http/normalize.js';
import type { Normalizer } from '../http/normalize.js';
import { createRequestGuard, effectiveEdgeSettings } from '../http/request-guard.js';
import type { EdgeSettings, RequestGuard } from '../http/request-guard.js';
import type { MeshPlugin, ProxyMode, WorkloadInfo } from '../pipeline/types.js';
import { gatewayRouteTableSteps } from '../router/gateway-binding.js';
import { buildMeshRouteTable } from '../router/mesh-table.js';
import type { HostRouteTable } from '../router/table.js';
import { resolveRetryPolicy } from '../router/retry.js';
import type { RetryPolicy } from '../router/retry-policy.js';
import { buildClusterDefinitions } from '../upstream/cluster-definitions.js';
import type { ClusterDefinition } from '../upstream/cluster.js';
import type { ClusterManager, ClusterSet } from '../upstream/cluster-manager.js';
import { indexDestinationRules } from '../upstream/destination-rules.js';
import { buildServiceRegistry } from '../upstream/registry.js';
import type { ServiceRegistry } from '../upstream/registry.js';
import { autoPassthroughRule, buildGatewayL4Table, buildSidecarTcpTable } from './tcp-routes.js';
import type { TcpRouteTable, TcpScope } from './tcp-routes.js';
import { coreClusterDefinitions } from './core-clusters.js';
import { markSidecarWorkloads, selectSidecar } from './sidecar-plan.js';
import type { SidecarPlan } from './sidecar-plan.js';
import { resolveWorkload } from './workload.js';

/** What the request path reads: the compiled config bound to the long-lived cluster runtime. Immutable. */
export interface Snapshot extends Omit<CompiledConfig, 'clusterDefinitions'> {
  readonly generation: number;
  readonly loadedAt: Date;
  readonly mode: ProxyMode;
  readonly normalize: Normalizer;
  /** MeshConfig's header, path and authority hygiene with this mode's defaults (docs/security.md). */
  readonly edge: EdgeSettings;
  /** Header hygiene run before the normaliser (gateway/http/request-guard.ts). */
  readonly guardRequest: RequestGuard;
  readonly clusters: ClusterSet;
  /** Retry policies for traffic no VirtualService route covers. */
  readonly defaultRetry: DefaultRetryPolicies;
}

export interface DefaultRetryPolicies {
  /** Mesh `defaultHttpRetryPolicy`, else Istio's default (2 retries on connect-failure, refused-stream, …). */
  readonly outbound: RetryPolicy;
  /** Istio's inbound default: retry only resets before the request reached the app. */
  readonly inbound: RetryPolicy;
}

export interface CompileOptions {
  readonly mode: ProxyMode;
  readonly workloadName?: string;
  readonly plugins: readonly MeshPlugin[];
  /** Handed to plugins' `prepare` (user plugins log through it); silent when absent (`validate`). */
  readonly logger?: FastifyBaseLogger;
}

/** The compiled parts of a snapshot before clusters are instantiated (pure: no sockets, no timers). */
export interface CompiledConfig {
  /** sha256 of the config files' contents and of what plugins read beside them: a reload with the same hash is a no-op. */
  readonly hash: string;
  /** sha256 of the config files' contents alone. */
  readonly contentHash: string;
  readonly files: readonly string[];
  readonly resources: readonly Resource[];
  readonly diagnostics: readonly Diagnostic[];
  readonly mesh: MeshConfigSpec;
  readonly workload: WorkloadInfo;
  /** Ingress: one table per Gateway server port. */
  readonly gatewayRoutes: ReadonlyMap<number, HostRouteTable>;
  /** Sidecar outbound: VirtualServices bound to `mesh`. */
  readonly meshRoutes: HostRouteTable;
  /** Opaque TCP ports (sidecar egress TCP ports, Gateway PASSTHROUGH ports): their L4 rules by listener port. */
  readonly tcpRoutes: ReadonlyMap<number, TcpRouteTable>;
  /** MeshConfig `metrics.tcpReportingInterval` in ms (0: bytes only at close). */
  readonly tcpReportingIntervalMs: number;
  readonly registry: ServiceRegistry;
  readonly clusterDefinitions: readonly ClusterDefinition[];
  /** Sidecar mode: its inbound/outbound listeners and local app. */
  readonly sidecar: SidecarPlan | null;
  /** Sidecar mode: PeerAuthentication's effective mode on each ingress port (keyed by port number). */
  readonly inboundMtls: Readonly<Record<string, MtlsMode>>;
  /** Ingress mode: the listeners the Gateway servers ask for. */
  readonly listenerPlans: readonly ListenerPlan[];
  readonly pluginStates: ReadonlyMap<string, unknown>;
  /** Sidecar mode: the Dapr API's app id, components and building blocks; null for the ingress. */
  readonly dapr: DaprSnapshot | null;
  /** Whether a passthrough destination is this sidecar's own outbound listener (a certain loop). */
  readonly isOwnOutbound: (host: string, port: number) => boolean;
  /** The registry host a client's `Host` names: `reviews` (same namespace), `reviews.ns` and `reviews.ns.svc` → `reviews.ns.svc.<clusterDomain>`. */
  readonly serviceHost: (host: string) => string;
}

export type CompileResult = { readonly ok: true; readonly config: CompiledConfig } | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

function ofKind<Spec>(resources: readonly Resource[], kind: string): Resource<Spec>[] {
  return resources.filter((r) => r.kind === kind) as Resource<Spec>[];
}

function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/**
 * A config read and validated: the files' resources (schema-checked, with defaults and expanded
 * hosts) and what reading and checking them found. The costly half of a compile; compileRead turns
 * it into the closures the request path runs.
 */
export interface ReadConfig {
  /** sha256 of the config files' contents. */
  readonly contentHash: string;
  readonly files: readonly string[];
  readonly resources: readonly Resource[];
  readonly diagnostics: readonly Diagnostic[];
  readonly mesh: MeshConfigSpec;
}

export type ReadResult = { readonly ok: true; readonly read: ReadConfig } | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** Load + validate + compile. Never throws for bad config: problems come back as diagnostics. */
export async function compileConfig(configPath: string, options: CompileOptions): Promise<CompileResult> {
  const read = await readConfig(configPath, options);
  return read.ok ? compileRead(read.read, configPath, options, [...read.read.diagnostics]) : read;
}

/** Reading the YAML, schema validation with positions, defaults, RE2 and routing validation. */
export async function readConfig(configPath: string, options: CompileOptions): Promise<ReadResult> {
  const loaded = await loadConfig(configPath, { extraKinds: options.plugins.flatMap((p) => p.kinds ?? []) });
  const mesh = ofKind<MeshConfigSpec>(loaded.resources, 'MeshConfig')[0]?.spec ?? defaultMeshConfig();
  const resources = await runStepsSliced(expandShortHostsSteps(loaded.resources, mesh.clusterDomain));
  // A large config makes every stage long: requests in flight run between stages and between slices of them.
  await yieldToEventLoop();
  const diagnostics: Diagnostic[] = [...loaded.diagnostics, ...(await runStepsSliced(validationSteps(resources)))];
  if (hasErrors(diagnostics)) return { ok: false, diagnostics };
  await yieldToEventLoop();
  return { ok: true, read: { contentHash: loaded.hash, files: loaded.files, resources, diagnostics, mesh } };
}

/**
 * A read config → route tables, matchers, clusters, plugin states. What this finds goes to
 * `diagnostics` (which becomes the compiled config's), with positions from the resources' `at`.
 */
export async function compileRead(read: ReadConfig, configPath: string, options: CompileOptions, diagnostics: Diagnostic[]): Promise<CompileResult> {
  const { resources, mesh } = read;
  const sidecars = ofKind<SidecarSpec>(resources, 'Sidecar');
  const workloadEntries = markSidecarWorkloads(ofKind<WorkloadEntrySpec>(resources, 'WorkloadEntry'), sidecars, mesh.rootNamespace);
  const workload = resolveWorkload(options.mode, options.workloadName, workloadEntries, mesh, diagnostics);
  // Without its workload a sidecar has no labels or namespace: what would follow only repeats that.
  if (hasErrors(diagnostics)) return { ok: false, diagnostics };
  const sidecar = options.mode === 'sidecar' ? selectSidecar(sidecars, workload, mesh, diagnostics) : null;

  const virtualServices = ofKind<VirtualServiceSpec>(resources, 'VirtualService');
  const gatewayRoutes =
    options.mode === 'ingress'
      ? await runStepsSliced(
          gatewayRouteTableSteps({
            gateways: ofKind<GatewaySpec>(resources, 'Gateway'),
            virtualServices,
            proxyLabels: workload.labels,
            proxyNamespace: workload.namespace,
            diagnostics,
          }),
        )
      : new Map<number, HostRouteTable>();
  await yieldToEventLoop();
  const meshRoutes = buildMeshRouteTable({
    virtualServices,
    proxyLabels: workload.labels,
    proxyNamespace: workload.namespace,
    clusterDomain: mesh.clusterDomain,
    diagnostics,
  });
  await yieldToEventLoop();

  const registry = buildServiceRegistry({
    serviceEntries: ofKind<ServiceEntrySpec>(resources, 'ServiceEntry'),
    workloadEntries,
    clientNamespace: workload.namespace,
    diagnostics,
  });
  const destinationRules = indexDestinationRules(
    ofKind<DestinationRuleSpec>(resources, 'DestinationRule'),
    { namespace: workload.namespace, labels: workload.labels },
    mesh.rootNamespace,
  );
  const clusterDefinitions = [...buildClusterDefinitions(registry, destinationRules, mesh.h2UpgradePolicy), ...coreClusterDefinitions(sidecar, workload.namespace)];

  const listenerPlans =
    options.mode === 'ingress'
      ? collect(
          buildListenerPlans({
            gateways: ofKind<GatewaySpec>(resources, 'Gateway'),
            proxyLabels: workload.labels,
            credentialsDirectory: resolve(configDirectory(configPath), mesh.credentialsDirectory),
          }),
          diagnostics,
        )
      : [];
  const tcpRoutes = buildTcpRoutes(sidecar, listenerPlans, virtualServices, registry, workload, diagnostics);
  const peerAuthentications = ofKind<PeerAuthenticationSpec>(resources, 'PeerAuthentication');
  const inboundMtls: Record<string, MtlsMode> = {};
  for (const { port } of sidecar?.ingress ?? []) inboundMtls[port] = effectiveMtlsMode(peerAuthentications, workload, port, mesh.rootNamespace).mode;

  await yieldToEventLoop();
  const prepared = new Map<string, unknown>();
  const fingerprints: string[] = [];
  for (const plugin of options.plugins) {
    if (plugin.prepare === undefined) continue;
    const result = await plugin.prepare({
      resources,
      mode: options.mode,
      workload,
      rootNamespace: mesh.rootNamespace,
      configDirectory: configDirectory(configPath),
      logger: options.logger ?? SILENT_LOGGER,
      diagnostics,
    });
    prepared.set(plugin.name, result.value);
    if (result.fingerprint !== '') fingerprints.push(`${plugin.name}\u0000${result.fingerprint}`);
  }

  const dapr = compileDapr({
    resources,
    workload: options.mode === 'sidecar' && sidecar !== null ? workload : null,
    registry,
    credentialsDirectory: resolve(configDirectory(configPath), mesh.credentialsDirectory),
    configDirectory: configDirectory(configPath),
    env: process.env,
    diagnostics,
    blocks: DAPR_BUILDING_BLOCKS,
    appEndpoint: sidecar?.inbound == null ? null : { host: sidecar.inbound.appHost, port: sidecar.inbound.appPort },
    clusterDomain: mesh.clusterDomain,
  });

  const pluginStates = new Map<string, unknown>();
  for (const plugin of options.plugins) {
    await yieldToEventLoop();
    pluginStates.set(
      plugin.name,
      plugin.compile({ resources, mode: options.mode, workload, rootNamespace: mesh.rootNamespace, trustDomain: mesh.trustDomain, diagnostics }, prepared.get(plugin.name)),
    );
  }
  if (hasErrors(diagnostics)) {
    discardCompiled(pluginStates, options.plugins);
    return { ok: false, diagnostics };
  }
  return {
    ok: true,
    config: {
      // Files a plugin read outside the config (its module) count, so that a changed module reloads.
      hash: fingerprints.length === 0 ? read.contentHash : createHash('sha256').update(read.contentHash).update(fingerprints.join('\u0000')).digest('hex'),
      contentHash: read.contentHash,
      files: read.files,
      resources,
      diagnostics,
      mesh,
      workload,
      gatewayRoutes,
      meshRoutes,
      tcpRoutes,
      tcpReportingIntervalMs: parseDuration(mesh.metrics.tcpReportingInterval),
      registry,
      clusterDefinitions,
      sidecar,
      inboundMtls,
      listenerPlans,
      pluginStates,
      dapr,
      serviceHost: serviceHostResolver(
        registry.services.map((service) => service.host),
        workload.namespace,
        mesh.clusterDomain,
      ),
      isOwnOutbound: ownOutboundMatcher(
        sidecar,
        workloadEntries.find((entry) => entry.metadata.name === workload.name && entry.metadata.namespace === workload.namespace)?.spec.address,
      ),
    },
  };
}

function buildTcpRoutes(
  sidecar: SidecarPlan | null,
  listenerPlans: readonly ListenerPlan[],
  virtualServices: readonly Resource<VirtualServiceSpec>[],
  registry: ServiceRegistry,
  workload: WorkloadInfo,
  diagnostics: Diagnostic[],
): Map<number, TcpRouteTable> {
  const tables = new Map<number, TcpRouteTable>();
  const scope = (listenerPort: number, gateways: readonly string[]): TcpScope => ({
    listenerPort,
    proxyLabels: workload.labels,
    proxyNamespace: workload.namespace,
    gateways,
  });
  for (const egress of sidecar?.egress ?? []) {
    if (egress.kind === 'tcp') tables.set(egress.port, buildSidecarTcpTable({ virtualServices, registry, sni: egress.sni, scope: scope(egress.port, ['mesh']), diagnostics }));
  }
  for (const plan of listenerPlans) {
    if (plan.protocol === 'http' || plan.protocol === 'https') continue;
    const gateways = [...new Set(plan.servers.map((server) => server.gateway))];
    // Istio: a PASSTHROUGH server routes by SNI through `tls` rules; TCP and terminated TLS through `tcp` rules.
    const kind = plan.protocol === 'passthrough' ? 'tls' : 'tcp';
    const table = buildGatewayL4Table({ virtualServices, servers: plan.servers, scope: scope(plan.port, gateways), diagnostics }, kind);
    const autoHosts = plan.servers.filter((server) => server.autoPassthrough).flatMap((server) => server.hosts.map((host) => host.dnsName));
    tables.set(plan.port, autoHosts.length === 0 ? table : { ...table, rules: [...table.rules, autoPassthroughRule(autoHosts)] });
  }
  return tables;
}

const SILENT_LOGGER: FastifyBaseLogger = pino({ level: 'silent' });

/** Releases what plugins hold for compiled states that will never serve (a rejected config, `validate`). */
export function discardCompiled(pluginStates: ReadonlyMap<string, unknown>, plugins: readonly MeshPlugin[]): void {
  for (const plugin of plugins) plugin.discard?.(pluginStates.get(plugin.name));
}

function collect(result: { listeners: ListenerPlan[]; diagnostics: Diagnostic[] }, diagnostics: Diagnostic[]): ListenerPlan[] {
  diagnostics.push(...result.diagnostics);
  return result.listeners;
}

/** Relative paths in the config (credentials) are relative to the config file's directory. */
function configDirectory(configPath: string): string {
  return statSync(configPath).isDirectory() ? configPath : dirname(configPath);
}

/** Instantiates the compiled config against the long-lived cluster manager (keeps pools of unchanged clusters). */
export function activate(config: CompiledConfig, mode: ProxyMode, generation: number, clusterManager: ClusterManager): Snapshot {
  const { clusterDefinitions, ...compiled } = config;
  const edge = effectiveEdgeSettings(config.mesh, mode);
  return {
    ...compiled,
    generation,
    loadedAt: new Date(),
    mode,
    normalize: createNormalizer(edge.pathNormalization, edge.pathParameters),
    edge,
    guardRequest: createRequestGuard(edge),
    clusters: clusterManager.update(clusterDefinitions),
    defaultRetry: {
      outbound: resolveRetryPolicy(config.mesh.defaultHttpRetryPolicy),
      inbound: resolveRetryPolicy({ attempts: 2, retryOn: 'reset-before-request' }),
    },
  };
}
