/**
 * Turns TypeBox validation errors into catalogue diagnostics with plain messages. One diagnostic per
 * field: TypeBox may report several errors for one path (missing + wrong type), the first is kept.
 */
import { ValueErrorType } from '@sinclair/typebox/errors';
import type { ValueError } from '@sinclair/typebox/errors';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { DiagnosticCode } from './diagnostics.js';
import { durationProblem } from './duration.js';
import { DURATION_FORMAT } from './kinds/common.js';
import { isRecord, pointerToPath } from './field-path.js';
import { didYouMean } from './suggest.js';

export interface SchemaProblem {
  readonly code: DiagnosticCode;
  /** Path relative to the validated value. */
  readonly path: (string | number)[];
  readonly message: string;
}

const RANGE_ERRORS = new Set<ValueErrorType>([
  ValueErrorType.ArrayMaxItems,
  ValueErrorType.ArrayMinItems,
  ValueErrorType.IntegerMaximum,
  ValueErrorType.IntegerMinimum,
  ValueErrorType.IntegerExclusiveMaximum,
  ValueErrorType.IntegerExclusiveMinimum,
  ValueErrorType.NumberMaximum,
  ValueErrorType.NumberMinimum,
  ValueErrorType.NumberExclusiveMaximum,
  ValueErrorType.NumberExclusiveMinimum,
  ValueErrorType.StringMaxLength,
  ValueErrorType.StringMinLength,
]);

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return String(value);
  return `${typeof value} ${String(value)}`;
}

function expectedType(schema: TSchema): string {
  const type: unknown = schema.type;
  if (type === 'object') return 'a mapping';
  if (type === 'array') return 'a list';
  if (type === 'integer') return 'an integer';
  if (type === 'number') return 'a number';
  if (type === 'boolean') return 'true or false';
  if (type === 'string') return 'a string';
  return 'a value of another shape';
}

function literalChoices(schema: TSchema): string[] | null {
  const anyOf: unknown = schema.anyOf;
  if (!Array.isArray(anyOf)) return null;
  const choices: string[] = [];
  for (const member of anyOf) {
    if (!isRecord(member) || typeof member.const !== 'string') return null;
    choices.push(member.const);
  }
  return choices;
}

function bound(schema: TSchema, type: ValueErrorType): string {
  switch (type) {
    case ValueErrorType.ArrayMaxItems: return `at most ${String(schema.maxItems)} items`;
    case ValueErrorType.ArrayMinItems: return `at least ${String(schema.minItems)} item(s)`;
    case ValueErrorType.StringMaxLength: return `at most ${String(schema.maxLength)} characters`;
    case ValueErrorType.StringMinLength: return schema.minLength === 1 ? 'a non-empty string' : `at least ${String(schema.minLength)} characters`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum: return `at most ${String(schema.maximum)}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum: return `at least ${String(schema.minimum)}`;
    default: return 'within the allowed range';
  }
}

function toProblem(error: ValueError, root: unknown): SchemaProblem {
  const path = pointerToPath(error.path, root);
  const last = path[path.length - 1];
  const name = last === undefined ? 'value' : String(last);
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      if (isRecord(error.schema.patternProperties) && !('properties' in error.schema)) {
        const pattern = Object.keys(error.schema.patternProperties)[0] ?? '';
        return { code: 'MG0108', path, message: `key "${name}" does not match ${pattern}` };
      }
      return {
        code: 'MG0101',
        path,
        message: `unknown field "${name}"${isRecord(error.schema.properties) ? didYouMean(name, Object.keys(error.schema.properties)) : ''}`,
      };
    case ValueErrorType.ObjectRequiredProperty:
      return { code: 'MG0102', path, message: `missing required field "${name}"` };
    case ValueErrorType.ObjectMaxProperties: {
      const keys = isRecord(error.schema.properties) ? Object.keys(error.schema.properties) : [];
      return { code: 'MG0107', path, message: `set only one of ${keys.map((k) => `"${k}"`).join(', ')}` };
    }
    case ValueErrorType.StringFormat:
      if (error.schema.format === DURATION_FORMAT && typeof error.value === 'string') {
        return { code: 'MG0106', path, message: `invalid duration "${error.value}": ${durationProblem(error.value) ?? 'not a duration'}` };
      }
      return { code: 'MG0108', path, message: `"${String(error.value)}" is not a valid ${String(error.schema.format)}` };
    case ValueErrorType.StringPattern:
      return { code: 'MG0108', path, message: `${describeValue(error.value)} does not match ${String(error.schema.pattern)}` };
    case ValueErrorType.Union: {
      const choices = literalChoices(error.schema);
      if (choices !== null) {
        const suggestion = typeof error.value === 'string' ? didYouMean(error.value, choices) : '';
        return { code: 'MG0104', path, message: `${describeValue(error.value)} is not one of ${choices.join(', ')}${suggestion}` };
      }
      return { code: 'MG0103', path, message: `${describeValue(error.value)} does not match any allowed shape` };
    }
    default:
      if (RANGE_ERRORS.has(error.type)) {
        return { code: 'MG0105', path, message: `must be ${bound(error.schema, error.type)}, got ${describeValue(error.value)}` };
      }
      return {
        code: 'MG0103',
        path,
        message: `must be ${expectedType(error.schema)}, got ${describeValue(error.value)}`,
      };
  }
}

/** Every problem of `value` against `schema`, at most one per field path. */
const compiledCheckers = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** A compiled check per schema: a valid document (the common case) is checked without walking it for errors. */
function checkerFor(schema: TSchema): TypeCheck<TSchema> {
  let checker = compiledCheckers.get(schema);
  if (checker === undefined) {
    checker = TypeCompiler.Compile(schema);
    compiledCheckers.set(schema, checker);
  }
  return checker;
}

export function schemaProblems(schema: TSchema, value: unknown): SchemaProblem[] {
  if (checkerFor(schema).Check(value)) return [];
  const problems: SchemaProblem[] = [];
  const seen = new Set<string>();
  for (const error of Value.Errors(schema, value)) {
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push(toProblem(error, value));
  }
  return problems;
}
