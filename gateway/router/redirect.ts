/**
 * `redirect` (docs/routing.md#redirect): the Location header of a proxy-generated redirect, built from
 * the compiled rule and the request. Port rules: with `authority` the request port is never carried
 * over; without it the request Host (port included) is reused, except that a port that is the
 * default of the resulting scheme — or of the request scheme when the scheme changes (Envoy) — is
 * dropped. `port`/`derivePort` set the port explicitly; `:80` on http and `:443` on https are never
 * written.
 */
import type { HTTPRedirect } from '../config/kinds/virtual-service.js';
import { RouteCompileError } from './errors.js';
import type { UriMatchKind } from './match.js';
import type { RedirectAction, RouteRequest } from './types.js';

type FieldPath = readonly (string | number)[];

export const SUPPORTED_REDIRECT_CODES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const DEFAULT_REDIRECT_CODE = 301;

function defaultPort(scheme: string): string {
  if (scheme === 'http') return '80';
  if (scheme === 'https') return '443';
  return '';
}

/** Split `host[:port]` / `[v6]:port` into its parts. */
export function splitAuthority(authority: string): { readonly host: string; readonly port: string } {
  const bracket = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  if (colon > bracket && (bracket !== -1 || authority.indexOf(':') === colon)) {
    return { host: authority.slice(0, colon), port: authority.slice(colon + 1) };
  }
  return { host: authority, port: '' };
}

function compilePath(redirect: HTTPRedirect, uri: UriMatchKind): (req: RouteRequest) => string {
  const withQuery = (path: string, req: RouteRequest): string => (req.query === '' ? path : `${path}?${req.query}`);
  if (redirect.uri !== undefined) {
    const target = redirect.uri;
    // A redirect uri with its own query replaces the request's query.
    if (target.includes('?')) return () => target;
    return (req) => withQuery(target, req);
  }
  if (redirect.prefixRewrite !== undefined) {
    const replacement = redirect.prefixRewrite;
    if (uri.kind === 'whole') return (req) => withQuery(replacement, req);
    const consumed = uri.length;
    return (req) => withQuery(replacement + req.path.slice(consumed), req);
  }
  return (req) => withQuery(req.path, req);
}

export function compileRedirect(redirect: HTTPRedirect, uri: UriMatchKind, field: FieldPath): RedirectAction {
  const status = redirect.redirectCode ?? DEFAULT_REDIRECT_CODE;
  if (!SUPPORTED_REDIRECT_CODES.has(status)) {
    throw new RouteCompileError([...field, 'redirectCode'], `unsupported redirect code ${status} (use 301, 302, 303, 307 or 308)`);
  }
  const path = compilePath(redirect, uri);
  const fixedScheme = redirect.scheme;
  const fixedAuthority = redirect.authority !== undefined ? splitAuthority(redirect.authority) : null;
  const explicitPort = redirect.port !== undefined && redirect.port !== 0 ? String(redirect.port) : null;
  const derivePort = redirect.derivePort;

  const chooseHostAndPort = (req: RouteRequest, scheme: string): { host: string; port: string } => {
    const base = fixedAuthority ?? splitAuthority(req.authority);
    let port = base.port;
    if (fixedAuthority === null && port !== '' && scheme !== req.scheme && port === defaultPort(req.scheme)) port = '';
    if (explicitPort !== null) port = explicitPort;
    else if (derivePort === 'FROM_REQUEST_PORT') port = String(req.port);
    else if (derivePort === 'FROM_PROTOCOL_DEFAULT') port = '';
    if (port === defaultPort(scheme)) port = '';
    return { host: base.host, port };
  };

  return Object.freeze({
    kind: 'redirect' as const,
    status,
    location(req: RouteRequest): string {
      const scheme = fixedScheme ?? req.scheme;
      const { host, port } = chooseHostAndPort(req, scheme);
      return `${scheme}://${port === '' ? host : `${host}:${port}`}${path(req)}`;
    },
  });
}
