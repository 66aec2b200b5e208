/**
 * Memory every worker thread of one proxy shares (worker-supervisor.ts creates it, each worker adopts
 * it before compiling): what must stay exact across workers — a local rate limit admits as many
 * requests with N workers as with one — is counted there, under Atomics. A single-threaded proxy has
 * none, and its features keep their plain per-process state.
 */
export interface WorkerMemory {
  /** The fixed-window counters of local rate limits (plugins/ratelimit/shared-store.ts lays them out). */
  readonly rateLimitWindows: SharedArrayBuffer;
}

/** 64 Ki windows of 32 bytes (2 MiB): distinct keys counted at once across every local limit. */
export const SHARED_RATE_LIMIT_WINDOWS = 65_536;
export const SHARED_WINDOW_BYTES = 32;
/** Bytes before the windows, as Int32s: [WINDOWS_LOCK] the threadId holding the table (0: free), [WINDOWS_MISSES] keys that found no room. */
export const SHARED_WINDOWS_HEADER_BYTES = 32;
export const WINDOWS_LOCK = 0;
export const WINDOWS_MISSES = 1;

let adopted: WorkerMemory | null = null;

export function createWorkerMemory(): WorkerMemory {
  return { rateLimitWindows: new SharedArrayBuffer(SHARED_WINDOWS_HEADER_BYTES + SHARED_RATE_LIMIT_WINDOWS * SHARED_WINDOW_BYTES) };
}

/**
 * A worker stopped (crashed, or terminated) inside a critical section would hold the lock forever and
 * stall every other worker; the supervisor frees what the dead thread held. Its half-counted window
 * at worst misses the one request being counted.
 */
export function releaseHeldBy(memory: WorkerMemory, threadId: number): void {
  Atomics.compareExchange(new Int32Array(memory.rateLimitWindows, 0, 1), WINDOWS_LOCK, threadId, 0);
}

export function adoptWorkerMemory(memory: WorkerMemory): void {
  adopted = memory;
}

/** The shared memory of this worker's proxy; null in a single-threaded proxy. */
export function workerMemory(): WorkerMemory | null {
  return adopted;
}
