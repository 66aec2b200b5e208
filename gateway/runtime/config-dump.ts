/**
 * `GET /config_dump`: the effective compiled configuration — generation, hash, every resource with its
 * provenance (file:line) and status, the listeners, routes and clusters — and the diagnostics of the
 * last rejected reload, so an operator can see why a change did not take effect.
 */
import type { Diagnostic } from '../config/resource.js';
import type { MeshPlugin } from '../pipeline/types.js';
import { listenerSpecs } from './listener-specs.js';
import type { Snapshot } from '../snapshot/snapshot.js';

const URL_CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i;

/** The dump is for reading config, not secrets: credentials inside URLs (redis://user:pass@…) are masked. */
export function redactSecrets(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(URL_CREDENTIALS, '$1[redacted]@');
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, redactSecrets(inner)]));
  }
  return value;
}

/** Dapr Component metadata written inline under these names holds credentials (redisPassword, connectionString, …). */
const SECRET_METADATA_NAME = /password|secret|token|credential|connectionstring|accesskey|apikey/i;

/** A Component's inline secret values are masked; `secretKeyRef`s (references, not values) are shown. */
export function redactComponentSpec(spec: unknown): unknown {
  const metadata = (spec as { metadata?: unknown }).metadata;
  if (!Array.isArray(metadata)) return redactSecrets(spec);
  return redactSecrets({
    ...(spec as Record<string, unknown>),
    metadata: metadata.map((item: { name?: unknown; value?: unknown }) =>
      typeof item.name === 'string' && SECRET_METADATA_NAME.test(item.name) && item.value !== undefined ? { ...item, value: '[redacted]' } : item,
    ),
  });
}

function where(d: Diagnostic): string {
  return `${d.position.file}:${d.position.line}:${d.position.col}`;
}

function diagnosticView(d: Diagnostic): Record<string, string | undefined> {
  return { code: d.code, severity: d.severity, at: where(d), field: d.field, message: d.message };
}

/** What plugins with a `describe` show per listener (user plugins: their effective order). */
function pluginViews(snapshot: Snapshot, plugins: readonly MeshPlugin[]): Record<string, unknown> {
  const listeners = listenerSpecs(snapshot);
  const views: Record<string, unknown> = {};
  for (const plugin of plugins) {
    if (plugin.describe !== undefined) views[plugin.name] = plugin.describe(snapshot.pluginStates.get(plugin.name), listeners);
  }
  return views;
}

export function configDump(snapshot: Snapshot | null, lastRejected: readonly Diagnostic[], plugins: readonly MeshPlugin[] = []): unknown {
  if (snapshot === null) return { generation: null, lastRejected: lastRejected.map(diagnosticView) };
  const byResource = new Map<string, Diagnostic[]>();
  for (const d of snapshot.diagnostics) {
    const key = `${d.kind ?? ''}/${d.namespace ?? ''}/${d.name ?? ''}`;
    byResource.set(key, [...(byResource.get(key) ?? []), d]);
  }
  return {
    generation: snapshot.generation,
    hash: snapshot.hash,
    loadedAt: snapshot.loadedAt.toISOString(),
    mode: snapshot.mode,
    workload: snapshot.workload,
    files: snapshot.files,
    resources: snapshot.resources.map((r) => {
      const warnings = byResource.get(`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`) ?? [];
      return {
        apiVersion: r.apiVersion,
        kind: r.kind,
        namespace: r.metadata.namespace,
        name: r.metadata.name,
        source: `${r.source.file}:${r.source.line}:${r.source.col}`,
        status: warnings.length === 0 ? 'valid' : 'valid-with-warnings',
        warnings: warnings.map(diagnosticView),
        spec: r.kind === 'Component' ? redactComponentSpec(r.spec) : redactSecrets(r.spec),
        ...(r.topLevel === undefined ? {} : redactSecrets(r.topLevel) as Record<string, unknown>),
      };
    }),
    listeners:
      snapshot.mode === 'ingress'
        ? snapshot.listenerPlans.map((p) => ({ address: p.key, protocol: p.protocol, servers: p.servers.map((s) => s.name) }))
        : snapshot.sidecar,
    inboundMtls: snapshot.mode === 'sidecar' ? snapshot.inboundMtls : undefined,
    clusters: snapshot.clusters.clusters.map((c) => ({ name: c.name, policy: c.policy, endpoints: c.endpoints.length })),
    plugins: pluginViews(snapshot, plugins),
    services: snapshot.registry.services.map((s) => ({ host: s.host, namespace: s.namespace, resolution: s.resolution, source: s.source })),
    diagnostics: snapshot.diagnostics.map(diagnosticView),
    lastRejected: lastRejected.map(diagnosticView),
  };
}
