/**
 * Load-time problems of Plugin / WasmPlugin resources (MG15xx). Every one rejects the snapshot: a
 * plugin that cannot be placed as written must not be silently left out (it may be an auth check).
 */
import { diagnosticOf } from '../../gateway/config/diagnostics.js';
import type { DiagnosticDefinition } from '../../gateway/config/diagnostics.js';
import type { Diagnostic, FieldPath, Resource } from '../../gateway/config/resource.js';
import { formatFieldPath } from '../../gateway/config/field-path.js';

export const USER_PLUGIN_DIAGNOSTICS = [
  {
    code: 'MG1501',
    severity: 'error',
    title: 'Plugin module not loadable',
    explanation:
      'The `url` of a Plugin/WasmPlugin could not be imported: the file or package does not exist, the module throws while loading, or the URL is not one meshgate loads (`file://`, a path, or a package name; `oci://` and `http(s)://` Wasm modules are not supported). The message has the import error.',
  },
  {
    code: 'MG1502',
    severity: 'error',
    title: 'Not a meshgate plugin',
    explanation:
      'The module loaded, but its default export is not a plugin: an object with an `onRequest` function, optional `compile`/`dispose` functions, an optional TypeBox `configSchema`, and an `apiVersion` this meshgate supports (1).',
  },
  {
    code: 'MG1503',
    severity: 'error',
    title: 'Invalid pluginConfig',
    explanation: '`pluginConfig` does not match the `configSchema` the plugin exports, or the plugin has no schema and takes no config. The position points at the offending field.',
  },
  {
    code: 'MG1504',
    severity: 'error',
    title: 'Plugin compile failed',
    explanation: 'The plugin\'s `compile` threw, rejected, or reported a problem with its config (`setup.problem`).',
  },
  {
    code: 'MG1505',
    severity: 'error',
    title: 'Route target in an early phase',
    explanation:
      'A `VirtualService` targetRef scopes the plugin to routes, but phases AUTHN and AUTHZ run before routing (routes may match JWT claims, and authorization comes first). Use phase STATS or UNSPECIFIED_PHASE, or target a Gateway.',
  },
  {
    code: 'MG1506',
    severity: 'error',
    title: 'Unknown plugin target',
    explanation: 'A targetRef names a Gateway or VirtualService (or a VirtualService `http` rule by `sectionName`) that is not in the config.',
  },
  {
    code: 'MG1507',
    severity: 'error',
    title: 'Module checksum mismatch',
    explanation: 'The module file\'s SHA-256 is not the `sha256` the resource pins, so the file is not the one that was reviewed. A package name cannot be pinned: `sha256` needs a file URL or path.',
  },
  {
    code: 'MG1508',
    severity: 'error',
    title: 'selector with targetRefs',
    explanation: 'As in Istio, a plugin is scoped by `selector` (workloads) or by `targetRefs`, not both.',
  },
] as const satisfies readonly DiagnosticDefinition[];

export type UserPluginDiagnosticCode = (typeof USER_PLUGIN_DIAGNOSTICS)[number]['code'];

const DEFINITIONS: ReadonlyMap<string, DiagnosticDefinition> = new Map(USER_PLUGIN_DIAGNOSTICS.map((definition) => [definition.code, definition]));

/** A diagnostic at `path` inside the resource, naming it. */
export function pluginDiagnostic(code: UserPluginDiagnosticCode, message: string, resource: Resource, path: FieldPath): Diagnostic {
  // The code type is derived from the table, so the lookup cannot miss.
  return diagnosticOf(DEFINITIONS.get(code) as DiagnosticDefinition, message, resource.at(path), {
    kind: resource.kind,
    namespace: resource.metadata.namespace,
    name: resource.metadata.name,
    field: formatFieldPath(path),
  });
}
