/**
 * The rate-limit plugin's series in the process registry the metrics plugin exposes: decisions by
 * policy, and the shared store's state, errors, fallback decisions and transitions (read from the
 * plugin's cumulative counts before each scrape).
 */
import { BoundedCounter, BoundedGauge, refreshBeforeScrape, sinceLastScrape } from '../../gateway/metrics/registry.js';
import type { PreparedCounter } from '../../gateway/metrics/registry.js';

const rateLimitDecisions = new BoundedCounter({
  name: 'meshgate_ratelimit_decisions_total',
  help: 'RateLimitPolicy decisions by policy (`<ns>/<name>`) and result.',
  labelNames: ['policy', 'result'],
});

const rateLimitBackendState = new BoundedGauge({
  name: 'meshgate_ratelimit_backend_state',
  help: 'State of the shared rate-limit store (Redis): 1 for the current state (unused, connecting, up, down), 0 for the others.',
  labelNames: ['state'],
  merge: 'max',
});

const rateLimitBackendErrors = new BoundedCounter({
  name: 'meshgate_ratelimit_backend_errors_total',
  help: 'Calls to the shared rate-limit store that failed (refused while disconnected, timed out, errored).',
  labelNames: [],
});

const rateLimitFallbackDecisions = new BoundedCounter({
  name: 'meshgate_ratelimit_fallback_decisions_total',
  help: 'Rate-limit decisions taken by the in-memory insurance limiter because the shared store failed (failureMode open).',
  labelNames: [],
});

const rateLimitBackendTransitions = new BoundedCounter({
  name: 'meshgate_ratelimit_backend_transitions_total',
  help: 'up→down and down→up changes of the connection to the shared rate-limit store.',
  labelNames: [],
});

export type RateLimitResult = 'allowed' | 'limited' | 'store_error';

/** The series of one policy's decisions of one result, kept by the compiled policy (label values from config, not from requests). */
export function rateLimitDecisionSeries(policy: string, result: RateLimitResult): PreparedCounter {
  return rateLimitDecisions.series({ policy, result });
}

/** What the rate limiter keeps about its shared store; read at scrape time. */
export interface RateLimitBackendSample {
  readonly state: 'unused' | 'connecting' | 'up' | 'down';
  readonly errors: number;
  readonly fallbackDecisions: number;
  readonly transitions: number;
}

const RATE_LIMIT_BACKEND_STATES: readonly RateLimitBackendSample['state'][] = ['unused', 'connecting', 'up', 'down'];
let rateLimitSource: (() => RateLimitBackendSample) | null = null;
const rateLimitSeen = new Map<string, number>();

/** Where the store statistics come from (the plugin's own counts; a test's stand-in). */
export function observeRateLimitBackend(source: () => RateLimitBackendSample): void {
  rateLimitSource = source;
}

function refreshRateLimitMetrics(): void {
  if (rateLimitSource === null) return;
  const sample = rateLimitSource();
  for (const state of RATE_LIMIT_BACKEND_STATES) rateLimitBackendState.set({ state }, state === sample.state ? 1 : 0);
  const errors = sinceLastScrape(rateLimitSeen, 'errors', sample.errors);
  if (errors > 0) rateLimitBackendErrors.inc({}, errors);
  const fallback = sinceLastScrape(rateLimitSeen, 'fallback', sample.fallbackDecisions);
  if (fallback > 0) rateLimitFallbackDecisions.inc({}, fallback);
  const transitions = sinceLastScrape(rateLimitSeen, 'transitions', sample.transitions);
  if (transitions > 0) rateLimitBackendTransitions.inc({}, transitions);
}

refreshBeforeScrape(refreshRateLimitMetrics);
