/**
 * User plugins (docs/plugins.md): Plugin / WasmPlugin resources load ES modules that implement the
 * public plugin API (gateway/plugin-api). One host compiles them per snapshot; four steps in the
 * pipeline table run them, one per phase, each walking only the plugins of its listener and phase.
 *
 * Isolation: a hook that throws or rejects answers its own request with a 500 (flag PLUGIN, the plugin
 * named in the reason and in `meshgate_plugin_errors_total`), or is skipped for that request with
 * `failStrategy: FAIL_OPEN`. The proxy and other requests never see it.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import fp from 'fastify-plugin';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import type { ListenerView, MeshPlugin } from '../../gateway/pipeline/types.js';
import type { ProxyRequestContext } from '../../gateway/proxy/proxy-context.js';
import { recordPluginError } from './plugin-metrics.js';
import { PHASE_INDEX, compileUserPlugins, routeSelected } from './compile.js';
import type { CompiledUserPlugins, PlacedPlugin } from './compile.js';
import { USER_PLUGIN_DIAGNOSTICS } from './diagnostics.js';
import { loadUserPlugins } from './load.js';
import type { LoadedPlugins } from './load.js';
import { HookedRequest } from './plugin-request.js';
import { PHASES, PLUGIN_KINDS, PluginSpec } from './schema.js';
import type { Phase } from './schema.js';

export const USER_PLUGINS_NAME = 'user-plugins';
export type { CompiledUserPlugins } from './compile.js';


/** A replaced snapshot's plugin state is released this long after (requests in flight may still use it). */
const RETIRE_DELAY_MS = 60_000;

function failed(plugin: PlacedPlugin, error: unknown, request: FastifyRequest, reply: FastifyReply): boolean {
  const outcome = plugin.failOpen ? 'skipped' : 'local_reply';
  recordPluginError(plugin.key, outcome);
  plugin.logger.error({ err: error, requestId: request.mesh.requestId, outcome }, 'plugin hook failed');
  if (plugin.failOpen && !reply.sent) return false;
  if (!reply.sent) {
    sendLocalReply(request, reply, { status: 500, flag: 'PLUGIN', details: `plugin_failed[${plugin.key}]`, message: `plugin ${plugin.key} failed` });
  }
  return true;
}

/**
 * Runs `plugins` from `index` on, synchronously as long as hooks answer at once; a hook's promise
 * continues the walk when it settles. Ends the pipeline (no `done`) once a reply was sent.
 */
function runFrom(plugins: readonly PlacedPlugin[], index: number, hooked: HookedRequest | null, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const route = request.mesh.route;
  for (let i = index; i < plugins.length; i++) {
    const plugin = plugins[i] as PlacedPlugin;
    if (plugin.routes !== null && !routeSelected(plugin.routes, route)) continue;
    hooked ??= new HookedRequest(request, reply);
    hooked.current = plugin;
    let pending: unknown;
    try {
      pending = plugin.module.onRequest(hooked, plugin.state);
    } catch (error) {
      if (failed(plugin, error, request, reply)) return;
      continue;
    }
    if (pending instanceof Promise) {
      const next = i + 1;
      const resumeWith = hooked;
      pending.then(
        () => {
          if (!reply.sent) runFrom(plugins, next, resumeWith, request, reply, done);
        },
        (error: unknown) => {
          if (!failed(plugin, error, request, reply)) runFrom(plugins, next, resumeWith, request, reply, done);
        },
      );
      return;
    }
    if (reply.sent) return;
  }
  done();
}

function phaseHook(phase: Phase) {
  const phaseIndex = PHASE_INDEX[phase];
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const ctx = request.mesh as ProxyRequestContext;
    const compiled = ctx.pluginState<CompiledUserPlugins | undefined>(USER_PLUGINS_NAME);
    const plugins = compiled === undefined || compiled.plugins.length === 0 ? null : (compiled.forListener(ctx.listener)[phaseIndex] ?? null);
    if (plugins === null || plugins.length === 0) {
      done();
      return;
    }
    runFrom(plugins, 0, null, request, reply, done);
  };
}

