/**
 * The resolved retry policy of one route (docs/routing.md#timeouts-and-retries). The router builds it from
 * `HTTPRetry` (applying Istio's defaults); the upstream forwarder executes it.
 */
export interface RetryPolicy {
  /** Retries after the first try (total tries = 1 + attempts). 0 disables retries. */
  readonly attempts: number;
  /** 0 = no per-try timeout. */
  readonly perTryTimeoutMs: number;
  /** Envoy retry-on tokens: 5xx, gateway-error, reset, reset-before-request, connect-failure, refused-stream,
   * retriable-4xx, retriable-status-codes, retriable-headers, envoy-ratelimited, cancelled, deadline-exceeded,
   * internal, resource-exhausted, unavailable. */
  readonly retryOn: ReadonlySet<string>;
  /** Status codes from integers in `retryOn` (only consulted with `retriable-status-codes`). */
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** Full-jitter exponential backoff: retry N waits random [0, (2^N − 1)·base), capped at max. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Prefer hosts not yet tried (Envoy previous_hosts predicate, up to 5 reselections). */
  readonly retryIgnorePreviousHosts: boolean;
}

export const ISTIO_DEFAULT_RETRY_ON: readonly string[] = [
  'connect-failure',
  'refused-stream',
  'unavailable',
  'cancelled',
  'retriable-status-codes',
];

export const DEFAULT_BACKOFF_BASE_MS = 25;

/** Istio's policy when a route has no `retries` block: 2 retries, no retriable status codes (503 not retried since 1.24). */
export const ISTIO_DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  attempts: 2,
  perTryTimeoutMs: 0,
  retryOn: new Set(ISTIO_DEFAULT_RETRY_ON),
  retriableStatusCodes: new Set<number>(),
  backoffBaseMs: DEFAULT_BACKOFF_BASE_MS,
  backoffMaxMs: DEFAULT_BACKOFF_BASE_MS * 10,
  retryIgnorePreviousHosts: true,
});
