/**
 * Validates a described request (admin `POST /explain` body or `meshgate explain` flags) into the
 * authorization plugin's input. Untrusted JSON: every field is checked for its type.
 */
import type { DescribedRequest } from '../../plugins/authz/request-view.js';

export type DescribedRequestResult = { readonly ok: true; readonly request: DescribedRequest } | { readonly ok: false; readonly error: string };

const STRING_FIELDS = ['method', 'host', 'path', 'sourceIp', 'remoteIp', 'destinationIp', 'sni', 'peerPrincipal'] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describedRequestFrom(input: unknown): DescribedRequestResult {
  if (!isRecord(input)) return { ok: false, error: 'expected a JSON object describing the request' };
  const request: Record<string, unknown> = {};
  for (const field of STRING_FIELDS) {
    const value = input[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') return { ok: false, error: `${field} must be a string` };
    request[field] = value;
  }
  if (input.destinationPort !== undefined) {
    if (typeof input.destinationPort !== 'number' || !Number.isInteger(input.destinationPort)) return { ok: false, error: 'destinationPort must be an integer' };
    request.destinationPort = input.destinationPort;
  }
  if (input.headers !== undefined) {
    if (!isRecord(input.headers)) return { ok: false, error: 'headers must be an object of strings' };
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(input.headers)) {
      if (typeof value !== 'string') return { ok: false, error: `header ${name} must be a string` };
      headers[name.toLowerCase()] = value;
    }
    request.headers = headers;
  }
  if (input.jwtClaims !== undefined) {
    if (!isRecord(input.jwtClaims)) return { ok: false, error: 'jwtClaims must be an object' };
    request.jwtClaims = input.jwtClaims;
  }
  return { ok: true, request: request as DescribedRequest };
}
