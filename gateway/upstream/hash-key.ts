/**
 * The consistent-hash key of a request (docs/routing.md#load-balancing): a header, a cookie, the source IP or
 * a query parameter. A missing key means "no affinity". With `httpCookie.ttl` set and the cookie
 * absent, a cookie is generated (value derived from the client address, as Envoy does, so that
 * concurrent first requests of one client agree) and returned for `Set-Cookie`.
 */
import { hash32 } from './hash.js';
import type { HashKeySource } from './policy.js';

export interface HashKeyInputs {
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly sourceIp: string;
  /** Path with query, as sent upstream. */
  readonly path: string;
}

export interface HashKey {
  readonly hash: number | null;
  /** `Set-Cookie` value to add to the response when a cookie was generated. */
  readonly setCookie: string | undefined;
}

export const NO_HASH_KEY: HashKey = Object.freeze({ hash: null, setCookie: undefined });

function firstHeader(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    return raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
  }
  return undefined;
}

function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const value = new URLSearchParams(path.slice(q + 1)).get(name);
  return value ?? undefined;
}

/** Envoy's `Set-Cookie` layout for generated affinity cookies. */
export function affinityCookie(source: Extract<HashKeySource, { kind: 'cookie' }>, value: string): string {
  let cookie = `${source.name}="${value}"`;
  if (source.ttlMs !== null && source.ttlMs > 0) cookie += `; Max-Age=${Math.floor(source.ttlMs / 1000)}`;
  if (source.path !== '') cookie += `; Path=${source.path}`;
  for (const attribute of source.attributes) cookie += `; ${attribute}`;
  return `${cookie}; HttpOnly`;
}

export function computeHashKey(source: HashKeySource | null, inputs: HashKeyInputs): HashKey {
  if (source === null) return NO_HASH_KEY;
  let key: string | undefined;
  switch (source.kind) {
    case 'header':
      key = firstHeader(inputs.headers[source.name]);
      break;
    case 'source-ip':
      key = inputs.sourceIp === '' ? undefined : inputs.sourceIp;
      break;
    case 'query':
      key = queryValue(inputs.path, source.name);
      break;
    case 'cookie': {
      key = cookieValue(firstHeader(inputs.headers.cookie), source.name);
      if (key === undefined && source.ttlMs !== null) {
        const generated = hash32(`${inputs.sourceIp}\u0000${source.name}`).toString(16).padStart(8, '0');
        return { hash: hash32(generated), setCookie: affinityCookie(source, generated) };
      }
      break;
    }
  }
  return key === undefined ? NO_HASH_KEY : { hash: hash32(key), setCookie: undefined };
}
