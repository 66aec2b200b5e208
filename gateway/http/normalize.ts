/**
 * The ONE request normaliser (docs/normalisation.md#path-normalisation). Routing, AuthorizationPolicy and the request sent
 * upstream all see the path it returns, so a policy can never be evaluated on a different path than
 * the one the backend receives — the root of every path-confusion bypass.
 *
 * Order of operations (Envoy's): [DECODE_AND_MERGE_SLASHES: %2F/%5C decoded first] → `\` → `/` →
 * unreserved %XX decoded once → RFC 3986 dot-segment removal → [MERGE_SLASHES modes: `//` → `/`].
 * Rejected (400): NUL or `%00`, malformed `%XX`, a target that is neither origin-form nor absolute-form,
 * and a dot segment carrying path parameters (`/..;x/`), which Java servlet containers resolve as `..`
 * while RFC 3986 does not — a policy/backend disagreement we refuse rather than guess.
 */
import { isIP } from 'node:net';

export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

/**
 * `;params` in path segments: Tomcat-style servlet containers drop them before mapping a path, so
 * `/admin;x/` is `/admin/` to the backend while a policy on `/admin/*` would not see it.
 */
export type PathParameters = 'KEEP' | 'STRIP' | 'REJECT';

export type NormalizedTarget =
  | {
      readonly ok: true;
      /** Normalised path, never empty, no query, no fragment. */
      readonly path: string;
      /** Raw query without `?` (forwarded unchanged), or ''. */
      readonly query: string;
      /** Set only for absolute-form targets (`http://host/path`): the authority they named, lower-cased. */
      readonly absoluteAuthority?: string;
    }
  | { readonly ok: false; readonly reason: string };

export type Normalizer = (rawUrl: string) => NormalizedTarget;

const CHAR_PERCENT = 0x25;
const CHAR_SLASH = 0x2f;
const CHAR_BACKSLASH = 0x5c;
const CHAR_DOT = 0x2e;
const CHAR_SEMICOLON = 0x3b;
const CHAR_QUESTION = 0x3f;
const CHAR_HASH = 0x23;

const ABSOLUTE_FORM = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d ||
    byte === 0x2e ||
    byte === 0x5f ||
    byte === 0x7e
  );
}

/**
 * One pass over the percent escapes: unreserved bytes are decoded (once — the output is never rescanned,
 * so `%252e` stays `%252e`), `%2F`/`%5C` are decoded only when asked, everything else is kept with
 * upper-case hex so that equal paths compare equal. Returns null on a malformed escape or `%00`.
 */
function decodeEscapes(path: string, decodeSlashes: boolean): string | null {
  let out = '';
  let copiedUpTo = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const high = i + 2 < path.length ? hexValue(path.charCodeAt(i + 1)) : -1;
    const low = high === -1 ? -1 : hexValue(path.charCodeAt(i + 2));
    if (low === -1) return null;
    const byte = high * 16 + low;
    if (byte === 0) return null;
    let replacement: string;
    if (isUnreserved(byte)) replacement = String.fromCharCode(byte);
    else if (decodeSlashes && byte === CHAR_SLASH) replacement = '/';
    else if (decodeSlashes && byte === CHAR_BACKSLASH) replacement = '/';
    else replacement = path.slice(i, i + 3).toUpperCase();
    out += path.slice(copiedUpTo, i) + replacement;
    copiedUpTo = i + 3;
    i += 2;
  }
  return out + path.slice(copiedUpTo);
}

function isDotSegment(segment: string): boolean {
  return segment === '.' || segment === '..';
}

/** RFC 3986 §5.2.4 for an absolute path; `null` when a dot segment carries path parameters. */
function removeDotSegments(path: string): string | null {
  const input = path.split('/');
  const output: string[] = [];
  for (let i = 1; i < input.length; i++) {
    const segment = input[i] as string;
    const last = i === input.length - 1;
    const semicolon = segment.indexOf(';');
    if (semicolon !== -1 && isDotSegment(segment.slice(0, semicolon))) return null;
    if (segment === '.') {
      if (last) output.push('');
    } else if (segment === '..') {
      output.pop();
      if (last) output.push('');
    } else {
      output.push(segment);
    }
  }
  return `/${output.join('/')}`;
}

