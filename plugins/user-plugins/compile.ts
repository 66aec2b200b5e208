/**
 * Per snapshot: where each loaded plugin runs. Listener scope (mode, port, Gateway targets) is decided
 * once per listener and memoised, so a request only walks the plugins of its listener and phase; a
 * route-scoped plugin (VirtualService target) costs two Map lookups on the request's route.
 */
import type { Diagnostic, Resource } from '../../gateway/config/resource.js';
import type { GatewaySpec } from '../../gateway/config/kinds/gateway.js';
import type { VirtualServiceSpec } from '../../gateway/config/kinds/virtual-service.js';
import type { CompileInput, ListenerView } from '../../gateway/pipeline/types.js';
import type { CompiledRoute } from '../../gateway/router/types.js';
import { pluginDiagnostic } from './diagnostics.js';
import { disposeState } from './load.js';
import type { LoadedPlugin, LoadedPlugins } from './load.js';
import { PHASES } from './schema.js';
import type { Phase, PluginSpec } from './schema.js';

/** `<namespace>` → `<VirtualService name>` → the rule route-name prefixes it selects (null: every rule). */
export type RouteScope = ReadonlyMap<string, ReadonlyMap<string, readonly string[] | null>>;

export interface PlacedPlugin extends LoadedPlugin {
  readonly phase: Phase;
  readonly priority: number;
  readonly failOpen: boolean;
  /** null: every request of the listeners it applies to. */
  readonly routes: RouteScope | null;
  appliesToListener(listener: ListenerView): boolean;
}

export type PhasePlugins = readonly (readonly PlacedPlugin[])[];

export interface CompiledUserPlugins {
  /** Every placed plugin, in run order (phase, then priority). */
  readonly plugins: readonly PlacedPlugin[];
  /** The plugins of each phase (indexed as PHASES) on this listener, in run order. */
  forListener(listener: ListenerView): PhasePlugins;
  /** Release the plugins' compiled state (the snapshot no longer serves). */
  dispose(): Promise<void>;
}

export const PHASE_INDEX: Readonly<Record<Phase, number>> = { AUTHN: 0, AUTHZ: 1, STATS: 2, UNSPECIFIED_PHASE: 3 };

const NO_PLUGINS: PhasePlugins = PHASES.map(() => []);

export function routeSelected(scope: RouteScope, route: CompiledRoute | null): boolean {
  if (route === null) return false;
  const rules = scope.get(route.virtualService.namespace)?.get(route.virtualService.name);
  if (rules === undefined) return false;
  if (rules === null) return true;
  for (const prefix of rules) {
    if (route.name === prefix || (route.name.startsWith(prefix) && route.name.charCodeAt(prefix.length) === 46 /* . */)) return true;
  }
  return false;
}

function findResource<Spec>(resources: readonly Resource[], kind: string, namespace: string, name: string): Resource<Spec> | undefined {
  return resources.find((r) => r.kind === kind && r.metadata.namespace === namespace && r.metadata.name === name) as Resource<Spec> | undefined;
}

/** Gateway targets narrow the listeners, VirtualService targets the routes; with both, both must hold. */
interface Targets {
  readonly gatewayPorts: ReadonlySet<number> | null;
  readonly routes: RouteScope | null;
}

