/**
 * The Dapr part of a sidecar's snapshot, compiled once per config: its app id, the Components it
 * loads, its declarative Subscriptions, each building block's compiled state, the API tokens and the
 * app-id → service-host table of service invocation. Immutable; requests read the one they started on.
 */
import { makeDiagnostic } from '../config/diagnostics.js';
import type { DiagnosticCode } from '../config/diagnostics.js';
import { normalizeSubscription } from '../config/kinds/dapr-subscription.js';
import type { DaprSubscription } from '../config/kinds/dapr-subscription.js';
import type { Diagnostic, Resource } from '../config/resource.js';
import type { WorkloadInfo } from '../pipeline/types.js';
import type { ServiceRegistry } from '../upstream/registry.js';
import type { DaprActivation, DaprBuildingBlock } from './api/building-block.js';
import { daprAppId } from './app-id.js';
import { ENV_SECRET_STORE, FILE_SECRET_STORE, compileComponents } from './components/registry.js';
import type { ComponentRegistry } from './components/registry.js';

export const MG_DAPR_TYPE_NOT_SERVED = 'MG1301' satisfies DiagnosticCode;
export const MG_DAPR_SUBSCRIPTION_NO_PUBSUB = 'MG1305' satisfies DiagnosticCode;

export interface DaprSnapshot {
  readonly appId: string;
  readonly namespace: string;
  readonly components: ComponentRegistry;
  readonly subscriptions: readonly DaprSubscription[];
  /** Each building block's compiled state, by block name, in DAPR_BUILDING_BLOCKS order. */
  readonly blocks: ReadonlyMap<string, unknown>;
  readonly blockList: readonly DaprBuildingBlock[];
  /** `DAPR_API_TOKEN` of the sidecar process: every call but the health checks must carry it as `dapr-api-token`. */
  readonly apiToken: string | null;
  /** `APP_API_TOKEN`: sent to the app as `dapr-api-token` on calls the sidecar makes into it. */
  readonly appApiToken: string | null;
  /** The local app (the Sidecar's `ingress[0].defaultEndpoint`), for calls into it; null without an inbound listener. */
  readonly appEndpoint: { readonly host: string; readonly port: number } | null;
  /**
   * The registry host service invocation sends `appId` (or `appId.namespace`) to, or null when no
   * service of the mesh has that app id (Dapr answers ERR_DIRECT_INVOKE at once).
   */
  invokeHost(appId: string): string | null;
}

export interface DaprCompileOptions {
  readonly resources: readonly Resource[];
  /** The sidecar's workload; null for the ingress, which only gets the checks that need no workload. */
  readonly workload: WorkloadInfo | null;
  readonly registry: ServiceRegistry;
  readonly credentialsDirectory: string;
  readonly configDirectory: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly diagnostics: Diagnostic[];
  /** The building blocks to compile: DAPR_BUILDING_BLOCKS (api/building-blocks.ts) in a proxy. */
  readonly blocks: readonly DaprBuildingBlock[];
  readonly appEndpoint?: { readonly host: string; readonly port: number } | null;
  /** MeshConfig `clusterDomain`: app id `name.ns` is the service `name.ns.svc.<clusterDomain>` (default cluster.local). */
  readonly clusterDomain?: string;
}

const SECRET_STORE_TYPES = [ENV_SECRET_STORE, FILE_SECRET_STORE];

function subjectOf(resource: Resource, field: string): { kind: string; namespace: string; name: string; field: string } {
  return { kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name, field };
}

/** Checks that hold for any proxy: Components of types nothing serves, Subscriptions without their pub/sub. */
function checkResources(resources: readonly Resource[], served: ReadonlySet<string>, diagnostics: Diagnostic[]): void {
  const pubsubs = new Set<string>();
  for (const resource of resources) {
    if (resource.kind !== 'Component') continue;
    const type = (resource.spec as { type: string }).type;
    if (type.startsWith('pubsub.')) pubsubs.add(`${resource.metadata.namespace}/${resource.metadata.name}`);
    if (!served.has(type)) {
      diagnostics.push(
        makeDiagnostic(MG_DAPR_TYPE_NOT_SERVED, `no building block serves component type "${type}" (served: ${[...served].sort().join(', ')}); the component is not loaded`, resource.at(['spec', 'type']), subjectOf(resource, 'spec.type')),
      );
    }
  }
  for (const resource of resources) {
    if (resource.kind !== 'Subscription') continue;
    const { pubsubname } = resource.spec as { pubsubname: string };
    if (!pubsubs.has(`${resource.metadata.namespace}/${pubsubname}`)) {
      diagnostics.push(
        makeDiagnostic(MG_DAPR_SUBSCRIPTION_NO_PUBSUB, `no pub/sub Component "${pubsubname}" in namespace ${resource.metadata.namespace}`, resource.at(['spec', 'pubsubname']), subjectOf(resource, 'spec.pubsubname')),
      );
    }
  }
}