/** `authn`, `authz`, `stats`, `unspecified`: step and fastify plugin names. */
function phaseSlug(phase: Phase): string {
  return phase === 'UNSPECIFIED_PHASE' ? 'unspecified' : phase.toLowerCase();
}

function phaseRegistration(phase: Phase) {
  // The last phase runs after rate limits and faults, which are preHandler hooks; the others sit among the onRequest steps.
  const hookName = phase === 'UNSPECIFIED_PHASE' ? 'preHandler' : 'onRequest';
  return fp(
    async (app) => {
      app.addHook(hookName, phaseHook(phase));
    },
    { name: `meshgate-user-plugins-${phaseSlug(phase)}`, fastify: '5.x' },
  );
}

export interface UserPluginSteps {
  /** Phase AUTHN; also the host: kinds, diagnostics, loading and compiling every plugin resource. */
  readonly authn: MeshPlugin<CompiledUserPlugins, LoadedPlugins>;
  readonly authz: MeshPlugin<null>;
  readonly stats: MeshPlugin<null>;
  readonly unspecified: MeshPlugin<null>;
}

function phaseStep(phase: Phase): MeshPlugin<null> {
  return { name: `${USER_PLUGINS_NAME}-${phaseSlug(phase)}`, compile: () => null, register: phaseRegistration(phase) };
}

export function createUserPluginSteps(): UserPluginSteps {
  let active: CompiledUserPlugins | null = null;
  const retiring = new Map<NodeJS.Timeout, CompiledUserPlugins>();
  const pendingDisposals = new Set<Promise<void>>();
  const dispose = (compiled: CompiledUserPlugins): void => {
    const disposal = compiled.dispose().finally(() => pendingDisposals.delete(disposal));
    pendingDisposals.add(disposal);
  };
  const host: MeshPlugin<CompiledUserPlugins, LoadedPlugins> = {
    name: USER_PLUGINS_NAME,
    kinds: PLUGIN_KINDS.map((kind) => ({ group: kind.group, versions: [kind.version], kind: kind.kind, spec: PluginSpec })),
    diagnostics: USER_PLUGIN_DIAGNOSTICS,
    prepare: loadUserPlugins,
    compile: compileUserPlugins,
    discard: (compiled) => dispose(compiled as CompiledUserPlugins),
    activated: (compiled) => {
      const previous = active;
      active = compiled as CompiledUserPlugins;
      if (previous === null || previous === active) return;
      const timer = setTimeout(() => {
        retiring.delete(timer);
        dispose(previous);
      }, RETIRE_DELAY_MS);
      timer.unref();
      retiring.set(timer, previous);
    },
    describe: describeOrder,
    shutdown: async () => {
      for (const [timer, compiled] of retiring) {
        clearTimeout(timer);
        dispose(compiled);
      }
      retiring.clear();
      if (active !== null) dispose(active);
      active = null;
      await Promise.all(pendingDisposals);
    },
    register: phaseRegistration('AUTHN'),
  };
  return { authn: host, authz: phaseStep('AUTHZ'), stats: phaseStep('STATS'), unspecified: phaseStep('UNSPECIFIED_PHASE') };
}

/** The effective order on each listener, for config_dump. */
function describeOrder(compiled: unknown, listeners: readonly ListenerView[]): unknown {
  const placed = compiled as CompiledUserPlugins;
  return listeners.map((listener) => {
    const phases = placed.forListener(listener);
    return {
      listener: listener.name,
      phases: Object.fromEntries(
        PHASES.map((phase) => [
          phase,
          (phases[PHASE_INDEX[phase]] ?? []).map((plugin) => ({
            plugin: plugin.key,
            priority: plugin.priority,
            failStrategy: plugin.failOpen ? 'FAIL_OPEN' : 'FAIL_CLOSE',
            routes: plugin.routes === null ? 'all' : 'selected by targetRefs',
            module: plugin.file,
          })),
        ]),
      ),
    };
  });
}
