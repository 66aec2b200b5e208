/**
 * The envelope every loaded config document becomes. Specs are already schema-checked and carry
 * Istio's defaults; `at()` maps a field path back to the YAML source so that any later stage
 * (compilers, cross-reference checks, runtime status) can report `file:line:col`.
 */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export type FieldPath = readonly (string | number)[];

export interface ResourceMetadata {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface Resource<Spec = unknown> {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ResourceMetadata;
  readonly spec: Spec;
  /** Kinds with fields beside `spec` (dapr.io: `scopes`, `auth`): those fields, schema-checked; absent for other kinds. */
  readonly topLevel?: Readonly<Record<string, unknown>>;
  /** Position of the document start; `order` is the global document order across all files (file order = "oldest wins"). */
  readonly source: SourcePosition & { readonly order: number };
  /** Position of a field inside this resource, e.g. `at(['spec', 'http', 0, 'route'])`; falls back to the nearest parent. */
  at(path: FieldPath): SourcePosition;
}

export type Severity = 'error' | 'warning' | 'info';

export interface Diagnostic {
  /** Stable code from the catalogue in `diagnostics.ts`, e.g. `MG0101`. */
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  readonly position: SourcePosition;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  /** Dotted field path inside the resource, e.g. `spec.http[0].route[1].weight`. */
  readonly field?: string;
}
