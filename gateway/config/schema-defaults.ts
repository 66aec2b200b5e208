/**
 * TypeBox's `Value.Default`, compiled per schema. The interpreter walks every field of every document
 * (twice per object property, and a clone plus a check per union member), although a kind's defaults
 * sit on a handful of paths: on a 10 000-rule config it cost as much as parsing. Here each schema is
 * turned once into a function that visits only the sub-schemas that lead to a default, with the same
 * semantics (test/config/schema-defaults.test.ts compares both on random documents). Schemas built from
 * references or intersections, which the kinds do not use, keep the interpreter.
 */
import { Kind } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';

type Defaulter = (value: unknown) => unknown;

const INTERPRETED_KINDS = new Set(['Intersect', 'Ref', 'This', 'Import', 'Tuple', 'Date']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function hasOwnDefault(schema: unknown): schema is TSchema {
  return isObject(schema) && Kind in schema && 'default' in schema;
}

/** TypeBox's ValueOrDefault: a missing value takes (a copy of) the default; an object fills in the default object. */
function withOwnDefault(schema: TSchema, value: unknown): unknown {
  const declared: unknown = schema.default;
  const copy: unknown = typeof declared === 'function' ? (declared as () => unknown)() : Value.Clone(declared);
  if (value === undefined) return copy;
  return isObject(value) && isObject(copy) ? Object.assign(copy, value) : value;
}

const compiled = new WeakMap<TSchema, Defaulter | null>();

/** null: nothing under this schema has a default, so defaulting returns the value as it is. */
function defaulterFor(schema: TSchema): Defaulter | null {
  if (compiled.has(schema)) return compiled.get(schema) ?? null;
  // A recursive schema reaches itself through `This`/`Ref`, which are interpreted, so this terminates.
  const defaulter = build(schema);
  compiled.set(schema, defaulter);
  return defaulter;
}

function build(schema: TSchema): Defaulter | null {
  const kind = schema[Kind] as string;
  if (INTERPRETED_KINDS.has(kind)) return (value) => Value.Default(schema, value);
  const own = hasOwnDefault(schema);
  const fill = own ? (value: unknown) => withOwnDefault(schema, value) : (value: unknown) => value;
  switch (kind) {
    case 'Object':
      return objectDefaulter(schema, own, fill);
    case 'Array': {
      const items = defaulterFor(schema.items as TSchema);
      if (items === null) return own ? fill : null;
      return (value) => {
        const filled = Array.isArray(value) ? value : fill(value);
        if (!Array.isArray(filled)) return filled;
        for (let index = 0; index < filled.length; index++) filled[index] = items(filled[index]);
        return filled;
      };
    }
    case 'Record':
      return recordDefaulter(schema, own, fill);
    case 'Union':
      return unionDefaulter(schema, own, fill);
    default:
      return own ? fill : null;
  }
}

function objectDefaulter(schema: TSchema, own: boolean, fill: Defaulter): Defaulter | null {
  const properties = (schema.properties ?? {}) as Record<string, TSchema>;
  const known = new Set(Object.getOwnPropertyNames(properties));
  const fields: [string, Defaulter][] = [];
  for (const key of known) {
    const defaulter = defaulterFor(properties[key] as TSchema);
    if (defaulter !== null) fields.push([key, defaulter]);
  }
  const additionalSchema: unknown = schema.additionalProperties;
  const additional = hasOwnDefault(additionalSchema) ? defaulterFor(additionalSchema) : null;
  if (!own && fields.length === 0 && additional === null) return null;
  return (value) => {
    const filled = fill(value);
    if (!isObject(filled)) return filled;
    for (const [key, defaulter] of fields) {
      const field = defaulter(filled[key]);
      if (field !== undefined) filled[key] = field;
    }
    if (additional !== null) {
      for (const key of Object.getOwnPropertyNames(filled)) if (!known.has(key)) filled[key] = additional(filled[key]);
    }
    return filled;
  };
}

function recordDefaulter(schema: TSchema, own: boolean, fill: Defaulter): Defaulter | null {
  const [pattern, propertySchema] = Object.entries(schema.patternProperties as Record<string, TSchema>)[0] as [string, TSchema];
  const keyPattern = new RegExp(pattern);
  const property = hasOwnDefault(propertySchema) ? defaulterFor(propertySchema) : null;
  const additionalSchema: unknown = schema.additionalProperties;
  const additional = hasOwnDefault(additionalSchema) ? defaulterFor(additionalSchema) : null;
  if (!own && property === null && additional === null) return null;
  return (value) => {
    const filled = fill(value);
    if (!isObject(filled)) return filled;
    for (const key of Object.getOwnPropertyNames(filled)) {
      const matches = keyPattern.test(key);
      if (matches && property !== null) filled[key] = property(filled[key]);
      else if (!matches && additional !== null) filled[key] = additional(filled[key]);
    }
    return filled;
  };
}

function unionDefaulter(schema: TSchema, own: boolean, fill: Defaulter): Defaulter | null {
  let members: { defaulter: Defaulter | null; check: TypeCheck<TSchema> }[];
  try {
    members = (schema.anyOf as TSchema[]).map((member) => ({ defaulter: defaulterFor(member), check: TypeCompiler.Compile(member) }));
  } catch {
    // A member that needs references to be checked: the interpreter resolves them.
    return (value) => Value.Default(schema, value);
  }
  if (!own && members.every((member) => member.defaulter === null)) return null;
  return (value) => {
    const filled = fill(value);
    // The first member the defaulted value satisfies wins; defaulting a copy leaves `filled` intact for the next.
    for (const { defaulter, check } of members) {
      const candidate = defaulter === null ? filled : defaulter(Value.Clone(filled));
      if (check.Check(candidate)) return candidate;
    }
    return filled;
  };
}

/** Fills in the defaults `schema` declares, in place where `value` is an object (as `Value.Default` does). */
export function applyDefaults(schema: TSchema, value: unknown): unknown {
  const defaulter = defaulterFor(schema);
  return defaulter === null ? value : defaulter(value);
}
