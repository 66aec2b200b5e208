/**
 * Where tokens are read from (istio-semantics §7.2). All locations any rule reads are scanned; more than
 * one token (two locations, or a repeated header/param/cookie) is refused, because which one the
 * principal would come from is undefined and an attacker picks the one the backend reads.
 */
import type { FastifyRequest } from 'fastify';

export interface TokenLocation {
  /** Stable id, e.g. `header:authorization:Bearer `, `param:access_token`, `cookie:session`. */
  readonly id: string;
  readonly kind: 'header' | 'param' | 'cookie';
  /** Header names are lower-cased. */
  readonly name: string;
  readonly prefix: string;
  /**
   * The default `Authorization: Bearer` location: other schemes (Basic…) are simply not JWTs, and the
   * scheme is case-insensitive (RFC 7235). Explicit `fromHeaders` prefixes must match exactly.
   */
  readonly lenientScheme: boolean;
}

export const DEFAULT_LOCATIONS: readonly TokenLocation[] = [
  { id: 'header:authorization:Bearer ', kind: 'header', name: 'authorization', prefix: 'Bearer ', lenientScheme: true },
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
  for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === name) count++;
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

/** Locations are grouped by header so one header value is tried against every configured prefix. */
export function extractToken(request: FastifyRequest, locations: readonly TokenLocation[], query: string): Extraction {
  const found: FoundToken[] = [];
  const seenHeaders = new Set<string>();
  let params: URLSearchParams | null = null;
  for (const location of locations) {
    if (location.kind === 'header') {
      if (seenHeaders.has(location.name)) continue;
      seenHeaders.add(location.name);
      const value = request.headers[location.name];
      if (value === undefined) continue;
      if (Array.isArray(value) || rawHeaderCount(request.raw.rawHeaders, location.name) > 1) return { ok: false, message: MULTIPLE };
      const candidates = locations
        .filter((l) => l.kind === 'header' && l.name === location.name)
        .sort((a, b) => b.prefix.length - a.prefix.length);
      const match = candidates.find((l) =>
        l.lenientScheme ? value.slice(0, l.prefix.length).toLowerCase() === l.prefix.toLowerCase() : value.startsWith(l.prefix),
      );
      if (match === undefined) {
        if (candidates.every((l) => l.lenientScheme)) continue;
        return { ok: false, message: `Jwt header ${location.name} does not start with the required prefix` };
      }
      found.push({ location: match, token: value.slice(match.prefix.length).trim() });
    } else if (location.kind === 'param') {
      params ??= new URLSearchParams(query);
      const values = params.getAll(location.name);
      if (values.length > 1) return { ok: false, message: MULTIPLE };
      if (values.length === 1) found.push({ location, token: values[0] as string });
    } else {
      const cookieHeader = request.headers.cookie;
      const values = cookieValues(Array.isArray(cookieHeader) ? cookieHeader.join(';') : cookieHeader, location.name);
      if (values.length > 1) return { ok: false, message: MULTIPLE };
      if (values.length === 1) found.push({ location, token: values[0] as string });
    }
  }
  if (found.length > 1) return { ok: false, message: MULTIPLE };
  return { ok: true, token: found[0] ?? null };
}
