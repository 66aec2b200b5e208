/**
 * The counting key of a rule, compiled once per snapshot into a reader per key part. Every part comes
 * from what the core already established — `attrs.remoteIp` (trusted-hop XFF), the mTLS peer, the
 * validated JWT, the matched route — never from raw client headers the core did not vouch for
 * (except an explicit `header` part, which the user chose).
 */
import type { FastifyRequest } from 'fastify';
import { headerValue } from './match.js';
import type { KeyPart } from './schema.js';

/** Returns the key, or null when a part is missing and the rule says `missingKey: skip`. */
export type KeyReader = (request: FastifyRequest) => string | null;

type PartReader = (request: FastifyRequest) => string;

function claimText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' || typeof item === 'number')) return value.join(',');
  return '';
}

function claimReader(dottedName: string): PartReader {
  const path = dottedName.split('.');
  return (request) => {
    let value: unknown = request.mesh.auth?.claims;
    for (const segment of path) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return '';
      value = (value as Record<string, unknown>)[segment];
    }
    return claimText(value);
  };
}

function partReader(part: KeyPart): PartReader {
  if ('remoteIp' in part) return (request) => request.mesh.attrs.remoteIp;
  if ('header' in part) {
    const name = part.header.name.toLowerCase();
    return (request) => headerValue(request, name);
  }
  if ('claim' in part) return claimReader(part.claim.name);
  if ('principal' in part) return (request) => request.mesh.attrs.peer?.principal ?? '';
  if ('requestPrincipal' in part) return (request) => request.mesh.auth?.principal ?? '';
  return (request) => request.mesh.routeName;
}

/**
 * Parts are JSON-encoded together so that no header value can forge another key (`a|b` + `c` vs
 * `a` + `b|c`); a missing part (absent or empty) is `null`, i.e. all such requests share one bucket.
 */
export function compileKey(parts: readonly KeyPart[], skipWhenMissing: boolean): KeyReader {
  if (parts.length === 0) return () => '[]';
  const readers = parts.map(partReader);
  const [only] = readers;
  if (readers.length === 1 && only !== undefined) {
    // The common one-part key (per client IP, per principal): the same text, without an array per request.
    const missing = skipWhenMissing ? null : '[null]';
    return (request) => {
      const value = only(request);
      return value === '' ? missing : `[${JSON.stringify(value)}]`;
    };
  }
  return (request) => {
    const values: (string | null)[] = [];
    for (const read of readers) {
      const value = read(request);
      if (value === '') {
        if (skipWhenMissing) return null;
        values.push(null);
      } else {
        values.push(value);
      }
    }
    return JSON.stringify(values);
  };
}
