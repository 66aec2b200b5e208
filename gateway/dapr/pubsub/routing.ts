/**
 * Subscription routing: the first rule whose `match` holds, else `default`, else the v1 `route`.
 * Dapr's `match` is CEL over `event.*`; meshgate compiles the subset people write in routing rules —
 * comparisons `event.<field> == <literal>` / `!=` joined by `&&` and `||` (`&&` binds tighter), with
 * string, number and boolean literals — once, when subscriptions load. Anything else is refused with
 * a message, never guessed at.
 */

export type EventPredicate = (event: Readonly<Record<string, unknown>>) => boolean;

export class RoutingRuleError extends Error {
  override readonly name = 'RoutingRuleError';
}

const COMPARISON = /^event\.([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*(==|!=)\s*("(?:[^"\\]|\\.)*"|'[^'\\]*'|-?\d+(?:\.\d+)?|true|false)$/;

function literal(text: string): unknown {
  if (text.startsWith('"')) return JSON.parse(text) as unknown;
  if (text.startsWith("'")) return text.slice(1, -1);
  if (text === 'true' || text === 'false') return text === 'true';
  return Number(text);
}

function field(event: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let value: unknown = event;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function comparison(text: string, expression: string): EventPredicate {
  const parsed = COMPARISON.exec(text.trim());
  if (parsed === null) {
    throw new RoutingRuleError(
      `unsupported match ${JSON.stringify(expression)}: meshgate evaluates event.<field> == or != a string, number or boolean literal, joined by && and ||`,
    );
  }
  const path = (parsed[1] as string).split('.');
  const expected = literal(parsed[3] as string);
  const equal = parsed[2] === '==';
  return (event) => (field(event, path) === expected) === equal;
}

/** Splits on a two-character operator outside string literals. */
function splitOutsideStrings(text: string, operator: '&&' | '||'): string[] {
  const parts: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (quote !== null) {
      if (char === '\\') index++;
      else if (char === quote) quote = null;
    } else if (char === '"' || char === "'") quote = char;
    else if (text.startsWith(operator, index)) {
      parts.push(text.slice(start, index));
      start = index + 2;
      index++;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Compiles a rule's `match`; an empty one matches every event. Throws RoutingRuleError. */
export function compileMatch(expression: string): EventPredicate {
  if (expression.trim() === '') return () => true;
  if (/[()]/.test(expression.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, ''))) {
    throw new RoutingRuleError(`unsupported match ${JSON.stringify(expression)}: parentheses are not supported`);
  }
  const alternatives = splitOutsideStrings(expression, '||').map((alternative) =>
    splitOutsideStrings(alternative, '&&').map((part) => comparison(part, expression)),
  );
  return (event) => alternatives.some((all) => all.every((predicate) => predicate(event)));
}

export interface RouteSpec {
  readonly rules: readonly { readonly match: string; readonly path: string }[];
  readonly defaultPath: string | null;
}

function normalizePath(path: string): string {
  return path.startsWith('/') ? path : `/${path}`;
}

/** The route chooser for one subscription; null when it can route nothing (no rule, default or route). */
export function compileRoutes(spec: RouteSpec): ((event: Readonly<Record<string, unknown>>) => string) | null {
  const rules = spec.rules.map((rule) => ({ matches: compileMatch(rule.match), path: normalizePath(rule.path) }));
  const fallback = spec.defaultPath === null ? null : normalizePath(spec.defaultPath);
  if (rules.length === 0 && fallback === null) return null;
  if (rules.length === 0 && fallback !== null) return () => fallback;
  return (event) => {
    for (const rule of rules) if (rule.matches(event)) return rule.path;
    // No rule and no default: Dapr drops the event; an empty path makes the delivery engine do the same.
    return fallback ?? '';
  };
}
