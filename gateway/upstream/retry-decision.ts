/**
 * Whether a try's result is retriable under a RetryPolicy (docs/routing.md#timeouts-and-retries; Envoy
 * retry_state_impl.cc). Failures without a response: a connect failure is retried by
 * connect-failure, reset, reset-before-request, 5xx and gateway-error; a reset after the request
 * was sent and a per-try timeout only by reset, 5xx and gateway-error.
 */
import type { RetryPolicy } from '../router/retry-policy.js';

export type TryFailure = 'connect-failure' | 'reset' | 'per-try-timeout';

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

const GRPC_RETRY_ON: Readonly<Record<string, string>> = {
  '1': 'cancelled',
  '4': 'deadline-exceeded',
  '8': 'resource-exhausted',
  '13': 'internal',
  '14': 'unavailable',
};

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : value?.join(',');
}

export function failureIsRetriable(policy: RetryPolicy, failure: TryFailure): boolean {
  const on = policy.retryOn;
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  return failure === 'connect-failure' && (on.has('connect-failure') || on.has('reset-before-request'));
}

export function responseIsRetriable(policy: RetryPolicy, status: number, response: Headers, request: Headers): boolean {
  const on = policy.retryOn;
  // A rate-limited answer is retried only when asked for explicitly, whatever its status.
  if (response['x-envoy-ratelimited'] !== undefined) return on.has('envoy-ratelimited');
  if (on.has('5xx') && status >= 500) return true;
  if (on.has('gateway-error') && status >= 502 && status <= 504) return true;
  if (on.has('retriable-4xx') && status === 409) return true;
  if (on.has('retriable-status-codes')) {
    if (policy.retriableStatusCodes.has(status)) return true;
    const extra = header(request, 'x-envoy-retriable-status-codes');
    if (extra !== undefined && extra.split(',').some((code) => Number(code.trim()) === status)) return true;
  }
  if (on.has('retriable-headers')) {
    const names = header(request, 'x-envoy-retriable-header-names');
    if (names !== undefined && names.split(',').some((name) => response[name.trim().toLowerCase()] !== undefined)) return true;
  }
  const grpcStatus = header(response, 'grpc-status');
  if (grpcStatus !== undefined) {
    const token = GRPC_RETRY_ON[grpcStatus.trim()];
    if (token !== undefined && on.has(token)) return true;
  }
  return false;
}

/** Full-jitter exponential backoff before retry number `retry` (1-based): random [0, min((2^n − 1)·base, max)). */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min((2 ** retry - 1) * policy.backoffBaseMs, policy.backoffMaxMs);
  return Math.floor(random() * ceiling);
}
