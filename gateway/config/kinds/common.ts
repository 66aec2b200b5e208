/**
 * Building blocks shared by the kind schemas. Every object is closed (`additionalProperties: false`)
 * because a misspelt Istio field silently ignored is the classic "config accepted but wrong" failure.
 */
import { FormatRegistry, Type } from '@sinclair/typebox';
import type { Static, TLiteral, TObject, TProperties, TSchema, TUnion } from '@sinclair/typebox';
import { isDuration } from '../duration.js';

/** Name of the TypeBox/JSON Schema `format` that durations carry; the loader reports it with its own code. */
export const DURATION_FORMAT = 'meshgate-duration';
FormatRegistry.Set(DURATION_FORMAT, isDuration);

export function strictObject<T extends TProperties>(properties: T, description: string): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, description });
}

/** An object whose absence means "all defaults": the loader fills it in, then its fields' defaults. */
export function defaultedObject<T extends TProperties>(properties: T, description: string): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, description, default: {} });
}

/** The same schema with a field-specific description (shared sub-schemas are reused under many fields). */
export function described<T extends TSchema>(schema: T, description: string): T {
  return { ...schema, description };
}

export function stringEnum<const V extends string>(
  values: readonly [V, ...V[]],
  description: string,
  defaultValue?: V,
): TUnion<TLiteral<V>[]> {
  const options = defaultValue === undefined ? { description } : { description, default: defaultValue };
  return Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  );
}

export function durationString(description: string, defaultValue?: string) {
  return Type.String({
    description: `${description} Protobuf-style duration such as "250ms", "1.5s", "1m", "1h".`,
    format: DURATION_FORMAT,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

export function stringList(description: string) {
  return Type.Array(Type.String(), { description });
}

export function stringMap(description: string) {
  return Type.Record(Type.String(), Type.String(), { description });
}

export const PortNumber = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port number.' });

export const Percent = strictObject(
  { value: Type.Number({ minimum: 0, maximum: 100, description: 'Percentage in the range 0.0 – 100.0.' }) },
  'A percentage `{value: 0..100}`.',
);
export type Percent = Static<typeof Percent>;

export const WorkloadSelector = strictObject(
  { matchLabels: Type.Optional(stringMap('Labels a workload must carry (superset match) for the policy to apply.')) },
  'Selects workloads by labels. Absent: every workload of the namespace (or the mesh in the root namespace).',
);
export type WorkloadSelector = Static<typeof WorkloadSelector>;

export const LabelsSelector = strictObject(
  { labels: Type.Optional(stringMap('Labels the proxy instance must carry (superset match).')) },
  'Selects proxy instances (workloads) by labels.',
);
export type LabelsSelector = Static<typeof LabelsSelector>;

export const PolicyTargetReference = strictObject(
  {
    group: Type.Optional(Type.String({ description: 'API group of the target, e.g. `gateway.networking.k8s.io`.' })),
    kind: Type.String({ description: 'Kind of the target, e.g. `Gateway` or `Service`.' }),
    name: Type.String({ description: 'Name of the target.' }),
    namespace: Type.Optional(Type.String({ description: 'Namespace of the target (defaults to the policy namespace).' })),
  },
  'Reference to a resource a policy attaches to (Gateway API / waypoint attachment; not used by meshgate yet).',
);

export const ExportTo = stringList(
  'Namespaces that can see this resource: `*` (all, default when empty), `.` (own namespace) or namespace names.',
);
