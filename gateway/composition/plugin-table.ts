/**
 * The composition root: the one module of gateway/ that imports plugins/. It builds THE request
 * pipeline, one ordered table shared by the ingress and every sidecar listener, and so wires every
 * capability a plugin offers the core (pipeline/capabilities.ts: metrics, the proxy's own events,
 * explanations). The CLI and the worker threads' entry (worker-main.ts) take the table from here.
 * Order is registration order; each entry says why it sits where it does (Envoy's filter-chain discipline).
 * To add a feature: write plugins/<name>/ and add one row here — no other file changes.
 */
import { accessLogPlugin } from '../../plugins/access-log/index.js';
import { authnPlugin } from '../../plugins/authn/index.js';
import { authzPlugin } from '../../plugins/authz/index.js';
import { faultsPlugin } from '../../plugins/faults/index.js';
import { metricsPlugin } from '../../plugins/metrics/index.js';
import { rateLimitPlugin } from '../../plugins/ratelimit/index.js';
import { tracingPlugin } from '../../plugins/tracing/index.js';
import { createUserPluginSteps } from '../../plugins/user-plugins/index.js';
import type { DiagnosticDefinition } from '../config/diagnostics.js';
import type { PluginKind } from '../config/kinds/index.js';
import type { MeshPlugin } from '../pipeline/types.js';
import { routerStep } from '../proxy/route-step.js';

export interface PipelineEntry {
  readonly plugin: MeshPlugin;
  readonly why: string;
}

/** Users' own plugins (Plugin / WasmPlugin resources), one step per Istio WasmPlugin phase. */
const userPlugins = createUserPluginSteps();

export const PIPELINE: readonly PipelineEntry[] = [
  { plugin: tracingPlugin, why: 'First: the hop span must cover every later step, including local replies, and the forwarded traceparent is set here.' },
  { plugin: metricsPlugin, why: 'onResponse: counts every response, local replies included, so it registers before anything can answer.' },
  { plugin: accessLogPlugin, why: 'onResponse: one line per request whatever answered it, with the reason of any local reply.' },
  { plugin: userPlugins.authn, why: 'User plugins of phase AUTHN: before the built-in authentication, after the observers so their replies are counted, logged and traced. Also loads every plugin resource.' },
  { plugin: authnPlugin, why: 'Before authorization: policies match on the verified JWT principal and claims.' },
  { plugin: userPlugins.authz, why: 'User plugins of phase AUTHZ: after authentication (they see the JWT), before the built-in authorization.' },
  { plugin: authzPlugin, why: 'Before routing, as Envoy RBAC: a denied request never reaches route-dependent steps or the upstream.' },
  { plugin: routerStep, why: 'After authn (routes may match JWT claims) and authz; before rate limits and faults, which depend on the route.' },
  { plugin: userPlugins.stats, why: 'User plugins of phase STATS: after authorization as in Istio, and after routing so they may be scoped to routes.' },
  { plugin: rateLimitPlugin, why: 'After routing (a limit may count per route); before faults, so a limited request costs nothing more.' },
  { plugin: faultsPlugin, why: 'Before the user plugins of no phase and the terminal proxy step: injects the matched route’s delay/abort instead of calling upstream.' },
  { plugin: userPlugins.unspecified, why: 'User plugins without a phase: as close to the end as possible (Istio), just before the terminal proxy step.' },
];

export const PIPELINE_PLUGINS: readonly MeshPlugin[] = PIPELINE.map((entry) => entry.plugin);

/** The config kinds the plugins add to the language (validated by the loader, published in the JSON Schema). */
export const PIPELINE_KINDS: readonly PluginKind[] = PIPELINE_PLUGINS.flatMap((plugin) => plugin.kinds ?? []);

/** The diagnostic codes the plugins define (documented with the core's in docs/diagnostics.md). */
export const PIPELINE_DIAGNOSTICS: readonly DiagnosticDefinition[] = PIPELINE_PLUGINS.flatMap((plugin) => plugin.diagnostics ?? []);

/** The entry module of a worker thread (worker-supervisor.ts): it serves this same table. */
export const WORKER_ENTRY = new URL('./worker-main.js', import.meta.url);
