/**
 * Every VirtualService regex goes through RE2 (re2js): linear-time matching, so a hostile path can
 * never make a pattern like `(a+)+$` backtrack, and RE2 syntax such as `(?i)` works as in Envoy.
 */
import { RE2JS } from 're2js';
import { RouteCompileError } from './errors.js';

/** Istio rejects longer patterns (`validation.go`). */
const MAX_REGEX_LENGTH = 1024;

export function compileRegex(pattern: string, field: readonly (string | number)[]): RE2JS {
  if (pattern.length > MAX_REGEX_LENGTH) {
    throw new RouteCompileError(field, `regex is longer than ${MAX_REGEX_LENGTH} characters`);
  }
  try {
    return RE2JS.compile(pattern);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RouteCompileError(field, `invalid RE2 regex "${pattern}": ${reason}`);
  }
}

/** Envoy's safe_regex semantics: the whole input must match. */
export function compileFullMatch(pattern: string, field: readonly (string | number)[]): (value: string) => boolean {
  const regex = compileRegex(pattern, field);
  return (value) => regex.testExact(value);
}
