/**
 * The text of config/meshgate.schema.json: one JSON Schema (draft-07, what yaml-language-server speaks)
 * for a config document, with each kind's spec schema selected by apiVersion + kind. Usage in a
 * config file: `# yaml-language-server: $schema=./meshgate.schema.json`. gateway/composition/publish-schema.ts
 * writes it with the kinds the plugins contribute.
 */
import { DURATION_FORMAT } from './kinds/common.js';
import { buildKindRegistry } from './kinds/index.js';
import type { PluginKind } from './kinds/index.js';
import { isRecord } from './field-path.js';

export const PUBLISHED_SCHEMA_PATH = 'config/meshgate.schema.json';

/** Editors do not know our duration format; give them the equivalent pattern. */
const DURATION_PATTERN = '^(0|((\\d+(\\.\\d*)?|\\.\\d+)(ns|us|µs|μs|ms|s|m|h))+)$';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Runtime schemas list defaulted fields as required (so the static types say "always present after
 * loading"); a document may omit them, so the published schema does not require them.
 */
function forEditors(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(forEditors);
  if (!isRecord(schema)) return schema;
  const result: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(schema)) result[key] = forEditors(value as Json);
  const properties = result.properties;
  if (Array.isArray(result.required) && isRecord(properties)) {
    const required = result.required.filter((name) => typeof name === 'string' && !(isRecord(properties[name]) && 'default' in properties[name]));
    if (required.length === 0) delete result.required;
    else result.required = required;
  }
  if (result.format === DURATION_FORMAT) {
    delete result.format;
    result.pattern = DURATION_PATTERN;
  }
  return result;
}

const METADATA = {
  type: 'object',
  description: 'Kubernetes-style metadata.',
  properties: {
    name: { type: 'string', description: 'DNS-1123 subdomain name, unique per kind and namespace.', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', maxLength: 253 },
    namespace: { type: 'string', description: 'Namespace (default "default").', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
    labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'Labels.' },
    annotations: { type: 'object', additionalProperties: { type: 'string' }, description: 'Annotations, e.g. istio.io/dry-run.' },
  },
  required: ['name'],
} as const;

export function buildPublishedSchema(extraKinds: readonly PluginKind[] = []): Json {
  const registry = buildKindRegistry(extraKinds);
  const apiVersions = [...new Set(registry.kinds.flatMap((k) => k.versions.map((v) => `${k.group}/${v}`)))];
  const kinds = [...new Set(registry.kinds.map((k) => k.kind))];
  const selections = registry.kinds.map((definition) => ({
    if: {
      properties: {
        apiVersion: { enum: definition.versions.map((v) => `${definition.group}/${v}`) },
        kind: { const: definition.kind },
      },
      required: ['apiVersion', 'kind'],
    },
    then: { properties: { spec: forEditors(JSON.parse(JSON.stringify(definition.spec)) as Json) } },
  }));
  return JSON.parse(
    JSON.stringify({
      $schema: 'http://json-schema.org/draft-07/schema#',
      $id: 'https://meshgate.dev/schemas/meshgate.schema.json',
      title: 'meshgate config document',
      description: 'One document of a meshgate config file: an Istio networking/security resource or a meshgate.dev resource.',
      type: 'object',
      properties: {
        // Not enums: kinds contributed by plugins that this file was not generated with must not be flagged.
        apiVersion: { type: 'string', examples: apiVersions, description: 'API group and version.' },
        kind: { type: 'string', examples: kinds, description: 'Resource kind.' },
        metadata: METADATA,
        spec: { type: 'object', description: 'The resource specification.' },
        status: { description: 'Ignored.' },
        // Dapr writes these beside spec; the loader accepts each only for the kinds that declare it.
        ...Object.fromEntries(
          registry.kinds.flatMap((k) => Object.entries(k.topLevel?.properties ?? {})).map(([name, schema]) => [name, forEditors(JSON.parse(JSON.stringify(schema)) as Json)]),
        ),
      },
      required: ['apiVersion', 'kind', 'metadata'],
      additionalProperties: false,
      allOf: selections,
    }),
  ) as Json;
}

export function renderPublishedSchema(extraKinds: readonly PluginKind[] = []): string {
  return `${JSON.stringify(buildPublishedSchema(extraKinds), null, 2)}\n`;
}
