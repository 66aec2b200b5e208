/**
 * The Kubernetes-style envelope of a document: apiVersion + kind resolved against the kind registry,
 * and metadata checked (DNS-1123 names, string labels). Unknown fields are reported, never ignored,
 * except the metadata fields Kubernetes tooling adds on export, which are tolerated.
 */
import type { DiagnosticCode } from './diagnostics.js';
import { isRecord } from './field-path.js';
import type { KindDefinition, KindRegistry } from './kinds/index.js';
import type { ResourceMetadata } from './resource.js';
import { didYouMean } from './suggest.js';

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

/** Istio kinds meshgate does not implement: configs written for a cluster keep them, so they are skipped with a warning. */
const UNSUPPORTED_ISTIO_KINDS = new Set(['EnvoyFilter', 'WasmPlugin', 'Telemetry', 'ProxyConfig', 'WorkloadGroup']);

export interface Envelope {
  readonly apiVersion: string;
  readonly kind: string;
  readonly definition: KindDefinition | undefined;
  readonly metadata: ResourceMetadata | undefined;
  readonly spec: unknown;
  /** The kind's extra top-level fields (KindDefinition.topLevel) as written; undefined for kinds without any. */
  readonly topLevel: Record<string, unknown> | undefined;
  readonly problems: EnvelopeProblem[];
  /** Not a mesh resource (MG0014–MG0016): left out without further checks. */
  readonly skipped: boolean;
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
    problems.push({ code: 'MG0103', path, message: 'must be a mapping of strings' });
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
      problems.push({ code: 'MG0010', path: ['metadata', key], message: `unknown metadata field "${key}"${didYouMean(key, METADATA_FIELDS)}` });
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
      message: `${JSON.stringify(name)} is not a DNS-1123 subdomain (lower-case letters, digits, "-", ".")`,
    });
    valid = false;
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || !isDns1123Label(namespace))) {
    problems.push({
      code: 'MG0009',
      path: ['metadata', 'namespace'],
      message: `${JSON.stringify(namespace)} is not a DNS-1123 label (lower-case letters, digits, "-")`,
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

function apiGroup(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

type KindResolution = { readonly definition: KindDefinition } | { readonly skip: EnvelopeProblem } | { readonly problem: EnvelopeProblem };

function resolveKind(apiVersion: string, kind: string, registry: KindRegistry): KindResolution {
  const definition = registry.lookup(apiVersion, kind);
  if (definition !== undefined) return { definition };
  const sameKind = registry.byKind(kind);
  if (sameKind.length > 0) {
    const versions = sameKind.flatMap((k) => k.versions.map((v) => `${k.group}/${v}`)).join(', ');
    return { problem: { code: 'MG0007', path: ['apiVersion'], message: `${kind} is not served as "${apiVersion}" (use one of ${versions})` } };
  }
  const group = apiGroup(apiVersion);
  const istio = group === 'istio.io' || group.endsWith('.istio.io');
  if (istio && UNSUPPORTED_ISTIO_KINDS.has(kind)) {
    return { skip: { code: 'MG0016', path: ['kind'], message: 'an Istio kind meshgate does not support; skipped' } };
  }
  if (!istio && !registry.kinds.some((k) => k.group === group)) {
    return { skip: { code: 'MG0015', path: ['kind'], message: `not a mesh resource (${apiVersion}); skipped` } };
  }
  const known = [...new Set(registry.kinds.map((k) => k.kind))];
  return { problem: { code: 'MG0006', path: ['kind'], message: `unknown kind "${kind}"${didYouMean(kind, known)} (known kinds: ${known.join(', ')})` } };
}

function skippedEnvelope(apiVersion: string, kind: string, problem: EnvelopeProblem): Envelope {
  return { apiVersion, kind, definition: undefined, metadata: undefined, spec: {}, topLevel: undefined, problems: [problem], skipped: true };
}

export function readEnvelope(document: Record<string, unknown>, registry: KindRegistry): Envelope {
  const { apiVersion, kind } = document;
  if (![...ENVELOPE_FIELDS].some((field) => field in document)) {
    return skippedEnvelope('', '', { code: 'MG0014', path: [], message: 'not a Kubernetes resource (no apiVersion, kind, metadata or spec); skipped' });
  }
  const problems: EnvelopeProblem[] = [];
  let definition: KindDefinition | undefined;
  if (typeof apiVersion === 'string' && apiVersion !== '' && typeof kind === 'string' && kind !== '') {
    const resolution = resolveKind(apiVersion, kind, registry);
    if ('skip' in resolution) return skippedEnvelope(apiVersion, kind, resolution.skip);
    if ('problem' in resolution) problems.push(resolution.problem);
    else definition = resolution.definition;
  }
  const extraFields = new Set(definition?.topLevel === undefined ? [] : Object.keys(definition.topLevel.properties));
  const topLevel: Record<string, unknown> | undefined = definition?.topLevel === undefined ? undefined : {};
  for (const key of Object.keys(document)) {
    if (topLevel !== undefined && extraFields.has(key)) topLevel[key] = document[key];
    else if (!ENVELOPE_FIELDS.has(key)) problems.push({ code: 'MG0010', path: [key], message: `unknown top-level field "${key}"${didYouMean(key, ENVELOPE_FIELDS)}` });
  }
  if (typeof apiVersion !== 'string' || apiVersion === '') {
    problems.push({ code: 'MG0005', path: apiVersion === undefined ? [] : ['apiVersion'], message: 'missing or non-string apiVersion' });
  }
  if (typeof kind !== 'string' || kind === '') {
    problems.push({ code: 'MG0005', path: kind === undefined ? [] : ['kind'], message: 'missing or non-string kind' });
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
    skipped: false,
  };
}
