/**
 * Host arithmetic for binding VirtualServices (docs/routing.md#conventions): case-insensitive hosts,
 * leftmost `*.` wildcards (`*.x.com` covers `a.x.com` and `a.b.x.com`, never `x.com`), `*` = any.
 */
import type { Resource } from '../config/resource.js';
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.js';

/** Does wildcard-or-exact host `pattern` cover host `host` (which may itself be a wildcard)? */
function covers(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1);
  const hostRest = host.startsWith('*.') ? host.slice(1) : host;
  return hostRest.length > suffix.length && hostRest.endsWith(suffix) && (host.startsWith('*.') || !host.startsWith('.'));
}

/** The more specific of two overlapping hosts, or null when they do not overlap. */
export function intersectHosts(first: string, second: string): string | null {
  const a = first.toLowerCase();
  const b = second.toLowerCase();
  if (covers(a, b)) return b;
  if (covers(b, a)) return a;
  return null;
}

/** Server host `ns/host`, `./host`, `*\/host` or `host` (= any namespace). */
export function parseServerHost(entry: string, gatewayNamespace: string): { readonly namespace: string; readonly host: string } {
  const slash = entry.indexOf('/');
  if (slash === -1) return { namespace: '*', host: entry.toLowerCase() };
  const namespace = entry.slice(0, slash);
  return { namespace: namespace === '.' ? gatewayNamespace : namespace, host: entry.slice(slash + 1).toLowerCase() };
}

/** `exportTo`: empty or `*` = everyone, `.` = the resource's own namespace, else listed namespaces. */
export function isVisibleTo(resource: Resource<VirtualServiceSpec>, namespace: string): boolean {
  const exportTo = resource.spec.exportTo ?? [];
  if (exportTo.length === 0) return true;
  return exportTo.some(
    (entry) => entry === '*' || entry === namespace || (entry === '.' && resource.metadata.namespace === namespace),
  );
}

export function byDocumentOrder<T extends Resource>(resources: readonly T[]): T[] {
  return [...resources].sort((a, b) => a.source.order - b.source.order);
}
