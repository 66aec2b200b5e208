/**
 * Response headers of draft-ietf-httpapi-ratelimit-headers (-08 and later): `RateLimit-Policy` lists
 * the quota policies (`q` units per `w` seconds), `RateLimit` the current state (`r` remaining, `t`
 * seconds to reset). Both are Structured-Field lists, so several limits (100/s AND 5000/h) are
 * reported side by side, which the older `RateLimit-Limit/Remaining/Reset` trio cannot express.
 */
import type { CompiledLimit } from './compile.js';
import type { AdmittedLimit } from './enforce.js';

export const RATELIMIT_POLICY_HEADER = 'ratelimit-policy';
export const RATELIMIT_HEADER = 'ratelimit';
export const RETRY_AFTER_HEADER = 'retry-after';
/** Envoy marks its rate-limited responses this way; meshgate clients' `retryOn: envoy-ratelimited` relies on it. */
export const ENVOY_RATELIMITED_HEADER = 'x-envoy-ratelimited';

/** Whole seconds, rounded up, never 0 while a window is still running. */
export function secondsUntil(resetMs: number): number {
  return Math.max(1, Math.ceil(resetMs / 1000));
}

export function limitedHeaders(limit: CompiledLimit, resetMs: number): Record<string, string> {
  const seconds = String(secondsUntil(resetMs));
  return {
    [RETRY_AFTER_HEADER]: seconds,
    [RATELIMIT_POLICY_HEADER]: limit.policyItem,
    [RATELIMIT_HEADER]: `${limit.headerName};r=0;t=${seconds}`,
    [ENVOY_RATELIMITED_HEADER]: 'true',
  };
}

export function admittedHeaders(reported: readonly AdmittedLimit[]): Record<string, string> {
  return {
    [RATELIMIT_POLICY_HEADER]: reported.map((entry) => entry.limit.policyItem).join(', '),
    [RATELIMIT_HEADER]: reported.map((entry) => `${entry.limit.headerName};r=${entry.remaining};t=${secondsUntil(entry.resetMs)}`).join(', '),
  };
}
