/**
 * Header hygiene, run on every request before the normaliser, routing and every policy, so that what a
 * policy reads is exactly what is forwarded (issue "edge hardening", class 4). Compiled once per
 * snapshot from MeshConfig; the edge defaults are stricter than Istio's where Istio's are the
 * permissive ones (docs/security.md explains each and the setting that restores Istio's behaviour).
 *
 * The common request (no repeated, underscored or override header) costs one walk over the header
 * names and no allocation. Headers are cleared (set to undefined), never deleted: a delete turns node's
 * header object into a slow dictionary, and the forwarding step skips undefined values.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { ProxyMode } from '../pipeline/types.js';
import type { PathNormalization, PathParameters } from './normalize.js';

export type UnderscoreAction = 'ALLOW' | 'REJECT_REQUEST' | 'DROP_HEADER';

/** The MeshConfig edge settings with the mode's defaults filled in (what `config_dump` and docs call effective). */
export interface EdgeSettings {
  readonly pathNormalization: PathNormalization;
  readonly pathParameters: PathParameters;
  readonly headersWithUnderscoresAction: UnderscoreAction;
  readonly stripOverrideHeaders: boolean;
  readonly maxRequestHeaders: number;
}

export function effectiveEdgeSettings(mesh: MeshConfigSpec, mode: ProxyMode): EdgeSettings {
  const edge = mode === 'ingress';
  return {
    pathNormalization: mesh.pathNormalization ?? (edge ? 'MERGE_SLASHES' : 'BASE'),
    pathParameters: mesh.pathParameters ?? (edge ? 'REJECT' : 'KEEP'),
    headersWithUnderscoresAction: mesh.headersWithUnderscoresAction ?? (edge ? 'DROP_HEADER' : 'ALLOW'),
    stripOverrideHeaders: mesh.stripOverrideHeaders ?? edge,
    maxRequestHeaders: mesh.maxRequestHeaders,
  };
}

/** Headers some frameworks (IIS URL rewrite, Symfony, Spring, Rails' method override) obey to serve another path or method than the one routed and authorised. */
export const OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override']);

/**
 * Fields node keeps only the first of when repeated (RFC 9110 §5.3: singletons, never a list): a
 * policy and the upstream both see the first value only, but a server or proxy behind may pick the
 * other, so a repeat is refused. `host` is refused by the attribute step with its own reason, and a
 * repeated `authorization` by RequestAuthentication (401 with `www-authenticate`) when it checks
 * tokens; without it the first value is the one policies see and the one forwarded.
 */
const SINGLETON_HEADERS: ReadonlySet<string> = new Set([
  'age',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

export interface GuardedRequest {
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
}

export type GuardVerdict = { readonly status: 400 | 431; readonly reason: string } | null;

export type RequestGuard = (request: GuardedRequest) => GuardVerdict;

const TOO_MANY_HEADERS: GuardVerdict = { status: 431, reason: 'too_many_request_headers' };
const UNDERSCORE_HEADER: GuardVerdict = { status: 400, reason: 'header_name_with_underscore' };
const TE_ON_HTTP_1_0: GuardVerdict = { status: 400, reason: 'transfer_encoding_on_http_1_0' };
const DUPLICATE_SINGLETON: GuardVerdict = { status: 400, reason: 'duplicate_singleton_header' };

/**
 * Repeated list headers are folded with `,` (Envoy's join, what AuthorizationPolicy and rate-limit
 * matchers have always been documented to compare) so the forwarded value is that very string;
 * node's `, ` fold would otherwise differ from it. `cookie` keeps node's `; ` fold (RFC 9113 §8.2.3).
 * Only called when a repeat exists: the rare path may allocate.
 */
function foldRepeats(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): GuardVerdict {
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    const list = values.get(name);
    if (list === undefined) values.set(name, [rawHeaders[i + 1] as string]);
    else list.push(rawHeaders[i + 1] as string);
  }
  for (const [name, list] of values) {
    if (list.length < 2 || name === 'host' || name === 'cookie' || name === 'set-cookie' || name.charCodeAt(0) === 58) continue;
    if (SINGLETON_HEADERS.has(name)) return DUPLICATE_SINGLETON;
    // Only a value node folded itself is re-folded; one an earlier step rewrote or cleared is left alone.
    if (headers[name] === list.join(', ')) headers[name] = list.join(',');
  }
  return null;
}

export function createRequestGuard(settings: EdgeSettings): RequestGuard {
  const { maxRequestHeaders, stripOverrideHeaders } = settings;
  const underscores = settings.headersWithUnderscoresAction;
  return (request) => {
    const rawHeaders = request.rawHeaders;
    const headers = request.headers;
    let pseudo = 0;
    let distinct = 0;
    for (const name in headers) {
      distinct += 1;
      if (name.charCodeAt(0) === 58 /* ':' */) {
        pseudo += 1;
        continue;
      }
      if (underscores !== 'ALLOW' && name.includes('_')) {
        if (underscores === 'REJECT_REQUEST') return UNDERSCORE_HEADER;
        headers[name] = undefined;
      }
      if (stripOverrideHeaders && OVERRIDE_HEADERS.has(name)) headers[name] = undefined;
    }
    const lines = rawHeaders.length / 2;
    if (lines - pseudo > maxRequestHeaders) return TOO_MANY_HEADERS;
    // RFC 9112 §6.1: HTTP/1.0 has no chunked framing, so a Transfer-Encoding there is a smuggling probe.
    if (request.httpVersionMajor === 1 && request.httpVersionMinor === 0 && headers['transfer-encoding'] !== undefined) return TE_ON_HTTP_1_0;
    return lines > distinct ? foldRepeats(headers, rawHeaders) : null;
  };
}
