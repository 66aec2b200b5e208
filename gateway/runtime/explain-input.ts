/**
 * The one input shape of `meshgate explain` and admin `POST /explain`: every field is a CLI option
 * (`--source-ip`) and a JSON field of the same name in camelCase (`sourceIp`), read by the one parser
 * below into the input of the plugin that explains (pipeline/capabilities.ts). Unknown fields are rejected by name, because an
 * ignored field silently changes the answer. Untrusted JSON: every field is checked for its type.
 */
import type { DescribedRequest } from '../pipeline/capabilities.js';

export type DescribedRequestResult = { readonly ok: true; readonly request: DescribedRequest } | { readonly ok: false; readonly error: string };

export interface ExplainRequestField {
  /** CLI option name; the JSON field is its camelCase form. */
  readonly option: string;
  readonly value: string;
  readonly description: string;
  readonly multiple?: boolean;
}

export const EXPLAIN_REQUEST_FIELDS: readonly ExplainRequestField[] = [
  { option: 'method', value: '<method>', description: 'request method' },
  { option: 'host', value: '<host>', description: 'Host (:authority)' },
  { option: 'path', value: '<path>', description: 'request path' },
  { option: 'header', value: '<name=value>', multiple: true, description: 'a request header (JSON: an object of name → value)' },
  { option: 'principal', value: '<principal>', description: 'the mTLS peer, <trust-domain>/ns/<ns>/sa/<sa>; absent = plaintext' },
  { option: 'claims', value: '<json>', description: 'verified JWT claims as a JSON object; absent = no token' },
  { option: 'source-ip', value: '<ip>', description: 'source.ip, the connection\'s peer address' },
  { option: 'remote-ip', value: '<ip>', description: 'remote.ip, the original client (default: the source IP)' },
  { option: 'destination-ip', value: '<ip>', description: 'destination.ip' },
  { option: 'destination-port', value: '<port>', description: 'destination.port' },
  { option: 'sni', value: '<name>', description: 'connection.sni' },
];

export function jsonFieldName(option: string): string {
  return option.replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase());
}

const JSON_FIELDS = EXPLAIN_REQUEST_FIELDS.map((field) => jsonFieldName(field.option));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readHeaders(value: unknown): Record<string, string> | string {
  const headers: Record<string, string> = {};
  if (Array.isArray(value)) {
    for (const entry of value) {
      const at = typeof entry === 'string' ? entry.indexOf('=') : -1;
      if (typeof entry !== 'string' || at <= 0) return `header must be name=value, got ${JSON.stringify(entry)}`;
      headers[entry.slice(0, at).toLowerCase()] = entry.slice(at + 1);
    }
    return headers;
  }
  if (!isRecord(value)) return 'header must be an object of name → value';
  for (const [name, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') return `header ${name} must be a string`;
    headers[name.toLowerCase()] = entry;
  }
  return headers;
}

function readClaims(value: unknown): Record<string, unknown> | string {
  let claims = value;
  if (typeof value === 'string') {
    try {
      claims = JSON.parse(value);
    } catch {
      return 'claims must be a JSON object';
    }
  }
  return isRecord(claims) ? claims : 'claims must be a JSON object';
}

function readPort(value: unknown): number | string {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return 'destinationPort must be an integer from 0 to 65535';
  return port;
}

/**
 * `input` holds the JSON field names (`sourceIp`); the CLI passes its parsed options renamed. Fields
 * that are absent (undefined) are not part of the request.
 */
export function describedRequestFrom(input: unknown): DescribedRequestResult {
  if (!isRecord(input)) return { ok: false, error: 'expected a JSON object describing the request' };
  const unknown = Object.keys(input).filter((key) => !JSON_FIELDS.includes(key));
  if (unknown.length > 0) {
    return { ok: false, error: `unknown field${unknown.length === 1 ? '' : 's'} ${unknown.map((key) => `"${key}"`).join(', ')} (known: ${JSON_FIELDS.join(', ')})` };
  }
  const request: { -readonly [K in keyof DescribedRequest]: DescribedRequest[K] } = {};
  for (const field of ['method', 'host', 'path', 'principal', 'sourceIp', 'remoteIp', 'destinationIp', 'sni'] as const) {
    const value = input[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') return { ok: false, error: `${field} must be a string` };
    if (field === 'principal') request.peerPrincipal = value;
    else request[field] = value;
  }
  if (request.remoteIp === undefined && request.sourceIp !== undefined) request.remoteIp = request.sourceIp;
  if (input.destinationPort !== undefined) {
    const port = readPort(input.destinationPort);
    if (typeof port === 'string') return { ok: false, error: port };
    request.destinationPort = port;
  }
  if (input.header !== undefined) {
    const headers = readHeaders(input.header);
    if (typeof headers === 'string') return { ok: false, error: headers };
    request.headers = headers;
  }
  if (input.claims !== undefined) {
    const claims = readClaims(input.claims);
    if (typeof claims === 'string') return { ok: false, error: claims };
    request.jwtClaims = claims;
  }
  return { ok: true, request };
}
