/**
 * `corsPolicy` (docs/routing.md#cors), reproducing Envoy's CORS filter: a preflight (OPTIONS with
 * Origin and Access-Control-Request-Method) is answered locally when the origin matches, and also
 * when it does not if `unmatchedPreflights: IGNORE` (then without Allow-Origin); otherwise requests
 * are forwarded and get the CORS response headers only when the origin matches.
 */
import type { CorsPolicy } from '../config/kinds/virtual-service.js';
import { parseDuration } from '../config/duration.js';
import { compileStringMatch } from './match.js';
import type { CompiledCors, CorsDecision, RouteRequest } from './types.js';

type FieldPath = readonly (string | number)[];

const NOTHING: Readonly<Record<string, string>> = Object.freeze({});

function single(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

export function compileCors(policy: CorsPolicy | undefined, field: FieldPath): CompiledCors | null {
  if (policy === undefined) return null;
  const originTests = [
    ...(policy.allowOrigins ?? []).map((match, index) => compileStringMatch(match, [...field, 'allowOrigins', index])),
    ...(policy.allowOrigin ?? []).map((origin) => (value: string) => value === origin),
  ];
  // Envoy: a matcher that accepts the literal "*" allows every origin.
  const allowsAny = originTests.some((test) => test('*'));
  const originAllowed = (origin: string): boolean => allowsAny || originTests.some((test) => test(origin));

  const allowMethods = (policy.allowMethods ?? []).join(',');
  const allowHeaders = (policy.allowHeaders ?? []).join(',');
  const exposeHeaders = (policy.exposeHeaders ?? []).join(',');
  const maxAge = policy.maxAge !== undefined ? String(Math.floor(parseDuration(policy.maxAge) / 1000)) : '';
  const allowCredentials = policy.allowCredentials === true;
  const forwardUnmatchedPreflights = policy.unmatchedPreflights !== 'IGNORE';

  const preflightHeaders = (req: RouteRequest, origin: string, allowed: boolean): Record<string, string> => {
    const headers: Record<string, string> = {};
    if (allowed) headers['access-control-allow-origin'] = origin;
    if (allowCredentials) headers['access-control-allow-credentials'] = 'true';
    if (allowMethods !== '') {
      headers['access-control-allow-methods'] =
        allowMethods === '*' ? single(req.headers['access-control-request-method']) : allowMethods;
    }
    if (allowHeaders !== '') {
      headers['access-control-allow-headers'] =
        allowHeaders === '*' ? single(req.headers['access-control-request-headers']) : allowHeaders;
    }
    if (maxAge !== '') headers['access-control-max-age'] = maxAge;
    return headers;
  };

  const actualHeaders = (origin: string): Record<string, string> => {
    const headers: Record<string, string> = { 'access-control-allow-origin': origin };
    if (allowCredentials) headers['access-control-allow-credentials'] = 'true';
    if (exposeHeaders !== '') headers['access-control-expose-headers'] = exposeHeaders;
    return headers;
  };

  return Object.freeze({
    decide(req: RouteRequest): CorsDecision {
      const origin = single(req.headers.origin);
      if (origin === '') return { kind: 'forward', responseHeaders: NOTHING };
      const allowed = originAllowed(origin);
      const isPreflight = req.method === 'OPTIONS' && single(req.headers['access-control-request-method']) !== '';
      if (isPreflight && (allowed || !forwardUnmatchedPreflights)) {
        return { kind: 'preflight', headers: preflightHeaders(req, origin, allowed) };
      }
      return { kind: 'forward', responseHeaders: allowed ? actualHeaders(origin) : NOTHING };
    },
  });
}
