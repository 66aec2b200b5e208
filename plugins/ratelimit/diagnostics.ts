/**
 * Load-time problems of RateLimitPolicy documents: stable codes, their definitions (contributed to the
 * catalogue in docs/diagnostics.md through `rateLimitPlugin.diagnostics`) and the exact messages users
 * see. A policy with an error is left out of the snapshot (and the error rejects the snapshot);
 * warnings keep the policy.
 */
import type { DiagnosticDefinition } from '../../gateway/config/diagnostics.js';

export const MG_RL_WINDOW_NOT_WHOLE_SECONDS = 'MG1101';
export const MG_RL_COST_EXCEEDS_REQUESTS = 'MG1102';
export const MG_RL_INSURANCE_WITHOUT_REDIS_OPEN = 'MG1103';
export const MG_RL_REDIS_NOT_CONFIGURED = 'MG1104';
export const MG_RL_DUPLICATE_WINDOW = 'MG1105';
export const MG_RL_EMPTY_PATTERN = 'MG1106';

export const RATE_LIMIT_DIAGNOSTICS = [
  {
    code: MG_RL_WINDOW_NOT_WHOLE_SECONDS,
    severity: 'error',
    title: 'Rate-limit window not whole seconds',
    explanation: 'A RateLimitPolicy limit\'s `per` must be a duration of whole seconds, at least `1s` (`1s`, `90s`, `1m`, `1h`): counters expire in whole seconds, in memory as in Redis.',
  },
  {
    code: MG_RL_COST_EXCEEDS_REQUESTS,
    severity: 'error',
    title: 'Cost above the limit',
    explanation: 'A limit\'s `cost` (what one request takes from the budget, default 1) is larger than its `requests`, so no request could ever be admitted.',
  },
  {
    code: MG_RL_INSURANCE_WITHOUT_REDIS_OPEN,
    severity: 'error',
    title: 'insuranceLimit without Redis fail-open',
    explanation: '`insuranceLimit` is the per-process limit used while Redis is unreachable; it only applies with `backend: redis` and `failureMode: open`.',
  },
  {
    code: MG_RL_REDIS_NOT_CONFIGURED,
    severity: 'error',
    title: 'Redis not configured',
    explanation: '`backend: redis` needs MeshConfig `spec.redis.url`, and no MeshConfig of the config sets it. Use `backend: local` or configure Redis.',
  },
  {
    code: MG_RL_DUPLICATE_WINDOW,
    severity: 'warning',
    title: 'Duplicate limit window',
    explanation: 'Two limits of one rule have the same `per` window: only the one with the fewest `requests` can ever apply, so the others are ignored.',
  },
  {
    code: MG_RL_EMPTY_PATTERN,
    severity: 'error',
    title: 'Empty match pattern',
    explanation: 'An empty string in a rule\'s `match` lists (`hosts`, `paths`, `methods`, their `not…` forms, and `headers` values) never matches a request. Remove it, or write `*` for any non-empty value.',
  },
] as const satisfies readonly DiagnosticDefinition[];

export type RateLimitDiagnosticCode = (typeof RATE_LIMIT_DIAGNOSTICS)[number]['code'];

const DEFINITIONS: ReadonlyMap<string, DiagnosticDefinition> = new Map(RATE_LIMIT_DIAGNOSTICS.map((definition) => [definition.code, definition]));

export function rateLimitDefinition(code: RateLimitDiagnosticCode): DiagnosticDefinition {
  // RateLimitDiagnosticCode is derived from RATE_LIMIT_DIAGNOSTICS, so the lookup cannot miss.
  return DEFINITIONS.get(code) as DiagnosticDefinition;
}

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
