/**
 * One `HTTPMatchRequest` compiled into a predicate (docs/routing.md#matching-a-request). Selectors (`port`,
 * `sourceLabels`, `sourceNamespace`, `gateways`) are decided here, at load time: a block that does
 * not select this proxy/listener compiles to null and never becomes a route.
 */
import type { HTTPMatchRequest, StringMatch } from '../config/kinds/virtual-service.js';
import { labelsMatch } from '../config/labels.js';
import { compileFullMatch } from './regex.js';
import type { RequestView } from './request-view.js';

type FieldPath = readonly (string | number)[];

/** Where the routes are being built: one listener of one proxy, for one gateway (or `mesh`). */
export interface MatchScope {
  /** Listener port; null when the port is only known per request (sidecar outbound: the authority's port). */
  readonly listenerPort: number | null;
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly proxyNamespace: string;
  /** `mesh` or `<ns>/<gateway>` the routes are built for. */
  readonly gateway: string;
  /** Namespace of the VirtualService (bare gateway names refer to it). */
  readonly virtualServiceNamespace: string;
}

/** What a rewrite/redirect needs to know about the uri condition: how much of the path "matched". */
export type UriMatchKind = { readonly kind: 'prefix'; readonly length: number } | { readonly kind: 'whole' };

export interface CompiledMatch {
  readonly test: (view: RequestView) => boolean;
  /** True when the block has no runtime condition (no match, `{}`, uri prefix `/` or regex `.*`). */
  readonly matchesEverything: boolean;
  readonly uri: UriMatchKind;
}

/** Header keys Istio ignores under `headers` (they are pseudo-headers with their own fields). */
const IGNORED_HEADER_KEYS = new Set(['uri', 'scheme', 'method', 'authority']);
const CLAIM_KEY_PREFIX = '@request.auth.claims';

type ValueTest = (value: string) => boolean;

/** `{}` (and `regex: "*"` for headers) means "present, any value". */
function isPresenceMatch(match: StringMatch, allowStarRegex: boolean): boolean {
  return (
    match.exact === undefined &&
    match.prefix === undefined &&
    (match.regex === undefined || (allowStarRegex && match.regex === '*'))
  );
}

export function compileStringMatch(match: StringMatch, field: FieldPath, ignoreCase = false): ValueTest {
  if (match.exact !== undefined) {
    const expected = ignoreCase ? match.exact.toLowerCase() : match.exact;
    return ignoreCase ? (value) => value.toLowerCase() === expected : (value) => value === expected;
  }
  if (match.prefix !== undefined) {
    const prefix = ignoreCase ? match.prefix.toLowerCase() : match.prefix;
    return ignoreCase ? (value) => value.toLowerCase().startsWith(prefix) : (value) => value.startsWith(prefix);
  }
  if (match.regex !== undefined) return compileFullMatch(match.regex, [...field, 'regex']);
  return () => true;
}

export function gatewayRef(ref: string, virtualServiceNamespace: string): string {
  if (ref === 'mesh' || ref.includes('/')) return ref;
  return `${virtualServiceNamespace}/${ref}`;
}

function selectsThisProxy(match: HTTPMatchRequest, scope: MatchScope): boolean {
  if (match.port !== undefined && scope.listenerPort !== null && match.port !== scope.listenerPort) return false;
  if (match.sourceNamespace !== undefined && match.sourceNamespace !== scope.proxyNamespace) return false;
  if (match.sourceLabels !== undefined && !labelsMatch(match.sourceLabels, scope.proxyLabels)) return false;
  if (match.gateways !== undefined && match.gateways.length > 0) {
    const names = match.gateways.map((ref) => gatewayRef(ref, scope.virtualServiceNamespace));
    if (!names.includes(scope.gateway)) return false;
  }
  return true;
}

function compileUri(match: StringMatch, ignoreCase: boolean, field: FieldPath): { test: (v: RequestView) => boolean; kind: UriMatchKind; trivial: boolean } {
  if (match.prefix !== undefined) {
    const prefixTest = compileStringMatch(match, field, ignoreCase);
    // Envoy's prefix sees the full :path; only a prefix containing '?' can tell the difference.
    const test = match.prefix.includes('?')
      ? (view: RequestView) => prefixTest(view.pathWithQuery)
      : (view: RequestView) => prefixTest(view.req.path);
    return { test, kind: { kind: 'prefix', length: match.prefix.length }, trivial: match.prefix === '/' || match.prefix === '' };
  }
  if (match.exact !== undefined) {
    const exactTest = compileStringMatch(match, field, ignoreCase);
    return { test: (view) => exactTest(view.req.path), kind: { kind: 'whole' }, trivial: false };
  }
  if (match.regex !== undefined) {
    // ignoreUriCase never applies to regex (use `(?i)`).
    const regexTest = compileStringMatch(match, field);
    return { test: (view) => regexTest(view.req.path), kind: { kind: 'whole' }, trivial: match.regex === '.*' };
  }
  return { test: () => true, kind: { kind: 'prefix', length: 1 }, trivial: true };
}