/** Removes `;…` from every segment (up to the next `/`), as a servlet container does before mapping. */
function stripPathParameters(path: string): string {
  return path.replace(/;[^/]*/g, '');
}

function mergeSlashes(path: string): string {
  return path.replace(/\/{2,}/g, '/');
}

/**
 * True when the path is already in normal form for this mode, decided in one scan with no allocation:
 * the common case returns the input string unchanged.
 */
function isAlreadyNormal(path: string, merge: boolean): boolean {
  let previous = CHAR_SLASH;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code === CHAR_PERCENT || code === CHAR_BACKSLASH || code === 0 || code === CHAR_SEMICOLON) return false;
    if (previous === CHAR_SLASH && (code === CHAR_DOT || (merge && code === CHAR_SLASH && i > 0))) return false;
    previous = code;
  }
  return true;
}

interface SplitTarget {
  readonly path: string;
  readonly query: string;
  readonly absoluteAuthority?: string;
}

function splitTarget(rawUrl: string): SplitTarget | string {
  let target = rawUrl;
  let absoluteAuthority: string | undefined;
  if (target.charCodeAt(0) !== CHAR_SLASH) {
    const scheme = ABSOLUTE_FORM.exec(target);
    if (scheme === null) return 'request target must be origin-form (/path) or absolute-form (http://host/path)';
    const authorityStart = scheme[0].length;
    let authorityEnd = authorityStart;
    while (authorityEnd < target.length) {
      const code = target.charCodeAt(authorityEnd);
      if (code === CHAR_SLASH || code === CHAR_QUESTION || code === CHAR_HASH) break;
      authorityEnd++;
    }
    absoluteAuthority = target.slice(authorityStart, authorityEnd).toLowerCase();
    if (absoluteAuthority.includes('@')) return 'userinfo is not allowed in an absolute-form request target';
    target = target.charCodeAt(authorityEnd) === CHAR_SLASH ? target.slice(authorityEnd) : `/${target.slice(authorityEnd)}`;
  }
  const hashAt = target.indexOf('#');
  const beforeFragment = hashAt === -1 ? target : target.slice(0, hashAt);
  const queryAt = beforeFragment.indexOf('?');
  const path = queryAt === -1 ? beforeFragment : beforeFragment.slice(0, queryAt);
  const query = queryAt === -1 ? '' : beforeFragment.slice(queryAt + 1);
  return absoluteAuthority === undefined ? { path, query } : { path, query, absoluteAuthority };
}

const PATH_PARAMETERS_REJECTED = 'path parameters (;) are not accepted here';

export function createNormalizer(mode: PathNormalization, parameters: PathParameters = 'KEEP'): Normalizer {
  const merge = mode === 'MERGE_SLASHES' || mode === 'DECODE_AND_MERGE_SLASHES';
  const decodeSlashes = mode === 'DECODE_AND_MERGE_SLASHES';

  function normalizePath(raw: string): string | null {
    if (raw.includes('\0')) return null;
    const path = parameters === 'STRIP' && raw.includes(';') ? stripPathParameters(raw) : raw;
    if (mode === 'NONE') {
      const zero = path.search(/%(?:00|(?![0-9a-fA-F]{2}))/);
      return zero === -1 ? path : null;
    }
    let result = decodeEscapes(path, decodeSlashes);
    if (result === null) return null;
    result = result.replaceAll('\\', '/');
    result = removeDotSegments(result);
    if (result === null) return null;
    return merge ? mergeSlashes(result) : result;
  }

  return (rawUrl) => {
    const fastPath = rawUrl.charCodeAt(0) === CHAR_SLASH && !rawUrl.includes('?') && !rawUrl.includes('#');
    if (fastPath && (mode === 'NONE' ? !rawUrl.includes('%') && !rawUrl.includes('\0') && (parameters === 'KEEP' || !rawUrl.includes(';')) : isAlreadyNormal(rawUrl, merge))) {
      return { ok: true, path: rawUrl, query: '' };
    }
    const split = splitTarget(rawUrl);
    if (typeof split === 'string') return { ok: false, reason: split };
    if (parameters === 'REJECT' && split.path.includes(';')) return { ok: false, reason: PATH_PARAMETERS_REJECTED };
    const path = mode !== 'NONE' && isAlreadyNormal(split.path, merge) ? split.path : normalizePath(split.path);
    if (path === null) return { ok: false, reason: 'invalid path: NUL, malformed percent-encoding or a dot segment with parameters' };
    return split.absoluteAuthority === undefined
      ? { ok: true, path, query: split.query }
      : { ok: true, path, query: split.query, absoluteAuthority: split.absoluteAuthority };
  };
}

