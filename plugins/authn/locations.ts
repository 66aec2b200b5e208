/**
 * Where tokens are read from (docs/policies.md#requestauthentication-jwt). All locations any rule reads are scanned; more than
 * one token (two locations, or a repeated header/param/cookie) is refused, because which one the
 * principal would come from is undefined and an attacker picks the one the backend reads.
 */
import type { FastifyRequest } from 'fastify';
import { isRawHeaderName } from '../../gateway/http/raw-headers.js';

export interface TokenLocation {
  /** Stable id, e.g. `header:authorization:Bearer `, `param:access_token`, `cookie:session`. */
  readonly id: string;
  readonly kind: 'header' | 'param' | 'cookie';
  /** Header names are lower-cased. */
  readonly name: string;
  readonly prefix: string;
  /**
   * The default `Authorization: Bearer` location: other schemes (Basic…) are simply not JWTs, and the
   * scheme is case-insensitive (RFC 7235), so such a `prefix` is stored lower-case and compared with
   * the lower-cased start of the value. Explicit `fromHeaders` prefixes must match exactly.
   */
  readonly lenientScheme: boolean;
}

export const DEFAULT_LOCATIONS: readonly TokenLocation[] = [
  { id: 'header:authorization:Bearer ', kind: 'header', name: 'authorization', prefix: 'bearer ', lenientScheme: true },
  { id: 'param:access_token', kind: 'param', name: 'access_token', prefix: '', lenientScheme: false },
];

export function headerLocation(name: string, prefix: string): TokenLocation {
  const lower = name.toLowerCase();
  return { id: `header:${lower}:${prefix}`, kind: 'header', name: lower, prefix, lenientScheme: false };
}

export function paramLocation(name: string): TokenLocation {
  return { id: `param:${name}`, kind: 'param', name, prefix: '', lenientScheme: false };
}

export function cookieLocation(name: string): TokenLocation {
  return { id: `cookie:${name}`, kind: 'cookie', name, prefix: '', lenientScheme: false };
}

export interface FoundToken {
  readonly location: TokenLocation;
  readonly token: string;
}

export type Extraction =
  | { readonly ok: true; readonly token: FoundToken | null }
  | { readonly ok: false; readonly message: string };

function rawHeaderCount(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (isRawHeaderName(rawHeaders[i] as string, name)) count++;
  return count;
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals !== -1 && pair.slice(0, equals).trim() === name) values.push(pair.slice(equals + 1).trim());
  }
  return values;
}

const MULTIPLE = 'Multiple JWTs in the request are not allowed';

/** One step of the scan, in the order the locations were configured; a header is read once for all its prefixes. */
export type LocationStep =
  | {
      readonly kind: 'header';
      readonly name: string;
      /** Every location on this header, longest prefix first (the most specific prefix wins). */
      readonly candidates: readonly TokenLocation[];
      /** A value no prefix matches is then not a JWT at all (e.g. `Basic …`), rather than a malformed one. */
      readonly allLenient: boolean;
    }
  | { readonly kind: 'param' | 'cookie'; readonly location: TokenLocation };

/** The scan plan of a set of locations, built once per snapshot instead of on every request. */
export function planTokenLocations(locations: readonly TokenLocation[]): readonly LocationStep[] {
  const steps: LocationStep[] = [];
  const plannedHeaders = new Set<string>();
  for (const location of locations) {
    if (location.kind !== 'header') {
      steps.push({ kind: location.kind, location });
      continue;
    }
    if (plannedHeaders.has(location.name)) continue;
    plannedHeaders.add(location.name);
    const candidates = locations.filter((l) => l.kind === 'header' && l.name === location.name).sort((a, b) => b.prefix.length - a.prefix.length);
    steps.push({ kind: 'header', name: location.name, candidates, allLenient: candidates.every((l) => l.lenientScheme) });
  }
  return steps;
}

function matchingPrefix(candidates: readonly TokenLocation[], value: string): TokenLocation | null {
  for (const location of candidates) {
    const { prefix } = location;
    if (location.lenientScheme ? value.slice(0, prefix.length).toLowerCase() === prefix : value.startsWith(prefix)) return location;
  }
  return null;
}

export function extractToken(request: FastifyRequest, plan: readonly LocationStep[], query: string): Extraction {
  let found: FoundToken | null = null;
  let foundCount = 0;
  let params: URLSearchParams | null = null;
  for (const step of plan) {
    let token: FoundToken | null = null;
    if (step.kind === 'header') {
      const value = request.headers[step.name];
      if (value === undefined) continue;
      if (Array.isArray(value) || rawHeaderCount(request.raw.rawHeaders, step.name) > 1) return { ok: false, message: MULTIPLE };
      const match = matchingPrefix(step.candidates, value);
      if (match === null) {
        if (step.allLenient) continue;
        return { ok: false, message: `Jwt header ${step.name} does not start with the required prefix` };
      }
      token = { location: match, token: value.slice(match.prefix.length).trim() };
    } else if (step.kind === 'param') {
      if (query === '') continue;
      params ??= new URLSearchParams(query);
      const values = params.getAll(step.location.name);
      if (values.length > 1) return { ok: false, message: MULTIPLE };
      if (values.length === 1) token = { location: step.location, token: values[0] as string };
    } else {
      const cookieHeader = request.headers.cookie;
      const values = cookieValues(Array.isArray(cookieHeader) ? cookieHeader.join(';') : cookieHeader, step.location.name);
      if (values.length > 1) return { ok: false, message: MULTIPLE };
      if (values.length === 1) token = { location: step.location, token: values[0] as string };
    }
    if (token === null) continue;
    found = token;
    foundCount++;
  }
  return foundCount > 1 ? { ok: false, message: MULTIPLE } : { ok: true, token: found };
}
