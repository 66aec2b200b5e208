/**
 * Cluster-wide circuit breaking (docs/routing.md#connection-pool-circuit-breaking; per client proxy, per cluster, summed over
 * endpoints). HTTP/1.1 carries one request per connection, so at most `maxConnections` requests run at
 * once, and `http2MaxRequests` bounds the active (running) requests too, as Envoy's max_requests does;
 * others wait in a FIFO of at most `http1MaxPendingRequests`. Anything beyond is an overflow, answered at
 * once with 503 UO and never retried.
 * `maxRetries` bounds concurrent retries; over it, a retry is skipped.
 */
import type { CancelSignal } from './cancellation.js';
import type { ResolvedConnectionPool } from './policy.js';

export type Admission = 'granted' | 'overflow' | Promise<boolean>;

interface Waiter {
  resolve(granted: boolean): void;
}

export class CircuitBreaker {
  running = 0;
  private readonly waiting: Waiter[] = [];
  retriesActive = 0;
  overflows = 0;
  retryOverflows = 0;

  private readonly activeLimit: number;

  constructor(private readonly limits: ResolvedConnectionPool) {
    this.activeLimit = Math.min(limits.maxConnections, limits.http2MaxRequests);
  }

  get pending(): number {
    return this.waiting.length;
  }

  /**
   * `granted` at once, `overflow`, or a promise that settles true when a slot frees (false when
   * `signal` aborts the wait). Every true/`granted` must be paired with one `release()`.
   */
  acquire(signal: CancelSignal | null): Admission {
    if (this.running < this.activeLimit) {
      this.running += 1;
      return 'granted';
    }
    if (this.waiting.length >= this.limits.http1MaxPendingRequests) {
      this.overflows += 1;
      return 'overflow';
    }
    if (signal?.aborted === true) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve: (granted) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(granted);
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next.resolve(true);
    else this.running -= 1;
  }

  tryStartRetry(): boolean {
    if (this.retriesActive >= this.limits.maxRetries) {
      this.retryOverflows += 1;
      return false;
    }
    this.retriesActive += 1;
    return true;
  }

  endRetry(): void {
    this.retriesActive -= 1;
  }
}
