/**
 * CUSTOM action: Envoy's HTTP ext_authz protocol. The original method, path (behind `pathPrefix`) and a
 * chosen set of headers are sent to the authorizer with no body; a 2xx allows (and may add headers for
 * the upstream), anything else denies with the authorizer's own status and body. Unreachable or slow
 * authorizer: `failOpen` decides, otherwise `statusOnError` (default 403) — flag UAEX either way.
 */
import type { ExtensionProvider } from '../../gateway/config/kinds/mesh-config.js';
import { parseDuration } from '../../gateway/config/duration.js';
import { loadUndiciRequest } from '../../gateway/upstream/undici-core.js';

export type ExtAuthzResult =
  | { readonly allowed: true; readonly upstreamHeaders: Readonly<Record<string, string>> }
  | {
      readonly allowed: false;
      readonly status: number;
      readonly body: string;
      readonly downstreamHeaders: Readonly<Record<string, string>>;
      /** True when the authorizer could not be reached (timeout, connection error). */
      readonly error: boolean;
    };

/** Headers Envoy always sends to an HTTP authorizer. */
const DEFAULT_CHECK_HEADERS = ['authorization', 'cookie', 'x-forwarded-for', 'x-request-id'];
const DEFAULT_TIMEOUT_MS = 5_000;
const MAX_DENY_BODY_BYTES = 64 * 1024;

export interface ExtAuthzCheck {
  readonly method: string;
  readonly authority: string;
  /** Path with query, as forwarded upstream. */
  readonly pathWithQuery: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface ExtAuthzClient {
  readonly providerName: string;
  check(request: ExtAuthzCheck): Promise<ExtAuthzResult>;
}

function pick(source: Readonly<Record<string, string | string[] | undefined>>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = source[name.toLowerCase()];
    if (value !== undefined) picked[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  return picked;
}

export function createExtAuthzClient(provider: ExtensionProvider): ExtAuthzClient {
  const http = provider.envoyExtAuthzHttp;
  if (http === undefined) throw new Error(`extension provider ${provider.name} has no envoyExtAuthzHttp`);
  const timeoutMs = http.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(http.timeout);
  const origin = `http://${http.service.includes(':') ? `[${http.service}]` : http.service}:${http.port}`;
  const checkHeaders = [...DEFAULT_CHECK_HEADERS, ...(http.includeRequestHeadersInCheck ?? [])];
  const errorStatus = Number(http.statusOnError ?? '403') || 403;
  // Started with the client, so the first check normally finds undici loaded.
  void loadUndiciRequest();
  const failure = (status: number): ExtAuthzResult =>
    http.failOpen === true
      ? { allowed: true, upstreamHeaders: {} }
      : { allowed: false, status, body: '', downstreamHeaders: {}, error: true };

  return {
    providerName: provider.name,
    async check(check) {
      const headers = {
        ...pick(check.headers, checkHeaders),
        ...(http.includeAdditionalHeadersInCheck ?? {}),
        'x-forwarded-host': check.authority,
      };
      try {
        const undiciRequest = await loadUndiciRequest();
        const response = await undiciRequest(`${origin}${http.pathPrefix ?? ''}${check.pathWithQuery}`, {
          method: check.method as 'GET',
          headers,
          signal: AbortSignal.timeout(timeoutMs),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const responseHeaders = response.headers as Record<string, string | string[] | undefined>;
        if (response.statusCode >= 200 && response.statusCode < 300) {
          await response.body.dump();
          return { allowed: true, upstreamHeaders: pick(responseHeaders, http.headersToUpstreamOnAllow ?? []) };
        }
        const body = Buffer.from(await response.body.arrayBuffer()).subarray(0, MAX_DENY_BODY_BYTES).toString('utf8');
        return {
          allowed: false,
          status: response.statusCode,
          body,
          downstreamHeaders: pick(responseHeaders, http.headersToDownstreamOnDeny ?? []),
          error: false,
        };
      } catch {
        return failure(errorStatus);
      }
    },
  };
}
