/**
 * Counters the metrics plugin reads, and the logger the backend reports its state changes to.
 * Plain mutable numbers for the admin views and tests; every decision is also counted in
 * `meshgate_ratelimit_decisions_total` (metrics.ts), which is what operators scrape.
 */
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { observeRateLimitBackend, rateLimitDecisionSeries } from './metrics.js';
import type { PreparedCounter } from '../../gateway/metrics/registry.js';

export type RateLimitDecision = 'allowed' | 'limited' | 'unavailable';
/** `unused`: no policy needs Redis yet. `down` covers both "never connected" and "connection lost". */
export type BackendState = 'unused' | 'connecting' | 'up' | 'down';

export type DecisionCounts = Record<RateLimitDecision, number>;

export interface RateLimitStats {
  /** Per policy `<ns>/<name>`: requests admitted, limited, and refused because the backend could not decide (closed mode). */
  readonly decisions: Map<string, DecisionCounts>;
  /** Redis calls that failed (refused while disconnected, timed out, errored). */
  backendErrors: number;
  /** Decisions taken by the in-memory insurance limiter because Redis failed (failureMode open). */
  insuranceDecisions: number;
  backendState: BackendState;
  /** up→down and down→up changes of the Redis connection. */
  backendTransitions: number;
}

export const rateLimitStats: RateLimitStats = {
  decisions: new Map(),
  backendErrors: 0,
  insuranceDecisions: 0,
  backendState: 'unused',
  backendTransitions: 0,
};

observeRateLimitBackend(() => ({
  state: rateLimitStats.backendState,
  errors: rateLimitStats.backendErrors,
  fallbackDecisions: rateLimitStats.insuranceDecisions,
  transitions: rateLimitStats.backendTransitions,
}));

/**
 * One policy's decision counters, bound when the policy is compiled: a decision on the request path
 * then costs two increments, with no map lookup and no label set. A policy appears in
 * `rateLimitStats.decisions` at its first decision, and keeps its counts across reloads.
 */
export class PolicyDecisions {
  private counts: DecisionCounts | null = null;
  private readonly series: Readonly<Record<RateLimitDecision, PreparedCounter>>;

  constructor(private readonly policy: string) {
    this.series = {
      allowed: rateLimitDecisionSeries(policy, 'allowed'),
      limited: rateLimitDecisionSeries(policy, 'limited'),
      unavailable: rateLimitDecisionSeries(policy, 'store_error'),
    };
  }

  record(decision: RateLimitDecision): void {
    this.counts ??= this.sharedCounts();
    this.counts[decision]++;
    this.series[decision].inc();
  }

  private sharedCounts(): DecisionCounts {
    let counts = rateLimitStats.decisions.get(this.policy);
    if (counts === undefined) {
      counts = { allowed: 0, limited: 0, unavailable: 0 };
      rateLimitStats.decisions.set(this.policy, counts);
    }
    return counts;
  }
}

let logger: FastifyBaseLogger = pino({ name: 'ratelimit' });

/** The gateway hands its own logger over when the plugin is registered. */
export function setRateLimitLogger(next: FastifyBaseLogger): void {
  logger = next;
}

export function rateLimitLogger(): FastifyBaseLogger {
  return logger;
}
