/**
 * The asynchronous stage of user plugins, once per snapshot: resolve each applicable resource's
 * module, import it, check it is a plugin, validate `pluginConfig` against its schema and run its
 * `compile`. Every problem becomes a diagnostic at the resource's field (file:line); nothing throws.
 *
 * ESM caches a module by URL for the life of the process, so the import URL carries the file's
 * content hash: a changed plugin file is imported afresh on reload, an unchanged one is reused.
 */
import type { FastifyBaseLogger } from 'fastify';
import { Kind } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { schemaProblems } from '../../gateway/config/schema-errors.js';
import type { FieldPath, Resource } from '../../gateway/config/resource.js';
import type { PrepareInput } from '../../gateway/pipeline/types.js';
import { PLUGIN_API_VERSION } from '../../gateway/plugin-api/index.js';
import type { PluginLogger, PluginSetup, UserPlugin } from '../../gateway/plugin-api/index.js';
import { policyAppliesTo } from '../../gateway/policy/selector.js';
import { pluginDiagnostic } from './diagnostics.js';
import { declarePluginCounter } from './plugin-metrics.js';
import { resolvePluginModule } from './resolve-module.js';
import { PLUGIN_KINDS } from './schema.js';
import type { PluginSpec } from './schema.js';

/** One plugin resource with its module imported and its state compiled for this snapshot. */
export interface LoadedPlugin {
  /** `<namespace>/<name>` of the resource. */
  readonly key: string;
  readonly resource: Resource<PluginSpec>;
  /** The module file that was imported. */
  readonly file: string;
  readonly module: UserPlugin;
  readonly state: unknown;
  readonly logger: PluginLogger;
}

export interface LoadedPlugins {
  readonly plugins: readonly LoadedPlugin[];
}

const PLUGIN_KIND_NAMES = new Set<string>(PLUGIN_KINDS.map((kind) => kind.kind));
const URL_PATH: FieldPath = ['spec', 'url'];
const CONFIG_PATH: FieldPath = ['spec', 'pluginConfig'];

export function pluginResources(resources: readonly Resource[]): Resource<PluginSpec>[] {
  return resources.filter((resource) => PLUGIN_KIND_NAMES.has(resource.kind)) as Resource<PluginSpec>[];
}

/** Resources in another namespace apply only from the root namespace; targetRefs scope by their targets instead. */
function appliesToThisProxy(resource: Resource<PluginSpec>, input: PrepareInput): boolean {
  if (resource.spec.targetRefs !== undefined) return true;
  return policyAppliesTo(resource.metadata.namespace, resource.spec.selector, input.workload, input.rootNamespace);
}

export async function loadUserPlugins(input: PrepareInput): Promise<{ value: LoadedPlugins; fingerprint: string }> {
  const loaded: LoadedPlugin[] = [];
  const fingerprints: string[] = [];
  for (const resource of pluginResources(input.resources)) {
    if (!appliesToThisProxy(resource, input)) continue;
    const plugin = await loadOne(resource, input, fingerprints);
    if (plugin !== null) loaded.push(plugin);
  }
  return { value: { plugins: loaded }, fingerprint: fingerprints.join('\u0000') };
}

