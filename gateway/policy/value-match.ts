/**
 * Istio's security-policy value patterns (docs/policies.md#value-patterns), compiled once at load time:
 * `abc` exact, `abc*` prefix (the bare prefix matches too), `*abc` suffix, `*` any NON-EMPTY value.
 * Only a single leading or trailing `*` is special; a `*` elsewhere is literal.
 */
export type ValueMatcher = (value: string) => boolean;

export interface ValueMatchOptions {
  /** Hosts are compared case-insensitively; everything else is case-sensitive. */
  readonly ignoreCase?: boolean;
}

export function compileValuePattern(pattern: string, options: ValueMatchOptions = {}): ValueMatcher {
  // One closure per case, without a fold function in the case-sensitive ones: these run per request.
  const ignoreCase = options.ignoreCase === true;
  if (pattern === '*') return (value) => value.length > 0;
  if (pattern.length > 1 && pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    if (!ignoreCase) return (value) => value.startsWith(prefix);
    const folded = prefix.toLowerCase();
    return (value) => value.toLowerCase().startsWith(folded);
  }
  if (pattern.length > 1 && pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    if (!ignoreCase) return (value) => value.endsWith(suffix);
    const folded = suffix.toLowerCase();
    return (value) => value.toLowerCase().endsWith(folded);
  }
  if (!ignoreCase) return (value) => value === pattern;
  const folded = pattern.toLowerCase();
  return (value) => value.toLowerCase() === folded;
}

/** True when one of `matchers` accepts `value` (a plain loop: no closure allocated per call). */
export function anyMatches(matchers: readonly ValueMatcher[], value: string): boolean {
  for (let i = 0; i < matchers.length; i++) if ((matchers[i] as ValueMatcher)(value)) return true;
  return false;
}

/** `values` (any matches) AND NOT `notValues` (none matches); an omitted list imposes nothing. */
export function compileValueList(
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  options: ValueMatchOptions = {},
): ValueMatcher | null {
  const positive = values?.map((v) => compileValuePattern(v, options)) ?? [];
  const negative = notValues?.map((v) => compileValuePattern(v, options)) ?? [];
  return combineMatchers(positive, negative);
}

/** Any of `positive` (none = no constraint) AND none of `negative`; null when both are empty. */
export function combineMatchers(positive: readonly ValueMatcher[], negative: readonly ValueMatcher[]): ValueMatcher | null {
  if (positive.length === 0 && negative.length === 0) return null;
  if (negative.length === 0) return (value) => anyMatches(positive, value);
  if (positive.length === 0) return (value) => !anyMatches(negative, value);
  return (value) => anyMatches(positive, value) && !anyMatches(negative, value);
}
