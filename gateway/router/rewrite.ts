/**
 * `rewrite` (docs/routing.md#rewrite). `uri` replaces the part of the path the match consumed: the
 * matched prefix for prefix matches (a catch-all is prefix `/`, hence `/v1` + `/foo` → `/v1foo`),
 * the whole path for exact/regex matches. `uriRegexRewrite` substitutes every RE2 match on the path
 * with `\1`-style capture references. The query string is always kept.
 */
import type { HTTPRewrite } from '../config/kinds/virtual-service.js';
import type { UriMatchKind } from './match.js';
import { compileRegex } from './regex.js';
import type { RouteRequest } from './types.js';

type FieldPath = readonly (string | number)[];

function withQuery(path: string, query: string): string {
  return query === '' ? path : `${path}?${query}`;
}

/** RE2::Rewrite substitution syntax: `\0`…`\9` are groups, `\\` is a backslash. Parsed once. */
export function compileSubstitution(rewrite: string): (groups: readonly (string | undefined)[]) => string {
  const parts: (string | number)[] = [];
  let literal = '';
  for (let index = 0; index < rewrite.length; index++) {
    const char = rewrite[index];
    const next = rewrite[index + 1];
    if (char === '\\' && next !== undefined && /\d/.test(next)) {
      if (literal !== '') parts.push(literal);
      literal = '';
      parts.push(Number(next));
      index++;
    } else if (char === '\\' && next === '\\') {
      literal += '\\';
      index++;
    } else {
      literal += char;
    }
  }
  if (literal !== '') parts.push(literal);
  return (groups) => parts.map((part) => (typeof part === 'number' ? (groups[part] ?? '') : part)).join('');
}

function compileRegexRewrite(match: string, rewrite: string, field: FieldPath): (path: string) => string {
  const regex = compileRegex(match, [...field, 'match']);
  const substitute = compileSubstitution(rewrite);
  const groupCount = regex.groupCount();
  return (path) =>
    regex.matcher(path).replaceAll((...args: unknown[]) => {
      const groups = args.slice(0, groupCount + 1).map((group) => (typeof group === 'string' ? group : undefined));
      return substitute(groups);
    });
}

export function compilePathRewrite(
  rewrite: HTTPRewrite | undefined,
  uri: UriMatchKind,
  field: FieldPath,
): ((req: RouteRequest) => string | null) | null {
  if (rewrite?.uriRegexRewrite !== undefined) {
    const { match, rewrite: substitution } = rewrite.uriRegexRewrite;
    const apply = compileRegexRewrite(match, substitution, [...field, 'uriRegexRewrite']);
    return (req) => {
      const path = apply(req.path);
      return path === req.path ? null : withQuery(path, req.query);
    };
  }
  if (rewrite?.uri === undefined) return null;
  const replacement = rewrite.uri;
  if (uri.kind === 'whole') return (req) => withQuery(replacement, req.query);
  const consumed = uri.length;
  return (req) => withQuery(replacement + req.path.slice(consumed), req.query);
}