function allows(scopes: readonly string[], appId: string): boolean {
  return scopes.length === 0 || scopes.includes(appId);
}

function invokeTable(registry: ServiceRegistry, namespace: string, clusterDomain: string): (appId: string) => string | null {
  const hosts = new Set(registry.services.map((service) => service.host));
  const shortNames = new Map<string, string>();
  for (const service of registry.services) {
    // A short ServiceEntry host (no dot) is an app id as it stands, qualified by the entry's namespace.
    if (!service.host.includes('.')) shortNames.set(`${service.host}.${service.namespace}`, service.host);
  }
  const cache = new Map<string, string | null>();
  const resolve = (appId: string): string | null => {
    const id = appId.toLowerCase();
    const dot = id.indexOf('.');
    if (dot < 0) {
      if (hosts.has(id)) return id;
      const qualified = `${id}.${namespace}.svc.${clusterDomain}`;
      return hosts.has(qualified) ? qualified : null;
    }
    const [name, ns] = [id.slice(0, dot), id.slice(dot + 1)];
    for (const candidate of [`${name}.${ns}.svc.${clusterDomain}`, id]) if (hosts.has(candidate)) return candidate;
    return shortNames.get(`${name}.${ns}`) ?? null;
  };
  return (appId) => {
    let host = cache.get(appId);
    if (host === undefined) {
      host = resolve(appId);
      // Bounded: unknown ids from callers must not grow the table without limit.
      if (cache.size < 1024) cache.set(appId, host);
    }
    return host;
  };
}

export function compileDapr(options: DaprCompileOptions): DaprSnapshot | null {
  const { blocks } = options;
  const served = new Set([...SECRET_STORE_TYPES, ...blocks.flatMap((block) => block.componentTypes)]);
  checkResources(options.resources, served, options.diagnostics);
  const { workload } = options;
  if (workload === null) {
    // No Dapr API here, but the blocks still check every Component they can (`meshgate validate`).
    const checkable = compileComponents({ ...options, appId: null, namespace: '' });
    const all = checkable.all.filter((component) => served.has(component.type));
    for (const block of blocks) {
      block.compile({ appId: '', namespace: '', components: { all, get: (name) => all.find((c) => c.name === name) }, subscriptions: [], resources: options.resources, appEndpoint: null, diagnostics: options.diagnostics });
    }
    return null;
  }
  const appId = daprAppId(options.resources, workload, options.diagnostics);
  const allComponents = compileComponents({ ...options, appId, namespace: workload.namespace });
  const loaded = allComponents.all.filter((component) => served.has(component.type));
  const byName = new Map(loaded.map((component) => [component.name, component]));
  const components: ComponentRegistry = { all: loaded, get: (name) => byName.get(name) };
  const subscriptions = options.resources
    .filter((r) => r.kind === 'Subscription' && r.metadata.namespace === workload.namespace)
    .map(normalizeSubscription)
    .filter((subscription) => allows(subscription.scopes, appId));
  const appEndpoint = options.appEndpoint ?? null;
  const input = { appId, namespace: workload.namespace, components, subscriptions, resources: options.resources, appEndpoint, diagnostics: options.diagnostics };
  const compiled = new Map<string, unknown>();
  for (const block of blocks) compiled.set(block.name, block.compile(input));
  return {
    appId,
    namespace: workload.namespace,
    components,
    subscriptions,
    blocks: compiled,
    blockList: blocks,
    apiToken: nonEmpty(options.env.DAPR_API_TOKEN),
    appApiToken: nonEmpty(options.env.APP_API_TOKEN),
    appEndpoint,
    invokeHost: invokeTable(options.registry, workload.namespace, options.clusterDomain ?? 'cluster.local'),
  };
}

function nonEmpty(value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}

/** The snapshot became the active one: each block opens or reuses what its compiled state needs. */
export function activateDapr(dapr: DaprSnapshot | null, activation: DaprActivation): void {
  if (dapr === null) return;
  for (const block of dapr.blockList) block.activated?.(dapr.blocks.get(block.name), activation);
}

/** The sidecar serving `dapr` stops: each block releases what that sidecar holds. */
export async function shutdownDapr(dapr: DaprSnapshot | null): Promise<void> {
  if (dapr === null) return;
  await Promise.all(dapr.blockList.map((block) => block.shutdown?.(dapr.blocks.get(block.name))));
}