function compileTargets(resource: Resource<PluginSpec>, resources: readonly Resource[], diagnostics: Diagnostic[]): Targets | null {
  const refs = resource.spec.targetRefs;
  if (refs === undefined) return { gatewayPorts: null, routes: null };
  let ok = true;
  const gatewayPorts = new Set<number>();
  const routes = new Map<string, Map<string, string[] | null>>();
  refs.forEach((ref, index) => {
    const namespace = ref.namespace ?? resource.metadata.namespace;
    const path = ['spec', 'targetRefs', index];
    if (ref.kind === 'Gateway') {
      const gateway = findResource<GatewaySpec>(resources, 'Gateway', namespace, ref.name);
      if (gateway === undefined) {
        ok = false;
        diagnostics.push(pluginDiagnostic('MG1506', `no Gateway ${namespace}/${ref.name} in the config`, resource, [...path, 'name']));
        return;
      }
      for (const server of gateway.spec.servers) gatewayPorts.add(server.port.number);
      return;
    }
    if (resource.spec.phase === 'AUTHN' || resource.spec.phase === 'AUTHZ') {
      ok = false;
      diagnostics.push(
        pluginDiagnostic('MG1505', `a VirtualService target needs phase STATS or UNSPECIFIED_PHASE: phase ${resource.spec.phase} runs before routing`, resource, [...path, 'kind']),
      );
      return;
    }
    const virtualService = findResource<VirtualServiceSpec>(resources, 'VirtualService', namespace, ref.name);
    if (virtualService === undefined) {
      ok = false;
      diagnostics.push(pluginDiagnostic('MG1506', `no VirtualService ${namespace}/${ref.name} in the config`, resource, [...path, 'name']));
      return;
    }
    const byName = routes.get(namespace) ?? new Map<string, string[] | null>();
    routes.set(namespace, byName);
    if (ref.sectionName === undefined) {
      byName.set(ref.name, null);
      return;
    }
    if (!(virtualService.spec.http ?? []).some((rule) => rule.name === ref.sectionName)) {
      ok = false;
      diagnostics.push(pluginDiagnostic('MG1506', `VirtualService ${namespace}/${ref.name} has no http rule named "${ref.sectionName}"`, resource, [...path, 'sectionName']));
      return;
    }
    const existing = byName.get(ref.name);
    // A whole-VirtualService target already covers every rule.
    if (existing !== null) byName.set(ref.name, [...(existing ?? []), `${namespace}/${ref.name}.${ref.sectionName}`]);
  });
  if (!ok) return null;
  return { gatewayPorts: gatewayPorts.size === 0 ? null : gatewayPorts, routes: routes.size === 0 ? null : routes };
}

function listenerMatcher(spec: PluginSpec, gatewayPorts: ReadonlySet<number> | null): (listener: ListenerView) => boolean {
  const selectors = (spec.match ?? []).map((selector) => ({
    client: selector.mode !== 'SERVER',
    server: selector.mode !== 'CLIENT',
    ports: selector.ports === undefined ? null : new Set(selector.ports.map((port) => port.number)),
  }));
  return (listener) => {
    if (gatewayPorts !== null && !(listener.direction === 'gateway' && gatewayPorts.has(listener.port))) return false;
    if (selectors.length === 0) return true;
    const client = listener.direction === 'outbound';
    return selectors.some((s) => (client ? s.client : s.server) && (s.ports === null || s.ports.has(listener.port)));
  };
}

function runOrder(a: PlacedPlugin, b: PlacedPlugin): number {
  return PHASE_INDEX[a.phase] - PHASE_INDEX[b.phase] || b.priority - a.priority || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

export function compileUserPlugins(input: CompileInput, loaded: LoadedPlugins | undefined): CompiledUserPlugins {
  const placed: PlacedPlugin[] = [];
  for (const plugin of loaded?.plugins ?? []) {
    const spec = plugin.resource.spec;
    if (spec.selector !== undefined && spec.targetRefs !== undefined) {
      input.diagnostics.push(pluginDiagnostic('MG1508', 'set either selector or targetRefs, not both', plugin.resource, ['spec', 'targetRefs']));
      continue;
    }
    const targets = compileTargets(plugin.resource, input.resources, input.diagnostics);
    if (targets === null) continue;
    placed.push({
      ...plugin,
      phase: spec.phase,
      priority: spec.priority,
      failOpen: spec.failStrategy === 'FAIL_OPEN',
      routes: targets.routes,
      appliesToListener: listenerMatcher(spec, targets.gatewayPorts),
    });
  }
  placed.sort(runOrder);
  const byListener = new Map<string, PhasePlugins>();
  return {
    plugins: placed,
    forListener(listener) {
      if (placed.length === 0) return NO_PLUGINS;
      let phases = byListener.get(listener.key);
      if (phases === undefined) {
        const applicable = placed.filter((plugin) => plugin.appliesToListener(listener));
        phases = PHASES.map((phase) => applicable.filter((plugin) => plugin.phase === phase));
        byListener.set(listener.key, phases);
      }
      return phases;
    },
    dispose: () => disposeAll(loaded),
  };
}

async function disposeAll(loaded: LoadedPlugins | undefined): Promise<void> {
  await Promise.all((loaded?.plugins ?? []).map(disposeState));
}
