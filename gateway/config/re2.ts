/**
 * RE2 programs by pattern. Validation and the route tables compile the same VirtualService regexes,
 * and a reload mostly repeats the patterns of the running config: each is compiled once. A compiled
 * RE2JS is immutable, so the tables of every snapshot can share it.
 */
import { RE2JS } from 're2js';

/** Istio rejects longer patterns (`validation.go`). */
export const MAX_REGEX_LENGTH = 1024;
/** Bounds what a long-running proxy keeps after its config dropped patterns: past it, the cache starts over. */
const MAX_CACHED = 50_000;

const programs = new Map<string, RE2JS>();

/** The compiled pattern; throws RE2's syntax error for an invalid one. */
export function re2Program(pattern: string): RE2JS {
  let program = programs.get(pattern);
  if (program === undefined) {
    program = RE2JS.compile(pattern);
    if (programs.size >= MAX_CACHED) programs.clear();
    programs.set(pattern, program);
  }
  return program;
}
