/**
 * Load-time problems of RateLimitPolicy documents: stable codes and the exact messages users see.
 * A policy with an error is left out of the snapshot (and the error rejects the snapshot); warnings
 * keep the policy.
 */
export const MG_RL_WINDOW_NOT_WHOLE_SECONDS = 'MG1101';
export const MG_RL_COST_EXCEEDS_REQUESTS = 'MG1102';
export const MG_RL_INSURANCE_WITHOUT_REDIS_OPEN = 'MG1103';
export const MG_RL_REDIS_NOT_CONFIGURED = 'MG1104';
export const MG_RL_DUPLICATE_WINDOW = 'MG1105';
export const MG_RL_EMPTY_PATTERN = 'MG1106';

export const rateLimitMessages = {
  windowNotWholeSeconds: (per: string, problem: string | null): string =>
    problem === null
      ? `limit window "per: ${per}" must be a whole number of seconds, at least 1s (counters expire in whole seconds)`
      : `limit window "per: ${per}" is not a duration: ${problem}`,
  costExceedsRequests: (cost: number, requests: number): string =>
    `cost ${cost} is larger than requests ${requests}: no request could ever be admitted`,
  insuranceWithoutRedisOpen: (backend: string, failureMode: string): string =>
    `insuranceLimit only applies with backend: redis and failureMode: open (this policy has backend: ${backend}, failureMode: ${failureMode})`,
  redisNotConfigured: (): string =>
    'backend: redis needs MeshConfig spec.redis.url, and no MeshConfig in this config sets it; use backend: local or configure Redis',
  duplicateWindow: (per: string, kept: number): string =>
    `two limits with the same window "${per}" on one rule: only the smallest limit (requests: ${kept}) can ever apply, the others are ignored`,
  emptyPattern: (): string => 'empty value pattern "" never matches a request; remove it, or write "*" for any non-empty value',
} as const;
