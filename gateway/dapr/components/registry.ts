/**
 * Component resources → the components this sidecar loads, once per snapshot. As in Dapr, a sidecar
 * sees the Components of its own namespace whose `scopes` are empty or list its app id; every
 * metadata value becomes text, with `secretKeyRef`s and `envRef`s resolved here (never per request).
 * Checks that do not depend on the sidecar (repeated fields, value/secretKeyRef/envRef exclusivity)
 * run for every Component, so `meshgate validate` reports them for any proxy.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { makeDiagnostic } from '../../config/diagnostics.js';
import type { DiagnosticCode, DiagnosticSubject } from '../../config/diagnostics.js';
import type { DaprComponentSpec, DaprComponentTopLevel, DaprMetadataItem } from '../../config/kinds/dapr-component.js';
import type { Diagnostic, Resource, SourcePosition } from '../../config/resource.js';

export const MG_DAPR_BAD_METADATA = 'MG1302' satisfies DiagnosticCode;
export const MG_DAPR_SECRET_NOT_FOUND = 'MG1303' satisfies DiagnosticCode;
export const MG_DAPR_UNKNOWN_SECRET_STORE = 'MG1304' satisfies DiagnosticCode;

export const ENV_SECRET_STORE = 'secretstores.local.env';
export const FILE_SECRET_STORE = 'secretstores.local.file';

/** A Component as a building block uses it. Immutable, part of the snapshot. */
export interface ResolvedComponent {
  readonly name: string;
  readonly namespace: string;
  /** `state.redis`, `pubsub.rabbitmq`, … */
  readonly type: string;
  readonly version: string;
  /** Every metadata field as text, secrets resolved. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly scopes: readonly string[];
  /** Where a metadata field (by name) is written, else the component itself: for the serving block's diagnostics. */
  at(field?: string): SourcePosition;
  /** Kind, namespace, name and (for a metadata field) its path, for `makeDiagnostic`. */
  subject(field?: string): DiagnosticSubject;
}

export interface ComponentRegistry {
  /** Components this sidecar loads, in document order. */
  readonly all: readonly ResolvedComponent[];
  get(name: string): ResolvedComponent | undefined;
}

export interface ComponentCompileInput {
  readonly resources: readonly Resource[];
  /** Null: no sidecar (ingress, validate): only the checks that hold for every proxy run. */
  readonly appId: string | null;
  readonly namespace: string;
  /** Absolute MeshConfig `credentialsDirectory`: secrets without `auth.secretStore` are `<dir>/<name>/<key>` files. */
  readonly credentialsDirectory: string;
  /** Directory relative `secretsFile` paths are resolved against (the config's). */
  readonly configDirectory: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly diagnostics: Diagnostic[];
}

function metadataIndex(resource: Resource<DaprComponentSpec>, field: string): number {
  return (resource.spec.metadata ?? []).findIndex((item) => item.name === field);
}

function positionsOf(resource: Resource<DaprComponentSpec>): Pick<ResolvedComponent, 'at' | 'subject'> {
  const base = { kind: 'Component', namespace: resource.metadata.namespace, name: resource.metadata.name };
  return {
    at: (field) => {
      const index = field === undefined ? -1 : metadataIndex(resource, field);
      return index < 0 ? resource.at(['spec']) : resource.at(['spec', 'metadata', index, 'value']);
    },
    subject: (field) => {
      const index = field === undefined ? -1 : metadataIndex(resource, field);
      return index < 0 ? base : { ...base, field: `spec.metadata[${index}]` };
    },
  };
}