async function loadOne(resource: Resource<PluginSpec>, input: PrepareInput, fingerprints: string[]): Promise<LoadedPlugin | null> {
  const { diagnostics } = input;
  const key = `${resource.metadata.namespace}/${resource.metadata.name}`;
  const spec = resource.spec;
  const resolved = await resolvePluginModule(spec.url, input.configDirectory);
  if (!resolved.ok) {
    diagnostics.push(pluginDiagnostic('MG1501', resolved.reason, resource, URL_PATH));
    return null;
  }
  let content: Buffer;
  try {
    content = await readFile(resolved.file);
  } catch (error) {
    diagnostics.push(pluginDiagnostic('MG1501', `cannot read plugin module ${resolved.file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, resource, URL_PATH));
    return null;
  }
  const digest = createHash('sha256').update(content).digest('hex');
  if (spec.sha256 !== undefined) {
    if (resolved.kind === 'package') {
      diagnostics.push(pluginDiagnostic('MG1507', `sha256 pins a file, and "${spec.url}" is a package name; give the module's path instead`, resource, ['spec', 'sha256']));
      return null;
    }
    if (spec.sha256.toLowerCase() !== digest) {
      diagnostics.push(pluginDiagnostic('MG1507', `${resolved.file} has sha256 ${digest}, the resource pins ${spec.sha256.toLowerCase()}`, resource, ['spec', 'sha256']));
      return null;
    }
  }
  fingerprints.push(`${resolved.file}@${digest}`);
  let namespace: { default?: unknown };
  try {
    namespace = (await import(`${pathToFileURL(resolved.file).href}?content=${digest.slice(0, 16)}`)) as { default?: unknown };
  } catch (error) {
    diagnostics.push(pluginDiagnostic('MG1501', `cannot import ${resolved.file}: ${(error as Error).message ?? String(error)}`, resource, URL_PATH));
    return null;
  }
  const problem = contractProblem(namespace.default);
  if (problem !== null) {
    diagnostics.push(pluginDiagnostic('MG1502', `${resolved.file}: ${problem}`, resource, URL_PATH));
    return null;
  }
  const module = namespace.default as UserPlugin;
  const config = validatedConfig(module, resource, input);
  if (config === INVALID) return null;
  const logger = pluginLogger(input.logger, key);
  let failed = false;
  const setup: PluginSetup<unknown> = {
    config,
    name: key,
    phase: spec.phase,
    mode: input.mode,
    workload: input.workload,
    configDirectory: input.configDirectory,
    logger,
    metrics: {
      counter: (options) => {
        const declared = declarePluginCounter(options);
        if (declared.ok) return declared.counter;
        failed = true;
        diagnostics.push(pluginDiagnostic('MG1504', `plugin ${key}: ${declared.problem}`, resource, URL_PATH));
        return { inc: () => undefined };
      },
    },
    problem: (message, path = []) => {
      failed = true;
      diagnostics.push(pluginDiagnostic('MG1504', message, resource, [...CONFIG_PATH, ...path]));
    },
  };
  let state: unknown;
  try {
    state = module.compile === undefined ? undefined : await module.compile(setup);
  } catch (error) {
    const at = spec.pluginConfig === undefined ? URL_PATH : CONFIG_PATH;
    diagnostics.push(pluginDiagnostic('MG1504', `plugin ${key} failed to compile its config: ${(error as Error).message ?? String(error)}`, resource, at));
    return null;
  }
  const plugin: LoadedPlugin = { key, resource, file: resolved.file, module, state, logger };
  if (failed) {
    await disposeState(plugin);
    return null;
  }
  return plugin;
}

const INVALID = Symbol('invalid pluginConfig');

function validatedConfig(module: UserPlugin, resource: Resource<PluginSpec>, input: PrepareInput): unknown {
  const given = resource.spec.pluginConfig;
  const schema = module.configSchema;
  if (schema === undefined) {
    if (given === undefined || Object.keys(given).length === 0) return undefined;
    input.diagnostics.push(pluginDiagnostic('MG1503', 'this plugin takes no pluginConfig (its module exports no configSchema)', resource, CONFIG_PATH));
    return INVALID;
  }
  const value = Value.Default(schema, structuredClone(given ?? {}));
  const problems = schemaProblems(schema, value);
  for (const problem of problems) {
    input.diagnostics.push(pluginDiagnostic('MG1503', problem.message, resource, [...CONFIG_PATH, ...problem.path]));
  }
  return problems.length === 0 ? value : INVALID;
}

function isTypeBoxSchema(value: unknown): value is TSchema {
  return typeof value === 'object' && value !== null && Kind in value;
}

function contractProblem(candidate: unknown): string | null {
  if (typeof candidate !== 'object' || candidate === null) return 'the module has no default export object (write `export default definePlugin({ … })`)';
  const plugin = candidate as Record<string, unknown>;
  const apiVersion = plugin.apiVersion ?? PLUGIN_API_VERSION;
  if (apiVersion !== PLUGIN_API_VERSION) return `apiVersion ${String(apiVersion)} is not supported (this meshgate implements plugin API ${PLUGIN_API_VERSION})`;
  if (typeof plugin.onRequest !== 'function') return 'the default export has no onRequest function';
  for (const name of ['compile', 'dispose'] as const) {
    if (plugin[name] !== undefined && typeof plugin[name] !== 'function') return `${name} must be a function`;
  }
  if (plugin.configSchema !== undefined && !isTypeBoxSchema(plugin.configSchema)) {
    return 'configSchema must be a TypeBox schema (build it with `Type` from meshgate/plugin-api)';
  }
  return null;
}

function pluginLogger(logger: FastifyBaseLogger, key: string): PluginLogger {
  const child = logger.child({ plugin: key });
  const method =
    (level: 'trace' | 'debug' | 'info' | 'warn' | 'error') =>
    (object: object | string, message?: string): void => {
      if (typeof object === 'string') child[level](object);
      else child[level](object, message);
    };
  return { trace: method('trace'), debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}

/** Runs the plugin's `dispose`; a failure there is logged, never thrown (the snapshot is gone either way). */
export async function disposeState(plugin: LoadedPlugin): Promise<void> {
  if (plugin.module.dispose === undefined) return;
  try {
    await plugin.module.dispose(plugin.state);
  } catch (error) {
    plugin.logger.error({ err: error }, 'plugin dispose failed');
  }
}
