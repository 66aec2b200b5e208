/**
 * `GET /config_dump`: the effective compiled configuration — generation, hash, every resource with its
 * provenance (file:line) and status, the listeners, routes and clusters — and the diagnostics of the
 * last rejected reload, so an operator can see why a change did not take effect.
 */
import type { Diagnostic } from '../config/resource.js';
import type { Snapshot } from './snapshot.js';

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

function where(d: Diagnostic): string {
  return `${d.position.file}:${d.position.line}:${d.position.col}`;
}

function diagnosticView(d: Diagnostic): Record<string, string | undefined> {
  return { code: d.code, severity: d.severity, at: where(d), field: d.field, message: d.message };
}

export function configDump(snapshot: Snapshot | null, lastRejected: readonly Diagnostic[]): unknown {
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
        spec: redactSecrets(r.spec),
        ...(r.topLevel === undefined ? {} : redactSecrets(r.topLevel) as Record<string, unknown>),
      };
    }),
    listeners:
      snapshot.mode === 'ingress'
        ? snapshot.listenerPlans.map((p) => ({ address: p.key, protocol: p.protocol, servers: p.servers.map((s) => s.name) }))
        : snapshot.sidecar,
    inboundMtls: snapshot.mode === 'sidecar' ? snapshot.inboundMtls : undefined,
    clusters: snapshot.clusters.clusters.map((c) => ({ name: c.name, policy: c.policy, endpoints: c.endpoints.length })),
    services: snapshot.registry.services.map((s) => ({ host: s.host, namespace: s.namespace, resolution: s.resolution, source: s.source })),
    diagnostics: snapshot.diagnostics.map(diagnosticView),
    lastRejected: lastRejected.map(diagnosticView),
  };
}
