/**
 * Limiter instances outlive snapshots: each compile asks the registry for the store of every limit by
 * its identity (policy namespace/name, rule, limit definition, backend). An unchanged identity gets
 * the SAME store back, so a hot reload keeps its counters; a changed one gets a fresh store. After a
 * compile, stores the new snapshot does not use are dropped from the registry (requests still running
 * on the old snapshot keep their reference until they finish; memory limiter entries expire with
 * their window).
 */
import type { RateLimitStore } from './store.js';

let stores = new Map<string, RateLimitStore>();

export class LimiterSession {
  private readonly used = new Map<string, RateLimitStore>();

  acquire(identity: string, create: () => RateLimitStore): RateLimitStore {
    let store = this.used.get(identity) ?? stores.get(identity);
    if (store === undefined) store = create();
    this.used.set(identity, store);
    return store;
  }

  /** The compiled snapshot's stores become the registry. */
  commit(): void {
    stores = this.used;
  }
}

export function releaseAllLimiters(): void {
  stores = new Map();
}