/** `@request.auth.claims.a.b` and `@request.auth.claims[a][b]` → ['a', 'b']. */
export function parseClaimPath(key: string): string[] | null {
  if (!key.startsWith(CLAIM_KEY_PREFIX)) return null;
  const rest = key.slice(CLAIM_KEY_PREFIX.length);
  if (rest.startsWith('.')) return rest.length > 1 ? rest.slice(1).split('.') : null;
  if (rest.startsWith('[')) {
    const parts = [...rest.matchAll(/\[([^\]]*)\]/g)].map((found) => found[1] ?? '');
    return parts.join('') === '' || parts.map((part) => `[${part}]`).join('') !== rest ? null : parts;
  }
  return null;
}

/** String claims and the string members of list claims; anything else cannot match. */
function claimValues(claims: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): string[] | null {
  let current: unknown = claims;
  for (const part of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return null;
    current = (current as Record<string, unknown>)[part];
  }
  if (typeof current === 'string') return [current];
  if (Array.isArray(current)) return current.filter((item): item is string => typeof item === 'string');
  return null;
}

function compileHeaderCondition(
  name: string,
  match: StringMatch,
  inverted: boolean,
  field: FieldPath,
): ((view: RequestView) => boolean) | null {
  const claimPath = parseClaimPath(name);
  if (claimPath !== null) {
    const presence = isPresenceMatch(match, true);
    const valueTest = presence ? () => true : compileStringMatch(match, field);
    const claimTest = (view: RequestView): boolean => {
      const values = claimValues(view.req.claims, claimPath);
      return values !== null && values.some(valueTest);
    };
    return inverted ? (view) => !claimTest(view) : claimTest;
  }
  const key = name.toLowerCase();
  if (IGNORED_HEADER_KEYS.has(key)) return null;
  if (isPresenceMatch(match, true)) {
    return inverted ? (view) => view.header(key) === undefined : (view) => view.header(key) !== undefined;
  }
  const valueTest = compileStringMatch(match, field);
  if (inverted) return (view) => !valueTest(view.header(key) ?? '');
  return (view) => {
    const value = view.header(key);
    return value !== undefined && valueTest(value);
  };
}

function compileQueryCondition(name: string, match: StringMatch, field: FieldPath): (view: RequestView) => boolean {
  if (isPresenceMatch(match, false)) return (view) => view.queryParam(name) !== undefined;
  const valueTest = compileStringMatch(match, field);
  return (view) => {
    const value = view.queryParam(name);
    return value !== undefined && valueTest(value);
  };
}

/** Authority port for sidecar outbound routes, where `port` selects the destination service port. */
function authorityPort(view: RequestView): number {
  const colon = view.req.authority.lastIndexOf(':');
  const bracket = view.req.authority.lastIndexOf(']');
  if (colon > bracket) {
    const port = Number(view.req.authority.slice(colon + 1));
    if (Number.isInteger(port)) return port;
  }
  return view.req.scheme === 'https' ? 443 : 80;
}

/**
 * Compile one match block (`undefined` = the rule has no `match`, a catch-all). Returns null when the
 * block's selectors exclude this proxy/listener/gateway. Throws `RouteCompileError` on invalid input.
 */
export function compileMatch(match: HTTPMatchRequest | undefined, scope: MatchScope, field: FieldPath): CompiledMatch | null {
  if (match === undefined) return { test: () => true, matchesEverything: true, uri: { kind: 'prefix', length: 1 } };
  if (!selectsThisProxy(match, scope)) return null;

  const conditions: ((view: RequestView) => boolean)[] = [];
  const uri = compileUri(match.uri ?? {}, match.ignoreUriCase === true, [...field, 'uri']);
  if (!uri.trivial) conditions.push(uri.test);
  if (match.scheme !== undefined && !isPresenceMatch(match.scheme, false)) {
    const test = compileStringMatch(match.scheme, [...field, 'scheme']);
    conditions.push((view) => test(view.req.scheme));
  }
  if (match.method !== undefined && !isPresenceMatch(match.method, false)) {
    const test = compileStringMatch(match.method, [...field, 'method']);
    conditions.push((view) => test(view.req.method));
  }
  if (match.authority !== undefined && !isPresenceMatch(match.authority, false)) {
    const test = compileStringMatch(match.authority, [...field, 'authority']);
    conditions.push((view) => test(view.req.authority));
  }
  for (const [name, headerMatch] of Object.entries(match.headers ?? {})) {
    const test = compileHeaderCondition(name, headerMatch, false, [...field, 'headers', name]);
    if (test !== null) conditions.push(test);
  }
  for (const [name, headerMatch] of Object.entries(match.withoutHeaders ?? {})) {
    const test = compileHeaderCondition(name, headerMatch, true, [...field, 'withoutHeaders', name]);
    if (test !== null) conditions.push(test);
  }
  for (const [name, queryMatch] of Object.entries(match.queryParams ?? {})) {
    conditions.push(compileQueryCondition(name, queryMatch, [...field, 'queryParams', name]));
  }
  if (match.port !== undefined && scope.listenerPort === null) {
    const port = match.port;
    conditions.push((view) => authorityPort(view) === port);
  }

  return { test: allOf(conditions), matchesEverything: conditions.length === 0, uri: uri.kind };
}

function allOf(conditions: readonly ((view: RequestView) => boolean)[]): (view: RequestView) => boolean {
  if (conditions.length === 0) return () => true;
  if (conditions.length === 1) return conditions[0] as (view: RequestView) => boolean;
  return (view) => {
    for (const condition of conditions) if (!condition(view)) return false;
    return true;
  };
}

