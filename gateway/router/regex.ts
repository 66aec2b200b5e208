/**
 * Every VirtualService regex goes through RE2 (re2js): linear-time matching, so a hostile path can
 * never make a pattern like `(a+)+$` backtrack, and RE2 syntax such as `(?i)` works as in Envoy.
 */
import type { RE2JS } from 're2js';
import { MAX_REGEX_LENGTH, re2Program } from '../config/re2.js';
import { RouteCompileError } from './errors.js';

export function compileRegex(pattern: string, field: readonly (string | number)[]): RE2JS {
  if (pattern.length > MAX_REGEX_LENGTH) {
    throw new RouteCompileError(field, `regex is longer than ${MAX_REGEX_LENGTH} characters`);
  }
  try {
    return re2Program(pattern);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RouteCompileError(field, `invalid RE2 regex "${pattern}": ${reason}`);
  }
}

/** Characters that stand for themselves in RE2 outside a class; anything else ends the literal head. */
const PLAIN_CHARACTER = /[A-Za-z0-9/_\-,:;=@!~%&'"<># ]/;
const QUANTIFIER_START = new Set(['?', '*', '{']);

function hasTopLevelAlternation(pattern: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let index = 0; index < pattern.length; index++) {
    const character = pattern[index];
    if (character === '\\') index++;
    else if (inClass) inClass = character !== ']';
    else if (character === '[') {
      inClass = true;
      // A `]` right after `[` or `[^` is a literal member of the class.
      if (pattern[index + 1] === '^') index++;
      if (pattern[index + 1] === ']') index++;
    } else if (character === '(') depth++;
    else if (character === ')') depth--;
    else if (character === '|' && depth === 0) return true;
  }
  return false;
}

/**
 * The literal text every full match of `pattern` starts with, or '' when none can be proven. Route
 * tables try rules in order, so most regexes see paths they do not match: one startsWith rejects
 * those without running the regex. Conservative by construction: a head char made optional by a
 * quantifier, any escape, group, class or flag ends the head, and a top-level `|` voids it.
 */
export function literalHead(pattern: string): string {
  if (hasTopLevelAlternation(pattern)) return '';
  let start = 0;
  while (pattern[start] === '^') start++;
  let end = start;
  while (end < pattern.length && PLAIN_CHARACTER.test(pattern[end] as string)) end++;
  if (end < pattern.length && QUANTIFIER_START.has(pattern[end] as string)) end--;
  return end > start ? pattern.slice(start, end) : '';
}

/** Envoy's safe_regex semantics: the whole input must match. */
export function compileFullMatch(pattern: string, field: readonly (string | number)[]): (value: string) => boolean {
  const regex = compileRegex(pattern, field);
  const head = literalHead(pattern);
  if (head === '') return (value) => regex.testExact(value);
  return (value) => value.startsWith(head) && regex.testExact(value);
}