function report(diagnostics: Diagnostic[], code: DiagnosticCode, resource: Resource, path: (string | number)[], message: string): void {
  const field = path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${part}`)).join('');
  diagnostics.push(
    makeDiagnostic(code, message, resource.at(path), { kind: resource.kind, namespace: resource.metadata.namespace, name: resource.metadata.name, field }),
  );
}

function checkMetadataShape(resource: Resource<DaprComponentSpec>, diagnostics: Diagnostic[]): boolean {
  let ok = true;
  const seen = new Set<string>();
  (resource.spec.metadata ?? []).forEach((item, index) => {
    if (seen.has(item.name)) {
      report(diagnostics, MG_DAPR_BAD_METADATA, resource, ['spec', 'metadata', index, 'name'], `metadata field "${item.name}" is set twice`);
      ok = false;
    }
    seen.add(item.name);
    const sources = [item.value !== undefined, item.secretKeyRef !== undefined, item.envRef !== undefined].filter(Boolean).length;
    if (sources !== 1) {
      report(diagnostics, MG_DAPR_BAD_METADATA, resource, ['spec', 'metadata', index], `metadata field "${item.name}" needs exactly one of value, secretKeyRef or envRef`);
      ok = false;
    }
  });
  return ok;
}

type SecretLookup = (name: string, key: string) => string | undefined;

function flatten(value: unknown, separator: string, prefix: string, out: Map<string, string>): void {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, separator, prefix === '' ? key : `${prefix}${separator}${key}`, out);
  } else if (prefix !== '') {
    out.set(prefix, typeof value === 'string' ? value : JSON.stringify(value));
  }
}

/** A secret store Component → its lookup; a problem with the store itself is reported at its position. */
function secretStoreLookup(store: Resource<DaprComponentSpec>, input: ComponentCompileInput): SecretLookup | null {
  const settings = new Map((store.spec.metadata ?? []).map((item) => [item.name, item.value === undefined ? undefined : String(item.value)]));
  if (store.spec.type === ENV_SECRET_STORE) {
    const prefix = settings.get('prefix') ?? '';
    return (name) => input.env[`${prefix}${name}`];
  }
  const file = settings.get('secretsFile');
  const index = metadataIndex(store, 'secretsFile');
  if (file === undefined || file === '') {
    report(input.diagnostics, MG_DAPR_BAD_METADATA, store, index < 0 ? ['spec'] : ['spec', 'metadata', index], 'secretstores.local.file needs metadata secretsFile (a JSON file)');
    return null;
  }
  const path = isAbsolute(file) ? file : resolve(input.configDirectory, file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    report(input.diagnostics, MG_DAPR_SECRET_NOT_FOUND, store, ['spec', 'metadata', index, 'value'], `cannot read secrets file ${path}: ${(error as Error).message}`);
    return null;
  }
  const secrets = new Map<string, string>();
  flatten(parsed, settings.get('nestedSeparator') ?? ':', '', secrets);
  return (name) => secrets.get(name);
}

/** Without `auth.secretStore`: a Kubernetes secret mounted as a directory, one file per key. */
function mountedSecretLookup(credentialsDirectory: string): SecretLookup {
  return (name, key) => {
    if (name.includes('/') || key.includes('/') || name.startsWith('.') || key.startsWith('.')) return undefined;
    try {
      return readFileSync(join(credentialsDirectory, name, key), 'utf8').replace(/\r?\n$/, '');
    } catch {
      return undefined;
    }
  };
}

function resolveValue(
  item: DaprMetadataItem,
  index: number,
  resource: Resource<DaprComponentSpec>,
  secrets: SecretLookup,
  input: ComponentCompileInput,
): string | undefined {
  if (item.value !== undefined) return String(item.value);
  if (item.envRef !== undefined) {
    const value = input.env[item.envRef];
    if (value === undefined) report(input.diagnostics, MG_DAPR_SECRET_NOT_FOUND, resource, ['spec', 'metadata', index, 'envRef'], `environment variable ${item.envRef} is not set`);
    return value;
  }
  const ref = item.secretKeyRef as NonNullable<DaprMetadataItem['secretKeyRef']>;
  const value = secrets(ref.name, ref.key ?? ref.name);
  if (value === undefined) {
    report(input.diagnostics, MG_DAPR_SECRET_NOT_FOUND, resource, ['spec', 'metadata', index, 'secretKeyRef'], `secret "${ref.name}"${ref.key === undefined ? '' : ` key "${ref.key}"`} not found`);
  }
  return value;
}

export function compileComponents(input: ComponentCompileInput): ComponentRegistry {
  const components = input.resources.filter((r) => r.kind === 'Component') as Resource<DaprComponentSpec>[];
  const wellFormed = components.filter((resource) => checkMetadataShape(resource, input.diagnostics));
  const appId = input.appId;
  if (appId === null) return { all: [], get: () => undefined };
  const visible = wellFormed.filter((resource) => {
    const scopes = (resource.topLevel as DaprComponentTopLevel | undefined)?.scopes ?? [];
    return resource.metadata.namespace === input.namespace && (scopes.length === 0 || scopes.includes(appId));
  });
  const stores = new Map<string, SecretLookup | null>();
  for (const store of visible.filter((r) => r.spec.type === ENV_SECRET_STORE || r.spec.type === FILE_SECRET_STORE)) {
    stores.set(store.metadata.name, secretStoreLookup(store, input));
  }
  const mounted = mountedSecretLookup(input.credentialsDirectory);
  const resolved: ResolvedComponent[] = [];
  for (const resource of visible) {
    const topLevel = (resource.topLevel ?? {}) as DaprComponentTopLevel;
    let secrets: SecretLookup | null = mounted;
    const storeName = topLevel.auth?.secretStore;
    if (storeName !== undefined) {
      secrets = stores.get(storeName) ?? null;
      if (!stores.has(storeName)) {
        report(input.diagnostics, MG_DAPR_UNKNOWN_SECRET_STORE, resource, ['auth', 'secretStore'], `no secretstores.local.env or secretstores.local.file Component named "${storeName}" in namespace ${input.namespace}`);
        continue;
      }
      if (secrets === null) continue;
    }
    const metadata: Record<string, string> = {};
    let complete = true;
    (resource.spec.metadata ?? []).forEach((item, index) => {
      const value = resolveValue(item, index, resource, secrets, input);
      if (value === undefined) complete = false;
      else metadata[item.name] = value;
    });
    if (!complete) continue;
    resolved.push(
      Object.freeze({
        name: resource.metadata.name,
        namespace: resource.metadata.namespace,
        type: resource.spec.type,
        version: resource.spec.version,
        metadata: Object.freeze(metadata),
        scopes: topLevel.scopes ?? [],
        ...positionsOf(resource),
      }),
    );
  }
  const byName = new Map(resolved.map((component) => [component.name, component]));
  return { all: resolved, get: (name) => byName.get(name) };
}
