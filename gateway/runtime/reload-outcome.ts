/**
 * What a reload answers and logs, the same for a single runtime (gateway-runtime.ts) and a supervisor
 * of workers (worker-supervisor.ts): a rejected config's errors with their positions, the counts the
 * admin API's `POST /reload` returns, and the MeshConfig fields a reload cannot change.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReloadOutcome } from '../admin/server.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { Diagnostic } from '../config/resource.js';
import type { OperatorOverrides } from './operator-ports.js';

/** Bound at start (admin, status and metrics sockets, certificate store, cluster identity), so a reload cannot change them. */
const RESTART_ONLY_MESH_FIELDS = ['adminAddress', 'statusAddress', 'metricsAddress', 'appMetricsUrl', 'certificates', 'trustDomain'] as const;
/** Fields a command-line override may replace. */
const OVERRIDABLE_FIELDS: ReadonlySet<string> = new Set(['adminAddress', 'statusAddress', 'metricsAddress'] satisfies (keyof OperatorOverrides)[]);

export function count(diagnostics: readonly Diagnostic[], severity: Diagnostic['severity']): number {
  return diagnostics.filter((d) => d.severity === severity).length;
}

/** Logs a rejected config's errors with their positions; the last good generation keeps serving. */
export function rejectedReload(logger: FastifyBaseLogger, diagnostics: readonly Diagnostic[], trigger: string, generation: number): ReloadOutcome {
  for (const d of diagnostics.filter((x) => x.severity === 'error')) {
    logger.error({ code: d.code, file: d.position.file, line: d.position.line, col: d.position.col, field: d.field }, d.message);
  }
  logger.error({ trigger, generation }, 'new configuration rejected; the last good one keeps serving');
  return { ok: false, generation, errors: count(diagnostics, 'error'), warnings: count(diagnostics, 'warning'), message: 'configuration rejected' };
}

/** A reload that changed nothing, or nothing it can apply: the running generation's number. */
export function notApplied(generation: number, message: string, errors = 0): ReloadOutcome {
  return { ok: false, generation, errors, warnings: 0, message };
}

/** The restart-only fields the new MeshConfig changes, but for those a command-line override fixes anyway (a change in the file is then not news). */
export function restartOnlyChanges(running: MeshConfigSpec, next: MeshConfigSpec, overrides: OperatorOverrides): string[] {
  return RESTART_ONLY_MESH_FIELDS.filter(
    (field) => JSON.stringify(running[field]) !== JSON.stringify(next[field]) && !(OVERRIDABLE_FIELDS.has(field) && overrides[field as keyof OperatorOverrides] !== undefined),
  );
}
