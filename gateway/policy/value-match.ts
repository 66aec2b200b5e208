/**
 * Istio's security-policy value patterns (istio-semantics §5.5), compiled once at load time:
 * `abc` exact, `abc*` prefix (the bare prefix matches too), `*abc` suffix, `*` any NON-EMPTY value.
 * Only a single leading or trailing `*` is special; a `*` elsewhere is literal.
 */
export type ValueMatcher = (value: string) => boolean;

export interface ValueMatchOptions {
  /** Hosts are compared case-insensitively; everything else is case-sensitive. */
  readonly ignoreCase?: boolean;
}

export function compileValuePattern(pattern: string, options: ValueMatchOptions = {}): ValueMatcher {
  const fold = options.ignoreCase === true ? (s: string): string => s.toLowerCase() : (s: string): string => s;
  if (pattern === '*') return (value) => value.length > 0;
  if (pattern.length > 1 && pattern.endsWith('*')) {
    const prefix = fold(pattern.slice(0, -1));
    return (value) => fold(value).startsWith(prefix);
  }
  if (pattern.length > 1 && pattern.startsWith('*')) {
    const suffix = fold(pattern.slice(1));
    return (value) => fold(value).endsWith(suffix);
  }
  const exact = fold(pattern);
  return (value) => fold(value) === exact;
}

/** `values` (any matches) AND NOT `notValues` (none matches); an omitted list imposes nothing. */
export function compileValueList(
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  options: ValueMatchOptions = {},
): ValueMatcher | null {
  const positive = values?.map((v) => compileValuePattern(v, options)) ?? [];
  const negative = notValues?.map((v) => compileValuePattern(v, options)) ?? [];
  if (positive.length === 0 && negative.length === 0) return null;
  return (value) =>
    (positive.length === 0 || positive.some((m) => m(value))) && !negative.some((m) => m(value));
}
