/**
 * The Kubernetes-style envelope of a document: apiVersion + kind resolved against the kind registry,
 * and metadata checked (DNS-1123 names, string labels). Unknown fields are reported, never ignored,
 * except the metadata fields Kubernetes tooling adds on export, which are tolerated.
 */
import type { DiagnosticCode } from './diagnostics.js';
import { isRecord } from './field-path.js';
import type { KindDefinition, KindRegistry } from './kinds/index.js';
import type { ResourceMetadata } from './resource.js';

export const DEFAULT_NAMESPACE = 'default';

const ENVELOPE_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
const METADATA_FIELDS = new Set(['name', 'namespace', 'labels', 'annotations']);
/** Written by `kubectl get -o yaml`; harmless, so exported manifests load as-is. */
const TOLERATED_METADATA_FIELDS = new Set([
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'generateName',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface EnvelopeProblem {
  readonly code: DiagnosticCode;
  readonly path: (string | number)[];
  readonly message: string;
}

export interface Envelope {
  readonly apiVersion: string;
  readonly kind: string;
  readonly definition: KindDefinition | undefined;
  readonly metadata: ResourceMetadata | undefined;
  readonly spec: unknown;
  /** The kind's extra top-level fields (KindDefinition.topLevel) as written; undefined for kinds without any. */
  readonly topLevel: Record<string, unknown> | undefined;
  readonly problems: EnvelopeProblem[];
}

export function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

function stringMap(value: unknown, path: (string | number)[], problems: EnvelopeProblem[]): Record<string, string> {
  const result: Record<string, string> = {};
  if (value === undefined || value === null) return result;
  if (!isRecord(value)) {
    problems.push({ code: 'MG0103', path, message: `${path.join('.')} must be a mapping of strings` });
    return result;
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === 'string') result[key] = entry;
    else problems.push({ code: 'MG0103', path: [...path, key], message: `value of "${key}" must be a string (quote it)` });
  }
  return result;
}

function readMetadata(value: unknown, problems: EnvelopeProblem[]): ResourceMetadata | undefined {
  if (!isRecord(value)) {
    problems.push({ code: 'MG0008', path: value === undefined ? [] : ['metadata'], message: 'missing metadata.name' });
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (!METADATA_FIELDS.has(key) && !TOLERATED_METADATA_FIELDS.has(key)) {
      problems.push({ code: 'MG0010', path: ['metadata', key], message: `unknown metadata field "${key}"` });
    }
  }
  const { name, namespace } = value;
  let valid = true;
  if (name === undefined || name === null || name === '') {
    problems.push({ code: 'MG0008', path: ['metadata'], message: 'missing metadata.name' });
    valid = false;
  } else if (typeof name !== 'string' || !isDns1123Subdomain(name)) {
    problems.push({
      code: 'MG0009',
      path: ['metadata', 'name'],
      message: `metadata.name ${JSON.stringify(name)} is not a DNS-1123 subdomain (lower-case letters, digits, "-", ".")`,
    });
    valid = false;
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || !isDns1123Label(namespace))) {
    problems.push({
      code: 'MG0009',
      path: ['metadata', 'namespace'],
      message: `metadata.namespace ${JSON.stringify(namespace)} is not a DNS-1123 label (lower-case letters, digits, "-")`,
    });
    valid = false;
  }
  const labels = stringMap(value.labels, ['metadata', 'labels'], problems);
  const annotations = stringMap(value.annotations, ['metadata', 'annotations'], problems);
  if (!valid) return undefined;
  return {
    name: name as string,
    namespace: typeof namespace === 'string' ? namespace : DEFAULT_NAMESPACE,
    labels,
    annotations,
  };
}

function resolveKind(apiVersion: string, kind: string, registry: KindRegistry, problems: EnvelopeProblem[]): KindDefinition | undefined {
  const definition = registry.lookup(apiVersion, kind);
  if (definition !== undefined) return definition;
  const sameKind = registry.byKind(kind);
  if (sameKind.length === 0) {
    const known = [...new Set(registry.kinds.map((k) => k.kind))].join(', ');
    problems.push({ code: 'MG0006', path: ['kind'], message: `unknown kind "${kind}" (known kinds: ${known})` });
  } else {
    const versions = sameKind.flatMap((k) => k.versions.map((v) => `${k.group}/${v}`)).join(', ');
    problems.push({
      code: 'MG0007',
      path: ['apiVersion'],
      message: `${kind} is not served as "${apiVersion}" (use one of ${versions})`,
    });
  }
  return undefined;
}

export function readEnvelope(document: Record<string, unknown>, registry: KindRegistry): Envelope {
  const problems: EnvelopeProblem[] = [];
  const { apiVersion, kind } = document;
  let definition: KindDefinition | undefined;
  if (typeof apiVersion !== 'string' || apiVersion === '') {
    problems.push({ code: 'MG0005', path: apiVersion === undefined ? [] : ['apiVersion'], message: 'missing or non-string apiVersion' });
  }
  if (typeof kind !== 'string' || kind === '') {
    problems.push({ code: 'MG0005', path: kind === undefined ? [] : ['kind'], message: 'missing or non-string kind' });
  }
  if (typeof apiVersion === 'string' && apiVersion !== '' && typeof kind === 'string' && kind !== '') {
    definition = resolveKind(apiVersion, kind, registry, problems);
  }
  const extraFields = new Set(definition?.topLevel === undefined ? [] : Object.keys(definition.topLevel.properties));
  const topLevel: Record<string, unknown> | undefined = definition?.topLevel === undefined ? undefined : {};
  for (const key of Object.keys(document)) {
    if (topLevel !== undefined && extraFields.has(key)) topLevel[key] = document[key];
    else if (!ENVELOPE_FIELDS.has(key)) problems.push({ code: 'MG0010', path: [key], message: `unknown top-level field "${key}"` });
  }
  const metadata = readMetadata(document.metadata, problems);
  return {
    apiVersion: typeof apiVersion === 'string' ? apiVersion : '',
    kind: typeof kind === 'string' ? kind : '',
    definition,
    metadata,
    spec: document.spec ?? {},
    topLevel,
    problems,
  };
}
