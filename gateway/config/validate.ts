/**
 * Cross-reference and semantic validation of a loaded config set — the checks a schema cannot express
 * (docs/routing.md#matching-a-request, docs/policies.md validation rules, plus meshgate's own: one MeshConfig, unique names).
 * Pure: the same resources always give the same diagnostics, sorted by file (load order), line and column.
 */
import type { Diagnostic, Resource } from './resource.js';
import { runSteps } from './steps.js';
import type { Steps } from './steps.js';
import { createValidationContext } from './validate-context.js';
import { validateGateways } from './validate-gateway.js';
import { validateRouting } from './validate-routing.js';
import { validateSecurity } from './validate-security.js';

function validateUniqueness(resources: readonly Resource[], report: (resource: Resource, code: 'MG0201' | 'MG0202', message: string) => void): void {
  const seen = new Map<string, Resource>();
  let meshConfig: Resource | undefined;
  for (const resource of resources) {
    const key = `${resource.kind}\u0000${resource.metadata.namespace}\u0000${resource.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      report(resource, 'MG0201', `${resource.kind} ${resource.metadata.namespace}/${resource.metadata.name} is already defined at ${first.source.file}:${first.source.line}:${first.source.col}`);
    } else {
      seen.set(key, resource);
    }
    if (resource.kind === 'MeshConfig') {
      if (meshConfig !== undefined) {
        report(resource, 'MG0202', `a MeshConfig is already defined at ${meshConfig.source.file}:${meshConfig.source.line}:${meshConfig.source.col}`);
      } else {
        meshConfig = resource;
      }
    }
  }
}

/** The validation as steps (one per routing resource and one per whole-config check), for a reload that must let requests run (steps.ts). */
export function* validationSteps(resources: readonly Resource[]): Steps<Diagnostic[]> {
  const diagnostics: Diagnostic[] = [];
  const ctx = createValidationContext(resources, diagnostics);
  validateUniqueness(resources, (resource, code, message) => ctx.report(resource, code, ['metadata', 'name'], message));
  yield;
  validateGateways(ctx);
  yield;
  yield* validateRouting(ctx);
  validateSecurity(ctx);
  yield;
  const fileOrder = new Map<string, number>();
  for (const resource of resources) if (!fileOrder.has(resource.source.file)) fileOrder.set(resource.source.file, fileOrder.size);
  return diagnostics.sort(
    (a, b) =>
      (fileOrder.get(a.position.file) ?? 0) - (fileOrder.get(b.position.file) ?? 0) ||
      a.position.line - b.position.line ||
      a.position.col - b.position.col,
  );
}

export function validateResources(resources: readonly Resource[]): Diagnostic[] {
  return runSteps(validationSteps(resources));
}
