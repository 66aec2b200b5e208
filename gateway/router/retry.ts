/**
 * `HTTPRetry` → the resolved `RetryPolicy` the forwarder executes (docs/routing.md#timeouts-and-retries, Istio
 * `route/retry/retry.go`): Istio's default policy when `retries` is absent, the default `retryOn`
 * when only `attempts` is given, integers in `retryOn` become retriable status codes.
 */
import type { HTTPRetry } from '../config/kinds/virtual-service.js';
import { parseDuration } from '../config/duration.js';
import {
  DEFAULT_BACKOFF_BASE_MS,
  ISTIO_DEFAULT_RETRY_ON,
  ISTIO_DEFAULT_RETRY_POLICY,
} from './retry-policy.js';
import type { RetryPolicy } from './retry-policy.js';

/** Envoy caps the backoff interval at ten times the base. */
const BACKOFF_MAX_FACTOR = 10;

const NO_RETRIES: RetryPolicy = Object.freeze({
  ...ISTIO_DEFAULT_RETRY_POLICY,
  attempts: 0,
});

export function resolveRetryPolicy(retries: HTTPRetry | undefined): RetryPolicy {
  if (retries === undefined) return ISTIO_DEFAULT_RETRY_POLICY;
  const attempts = retries.attempts ?? 0;
  if (attempts === 0) return NO_RETRIES;

  const tokens = (retries.retryOn ?? '')
    .split(',')
    .map((token) => token.trim())
    .filter((token) => token !== '');
  const retryOn = new Set<string>();
  const retriableStatusCodes = new Set<number>();
  for (const token of tokens.length > 0 ? tokens : ISTIO_DEFAULT_RETRY_ON) {
    if (/^\d+$/.test(token)) {
      retriableStatusCodes.add(Number(token));
      retryOn.add('retriable-status-codes');
    } else {
      retryOn.add(token);
    }
  }
  const backoffBaseMs = retries.backoff !== undefined ? parseDuration(retries.backoff) : DEFAULT_BACKOFF_BASE_MS;
  return Object.freeze({
    attempts,
    perTryTimeoutMs: retries.perTryTimeout !== undefined ? parseDuration(retries.perTryTimeout) : 0,
    retryOn,
    retriableStatusCodes,
    backoffBaseMs,
    backoffMaxMs: backoffBaseMs * BACKOFF_MAX_FACTOR,
    retryIgnorePreviousHosts: retries.retryIgnorePreviousHosts ?? true,
  });
}
