/**
 * Cluster-wide circuit breaking with Envoy's accounting (docs/routing.md#connection-pool-circuit-breaking;
 * per client proxy, per cluster, summed over endpoints):
 * - a request that finds a ready connection (an idle HTTP/1.1 connection, an HTTP/2 connection with a
 *   free stream) becomes ACTIVE at once, unless `http2MaxRequests` requests are active: overflow;
 * - a request that finds none is PENDING, bounded by `http1MaxPendingRequests` alone (overflow beyond),
 *   while a connection is opened for it (at most `maxConnections` in the cluster) or, at that limit,
 *   until one frees; when it gets its connection it becomes active, or overflows if `http2MaxRequests`
 *   are active by then (Envoy's attach-time check);
 * - `maxRetries` bounds concurrent retries; over it, a retry is skipped.
 * Overflow is answered at once with 503 UO and never retried.
 */
import type { CancelSignal } from './cancellation.js';
import type { ResolvedConnectionPool } from './policy.js';

/** How the chosen endpoint would carry a request right now. */
export type ConnectionReadiness = 'ready' | 'opening' | 'none';

/**
 * `active`: attached to a ready connection. `pending`: waits for a connection already being opened.
 * `pending-opens`: waits for the new connection it may open. `wait`: pending, but the cluster is at
 * maxConnections; call `waitForConnection`. Every admission but overflow is paired with one
 * `attach`/`releaseActive`/`releasePending`.
 */
export type Admission = 'active' | 'pending' | 'pending-opens' | 'overflow' | 'wait';
export type PendingAdmission = Exclude<Admission, 'wait'> | 'cancelled';

interface Waiter {
  readonly readiness: () => ConnectionReadiness;
  resolve(admission: PendingAdmission): void;
}

export class CircuitBreaker {
  active = 0;
  pending = 0;
  /** Open upstream connections of the cluster (counted by the endpoints' connectors). */
  connections = 0;
  retriesActive = 0;
  overflows = 0;
  retryOverflows = 0;
  /** Connections being opened for pending requests, reserved against maxConnections. */
  private opening = 0;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly limits: ResolvedConnectionPool) {}

  admit(readiness: ConnectionReadiness): Admission {
    if (readiness === 'ready') return this.activate();
    if (this.pending >= this.limits.http1MaxPendingRequests) {
      this.overflows += 1;
      return 'overflow';
    }
    this.pending += 1;
    if (readiness === 'opening') return 'pending';
    if (this.waiting.length === 0 && this.canOpen()) {
      this.opening += 1;
      return 'pending-opens';
    }
    return 'wait';
  }

  /** For a `wait` admission: resolves once a connection is ready or may be opened (pending is still counted unless active/overflow/cancelled). */
  waitForConnection(readiness: () => ConnectionReadiness, signal: CancelSignal | null): Promise<PendingAdmission> {
    if (signal?.aborted === true) {
      this.pending -= 1;
      return Promise.resolve('cancelled');
    }
    return new Promise<PendingAdmission>((resolve) => {
      const waiter: Waiter = {
        readiness,
        resolve: (admission) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(admission);
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(waiter);
        if (index < 0) return;
        this.waiting.splice(index, 1);
        this.pending -= 1;
        resolve('cancelled');
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** A pending request got its connection: active, or false on overflow (http2MaxRequests active). */
  attach(opened: boolean): boolean {
    this.pending -= 1;
    if (opened) this.opening -= 1;
    return this.activate() === 'active';
  }

  releaseActive(): void {
    this.active -= 1;
    this.wake();
  }

  /** A pending request ended without a connection (connect failure, cancelled). */
  releasePending(opened: boolean): void {
    this.pending -= 1;
    if (opened) this.opening -= 1;
    this.wake();
  }

  connectionOpened(): void {
    this.connections += 1;
  }

  connectionClosed(): void {
    this.connections -= 1;
    this.wake();
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

  private activate(): 'active' | 'overflow' {
    if (this.active >= this.limits.http2MaxRequests) {
      this.overflows += 1;
      return 'overflow';
    }
    this.active += 1;
    return 'active';
  }

  /** Whether the cluster may open one more connection (maxConnections, counting those being opened). */
  canOpen(): boolean {
    return this.connections + this.opening < this.limits.maxConnections;
  }

  /**
   * Hands the capacity one event freed (a finished request, a closed connection) to the longest waiter;
   * it keeps its place if it still cannot proceed. One at a time: the endpoint's counters show the
   * freed connection as idle until the woken request is dispatched on it.
   */
  private wake(): void {
    const waiter = this.waiting[0];
    if (waiter === undefined) return;
    const readiness = waiter.readiness();
    let admission: PendingAdmission;
    if (readiness === 'ready') {
      this.pending -= 1;
      admission = this.activate();
    } else if (readiness === 'opening') {
      admission = 'pending';
    } else if (this.canOpen()) {
      this.opening += 1;
      admission = 'pending-opens';
    } else {
      return;
    }
    this.waiting.shift();
    waiter.resolve(admission);
  }
}
