/** What every semantic check needs: the resources by kind and a reporter that positions a diagnostic. */
import { makeDiagnostic } from './diagnostics.js';
import type { DiagnosticCode } from './diagnostics.js';
import { formatFieldPath } from './field-path.js';
import type { MeshConfigSpec } from './kinds/mesh-config.js';
import type { Diagnostic, FieldPath, Resource } from './resource.js';

export interface ValidationContext {
  readonly resources: readonly Resource[];
  readonly mesh: MeshConfigSpec | undefined;
  ofKind<Spec>(kind: string): readonly Resource<Spec>[];
  report(resource: Resource, code: DiagnosticCode, path: FieldPath, message: string): void;
}

export function createValidationContext(resources: readonly Resource[], diagnostics: Diagnostic[]): ValidationContext {
  const byKind = new Map<string, Resource[]>();
  for (const resource of resources) {
    const list = byKind.get(resource.kind) ?? [];
    list.push(resource);
    byKind.set(resource.kind, list);
  }
  const meshResource = byKind.get('MeshConfig')?.[0];
  return {
    resources,
    mesh: meshResource?.spec as MeshConfigSpec | undefined,
    ofKind: <Spec>(kind: string) => (byKind.get(kind) ?? []) as readonly Resource<Spec>[],
    report(resource, code, path, message) {
      diagnostics.push(
        makeDiagnostic(
          code,
          message,
          resource.at(path),
          {
            kind: resource.kind,
            namespace: resource.metadata.namespace,
            name: resource.metadata.name,
            ...(path.length > 0 ? { field: formatFieldPath(path) } : {}),
          },
        ),
      );
    },
  };
}
