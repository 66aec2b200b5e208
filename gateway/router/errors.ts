/**
 * Problems found while compiling a VirtualService rule. The rule is dropped (like Envoy rejecting a
 * route) and the problem is reported as a load-time diagnostic with the field that caused it.
 */
import { makeDiagnostic, type DiagnosticCode } from '../config/diagnostics.js';
import type { Diagnostic, Resource } from '../config/resource.js';

/** A rule that cannot be compiled (bad regex, unsupported redirect code, …) is dropped. */
export const MG_ROUTE_RULE_DROPPED = 'MG0701' satisfies DiagnosticCode;
/** A sidecar sees only the first VirtualService per host; later ones are ignored for that host. */
export const MG_ROUTE_DUPLICATE_HOST = 'MG0702' satisfies DiagnosticCode;

export class RouteCompileError extends Error {
  constructor(
    /** Path inside the HTTP rule, e.g. `['match', 0, 'uri', 'regex']`. */
    readonly field: readonly (string | number)[],
    message: string,
  ) {
    super(message);
    this.name = 'RouteCompileError';
  }
}

export function routeDiagnostic(
  resource: Resource,
  code: typeof MG_ROUTE_RULE_DROPPED | typeof MG_ROUTE_DUPLICATE_HOST,
  fieldPath: readonly (string | number)[],
  message: string,
): Diagnostic {
  return makeDiagnostic(code, message, resource.at(fieldPath), {
    kind: resource.kind,
    namespace: resource.metadata.namespace,
    name: resource.metadata.name,
    field: fieldPath.map((part) => (typeof part === 'number' ? `[${part}]` : `.${part}`)).join('').slice(1),
  });
}
