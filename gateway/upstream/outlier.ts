/**
 * Passive health checking per cluster (docs/routing.md#outlier-detection). Every attempt's result is recorded;
 * locally-originated failures arrive as 503 (connect failure, reset) or 504 (timeout), as Envoy
 * maps them when local-origin errors are not split. Ejection happens as soon as a threshold is hit;
 * a sweep every `interval` returns hosts whose ejection time is over.
 */
import type { UpstreamEndpoint } from './endpoint.js';
import type { ResolvedOutlierDetection } from './policy.js';

/** Envoy's default `max_ejection_time`. */
const MAX_EJECTION_TIME_MS = 300_000;

export class OutlierDetector {
  private readonly timer: NodeJS.Timeout;
  ejections = 0;

  constructor(
    private readonly config: ResolvedOutlierDetection,
    private readonly endpoints: () => readonly UpstreamEndpoint[],
    private readonly now: () => number,
  ) {
    this.timer = setInterval(() => this.sweep(), config.intervalMs);
    this.timer.unref();
  }

  private isError(status: number): boolean {
    return this.config.errorStatusCodes.size > 0 ? this.config.errorStatusCodes.has(status) : status >= 500;
  }

  record(endpoint: UpstreamEndpoint, status: number): void {
    if (!this.isError(status)) {
      endpoint.consecutive5xx = 0;
      endpoint.consecutiveGatewayErrors = 0;
      return;
    }
    const gateway = status === 502 || status === 503 || status === 504;
    endpoint.consecutiveGatewayErrors = gateway ? endpoint.consecutiveGatewayErrors + 1 : 0;
    endpoint.consecutive5xx += 1;
    const { consecutive5xxErrors, consecutiveGatewayErrors } = this.config;
    if (
      (consecutive5xxErrors > 0 && endpoint.consecutive5xx >= consecutive5xxErrors) ||
      (consecutiveGatewayErrors > 0 && endpoint.consecutiveGatewayErrors >= consecutiveGatewayErrors)
    ) {
      this.eject(endpoint);
    }
  }

  private eject(endpoint: UpstreamEndpoint): void {
    if (endpoint.ejected) return;
    const all = this.endpoints();
    let ejectedNow = 0;
    for (const e of all) if (e.ejected) ejectedNow += 1;
    // Envoy always lets one host go; beyond that the share of ejected hosts must stay ≤ maxEjectionPercent.
    if (ejectedNow > 0 && ((ejectedNow + 1) * 100) / all.length > this.config.maxEjectionPercent) return;
    endpoint.timesEjected += 1;
    const base = this.config.baseEjectionTimeMs;
    endpoint.ejectedUntil = this.now() + Math.min(base * endpoint.timesEjected, Math.max(MAX_EJECTION_TIME_MS, base));
    endpoint.ejected = true;
    endpoint.consecutive5xx = 0;
    endpoint.consecutiveGatewayErrors = 0;
    this.ejections += 1;
  }

  sweep(): void {
    const now = this.now();
    for (const endpoint of this.endpoints()) {
      if (endpoint.ejected) {
        if (now >= endpoint.ejectedUntil) {
          // ejectedUntil is kept: the multiplier decays a base ejection time after it.
          endpoint.ejected = false;
        }
      } else if (endpoint.timesEjected > 0 && now >= endpoint.ejectedUntil + this.config.baseEjectionTimeMs) {
        // A host that stayed healthy for a base ejection time is forgiven one past ejection (Envoy decays the multiplier).
        endpoint.timesEjected -= 1;
      }
    }
  }

  /** LB panic threshold: below minHealthPercent healthy, every host is used regardless of ejection. */
  panics(healthy: number, total: number): boolean {
    return this.config.minHealthPercent > 0 && total > 0 && (healthy * 100) / total < this.config.minHealthPercent;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
