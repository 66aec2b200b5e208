/**
 * `meshgate/plugin-api`: the public contract of user plugins (docs/plugins.md). A plugin is an ES
 * module whose default export is a `UserPlugin`; a `Plugin` / `WasmPlugin` resource loads it and
 * places it in the pipeline. Like the built-in plugins it compiles its config ONCE per snapshot and
 * its request hook reads that compiled state.
 *
 * Semver: this file is the whole public surface. Within a major version of meshgate, fields and
 * methods are only added, never removed or changed in meaning; `PLUGIN_API_VERSION` changes only with
 * a major version. Nothing else in the package is public.
 *
 * This module holds no state, so a plugin that resolves its own copy of it behaves the same.
 */
import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import type { JwtAuthResult, PeerIdentity, ProxyMode, RequestAttributes, WorkloadInfo } from '../pipeline/types.js';

export { Type };
export type { Static, TSchema, JwtAuthResult, PeerIdentity, ProxyMode, RequestAttributes, WorkloadInfo };

/** The contract version a plugin module is written against (its optional `apiVersion`). */
export const PLUGIN_API_VERSION = 1;

/** Where the plugin runs, as Istio's WasmPlugin `phase` (docs/plugins.md has the table). */
export type PluginPhase = 'AUTHN' | 'AUTHZ' | 'STATS' | 'UNSPECIFIED_PHASE';

/** A pino-style logger whose lines carry `plugin: <namespace>/<name>`. */
export interface PluginLogger {
  trace(object: object | string, message?: string): void;
  debug(object: object | string, message?: string): void;
  info(object: object | string, message?: string): void;
  warn(object: object | string, message?: string): void;
  error(object: object | string, message?: string): void;
}

export interface PluginCounter<Label extends string = string> {
  /** Label values are truncated and the number of series is capped, like meshgate's own metrics. */
  inc(labels?: Readonly<Record<Label, string>>, value?: number): void;
}

export interface PluginCounterOptions<Label extends string> {
  /** Prometheus name, e.g. `myteam_apikey_checks_total`; must not start with `meshgate_` or `istio_`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly Label[];
}

/** Metrics on meshgate's own registry (the admin `/metrics`). A name keeps its series across reloads. */
export interface PluginMetrics {
  counter<Label extends string = never>(options: PluginCounterOptions<Label>): PluginCounter<Label>;
}

/** What `compile` gets, once per snapshot. */
export interface PluginSetup<Config> {
  /** `pluginConfig`, validated against `configSchema` with the schema's defaults filled in. */
  readonly config: Config;
  /** `<namespace>/<name>` of the resource that loaded the plugin. */
  readonly name: string;
  readonly phase: PluginPhase;
  readonly mode: ProxyMode;
  /** The proxy this process is (the ingress, or the sidecar's workload). */
  readonly workload: WorkloadInfo;
  /** Directory of the config: resolve relative paths of your config from here. */
  readonly configDirectory: string;
  readonly logger: PluginLogger;
  readonly metrics: PluginMetrics;
  /**
   * Rejects the config with a diagnostic at `pluginConfig.<path>` (file:line); the snapshot is not
   * used (at start meshgate refuses to start; on reload the last good config keeps serving).
   */
  problem(message: string, path?: readonly (string | number)[]): void;
}

export interface LocalReplyOptions {
  readonly status: number;
  /** A short machine-readable token for logs and metrics, e.g. `api_key_missing`. */
  readonly reason: string;
  /** Envoy-style response flag for the access log and `x-meshgate-reason`, e.g. `UAEX`; default none. */
  readonly flag?: string;
  /** Plain-text body; default the reason in words. '' sends no body. */
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The request as the plugin's hook sees it; valid only during the hook call and the promise it returns. */
export interface PluginRequest {
  /** Normalised attributes, exactly as AuthorizationPolicy and rate limits see them. */
  readonly attributes: RequestAttributes;
  readonly requestId: string;
  /** The verified JWT (after the built-in authn step: phases AUTHZ, STATS, UNSPECIFIED_PHASE); else null. */
  readonly auth: JwtAuthResult | null;
  /** `<ns>/<virtualservice>.<rule>` once routing ran (phases STATS and UNSPECIFIED_PHASE); else ''. */
  readonly routeName: string;
  /** A request header (name case-insensitive); repeated headers joined with `, `. */
  header(name: string): string | undefined;
  /** Sets a request header for the later steps and the upstream. */
  setRequestHeader(name: string, value: string): void;
  removeRequestHeader(name: string): void;
  /** Sets a header on the response, whoever answers it (over the upstream's own header of that name). */
  setResponseHeader(name: string, value: string): void;
  /** Answers the request here: no later step runs and nothing is forwarded. */
  reply(options: LocalReplyOptions): void;
  readonly log: PluginLogger;
}

export interface UserPlugin<Config = unknown, State = unknown> {
  /** The contract version; absent means 1. */
  readonly apiVersion?: number;
  /** TypeBox schema of `pluginConfig` (build it with the `Type` exported here); absent means no config. */
  readonly configSchema?: TSchema;
  /**
   * Once per snapshot (start, each reload, `validate`). Do not open connections here (validate must
   * exit): open them lazily on the first request and close them in `dispose`.
   */
  compile?(setup: PluginSetup<Config>): State | Promise<State>;
  /** Each request on the routes and listeners the resource selects. Throwing or rejecting is a plugin failure (failStrategy). */
  onRequest(request: PluginRequest, state: State): void | Promise<void>;
  /** The snapshot that compiled `state` no longer serves (replaced and drained, rejected, or shutdown). */
  dispose?(state: State): void | Promise<void>;
}

/** A plugin with a config: `compile` sees the config typed from `configSchema`. */
export interface PluginDefinition<Schema extends TSchema, State> {
  readonly apiVersion?: number;
  readonly configSchema: Schema;
  compile?(setup: PluginSetup<Static<Schema>>): State | Promise<State>;
  onRequest(request: PluginRequest, state: State): void | Promise<void>;
  dispose?(state: State): void | Promise<void>;
}

/** Types a plugin whose `Config` is derived from its `configSchema`. Returns its argument. */
export function definePlugin<Schema extends TSchema, State = undefined>(plugin: PluginDefinition<Schema, State>): UserPlugin<Static<Schema>, State> {
  return plugin as UserPlugin<Static<Schema>, State>;
}