/** HTTP methods are case-sensitive tokens; Envoy rejects lower-case ones (400) rather than guessing. */
export function validateMethod(method: string): boolean {
  return /^[A-Z][A-Z0-9_-]*$/.test(method);
}

export interface NormalizedAuthority {
  /** As received, lower-cased, port kept (what AuthZ `hosts` and VS `authority` see). */
  readonly authority: string;
  /** Without the port (what vhost selection sees); IPv6 literals keep their brackets. */
  readonly host: string;
  /** The explicit port, or null. */
  readonly port: number | null;
}

/** RFC 3986 reg-name restricted to what DNS names and IPv4 literals use, after lower-casing. */
const HOST_NAME = /^[a-z0-9_~-]+(?:\.[a-z0-9_~-]+)*$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;
/** A decimal port without leading zeros: `host:080` and `host:` are refused, never read two ways. */
const PORT = /^[1-9][0-9]{0,4}$/;

/**
 * Host/:authority as every later step reads it, or null when it is no valid authority: an empty or
 * zero-padded port, a comma (two hosts joined by an intermediary), spaces, userinfo or any other
 * character a DNS name cannot hold. A single trailing dot (`api.example.com.`, the absolute DNS form)
 * is removed once, so that policies, routing and the forwarded Host all see the same name.
 */
export function normalizeAuthority(raw: string): NormalizedAuthority | null {
  const lowered = raw.trim().toLowerCase();
  if (lowered === '') return { authority: '', host: '', port: null };
  let host = lowered;
  let portText: string | null = null;
  if (lowered.charCodeAt(0) === 0x5b /* '[' */) {
    const close = lowered.indexOf(']');
    if (close === -1) return null;
    host = lowered.slice(0, close + 1);
    if (close + 1 < lowered.length) {
      if (lowered.charCodeAt(close + 1) !== 0x3a /* ':' */) return null;
      portText = lowered.slice(close + 2);
    }
    if (!IPV6_LITERAL.test(host)) return null;
  } else {
    const colon = lowered.indexOf(':');
    if (colon !== -1) {
      host = lowered.slice(0, colon);
      portText = lowered.slice(colon + 1);
    }
    if (host.charCodeAt(host.length - 1) === CHAR_DOT) host = host.slice(0, -1);
    if (!HOST_NAME.test(host)) return null;
  }
  if (portText === null) return { authority: host, host, port: null };
  if (!PORT.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  return { authority: host.length + 1 + portText.length === lowered.length ? lowered : `${host}:${portText}`, host, port };
}

/**
 * `remote.ip` (docs/normalisation.md#client-address): the direct peer, or with `numTrustedProxies = N > 0` the N-th
 * address from the right of X-Forwarded-For (as received, before this proxy appends the peer). Too few
 * or unparsable entries fall back to the peer: a forged header must never lend a client a better address.
 */
export function trustedClientIp(
  xffHeader: string | readonly string[] | undefined,
  peerIp: string,
  numTrustedProxies: number,
): string {
  if (numTrustedProxies <= 0 || xffHeader === undefined) return peerIp;
  const joined = typeof xffHeader === 'string' ? xffHeader : xffHeader.join(',');
  const entries = joined.split(',');
  const index = entries.length - numTrustedProxies;
  if (index < 0) return peerIp;
  const candidate = (entries[index] as string).trim();
  return isIP(candidate) === 0 ? peerIp : candidate;
}
