/**
 * Which requests a rule counts, compiled once per snapshot with the same value patterns as
 * AuthorizationPolicy (exact, `prefix*`, `*suffix`, `*` = present). Paths are the core's normalised
 * `attrs.path`, so `/a/../v1/x` and `/v1/x` are the same path here.
 */
import type { FastifyRequest } from 'fastify';
import { compileValueList } from '../../gateway/policy/value-match.js';
import type { ValueMatcher } from '../../gateway/policy/value-match.js';
import type { RequestMatch } from './schema.js';

export type RequestPredicate = (request: FastifyRequest) => boolean;

/** Header value as policies see it: repeated headers joined with `,`; absent = ''. */
export function headerValue(request: FastifyRequest, name: string): string {
  const value = request.headers[name];
  if (value === undefined) return '';
  return Array.isArray(value) ? value.join(',') : value;
}

const MATCH_EVERYTHING: RequestPredicate = () => true;

export function compileRequestMatch(match: RequestMatch | undefined): RequestPredicate {
  if (match === undefined) return MATCH_EVERYTHING;
  const checks: RequestPredicate[] = [];
  const host = compileValueList(match.hosts, match.notHosts, { ignoreCase: true });
  if (host !== null) checks.push((request) => host(request.mesh.attrs.authority));
  const path = compileValueList(match.paths, match.notPaths);
  if (path !== null) checks.push((request) => path(request.mesh.attrs.path));
  const method = compileValueList(match.methods, match.notMethods);
  if (method !== null) checks.push((request) => method(request.mesh.attrs.method));
  for (const [name, values] of Object.entries(match.headers ?? {})) {
    const lowerName = name.toLowerCase();
    const header: ValueMatcher | null = compileValueList(values, undefined);
    if (header !== null) checks.push((request) => header(headerValue(request, lowerName)));
  }
  if (checks.length === 0) return MATCH_EVERYTHING;
  return (request) => checks.every((check) => check(request));
}
