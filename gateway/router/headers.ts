/**
 * `headers.request` / `headers.response` operations (docs/routing.md#header-operations), compiled once. Pseudo
 * headers cannot be changed; `host`/`:authority` in `set`/`add` become an authority rewrite (Istio
 * turns them into Envoy's host rewrite) and are ignored in `remove`.
 */
import type { HeaderOperations } from '../config/kinds/virtual-service.js';
import type { HeaderOps, MutableHeaders } from './types.js';

const AUTHORITY_KEYS = new Set(['host', ':authority']);

export const NO_HEADER_OPS: HeaderOps = Object.freeze({ isEmpty: true, apply: () => undefined });

export interface CompiledHeaderOperations {
  readonly ops: HeaderOps;
  /** From `set`/`add` of `host` or `:authority` on the request side, else null. */
  readonly authority: string | null;
}

function appendValue(headers: MutableHeaders, name: string, value: string): void {
  const existing = headers[name];
  if (existing === undefined) headers[name] = value;
  else if (Array.isArray(existing)) headers[name] = [...existing, value];
  else headers[name] = [String(existing), value];
}

export function compileHeaderOperations(
  operations: HeaderOperations | undefined,
  side: 'request' | 'response',
): CompiledHeaderOperations {
  const isAuthority = (name: string): boolean => side === 'request' && AUTHORITY_KEYS.has(name);
  if (operations === undefined) return { ops: NO_HEADER_OPS, authority: null };
  let authority: string | null = null;
  const remove = (operations.remove ?? [])
    .map((name) => name.toLowerCase())
    .filter((name) => !name.startsWith(':') && !isAuthority(name));
  const writes: { readonly name: string; readonly value: string; readonly append: boolean }[] = [];
  const collect = (entries: Readonly<Record<string, string>> | undefined, append: boolean): void => {
    for (const [rawName, value] of Object.entries(entries ?? {})) {
      const name = rawName.toLowerCase();
      if (isAuthority(name)) authority = value;
      else if (!name.startsWith(':')) writes.push({ name, value, append });
    }
  };
  // Istio emits `set` entries before `add` entries.
  collect(operations.set, false);
  collect(operations.add, true);

  if (remove.length === 0 && writes.length === 0) return { ops: NO_HEADER_OPS, authority };
  const ops: HeaderOps = Object.freeze({
    isEmpty: false,
    apply(headers: MutableHeaders): void {
      for (const name of remove) delete headers[name];
      for (const write of writes) {
        if (write.append) appendValue(headers, write.name, write.value);
        else headers[write.name] = write.value;
      }
    },
  });
  return { ops, authority };
}
