/**
 * Local rate-limit windows shared by the worker threads of one proxy (gateway/runtime/worker-memory.ts):
 * the same fixed windows as LocalStore, in one open-addressing table in a SharedArrayBuffer, so that N
 * workers admit exactly what one process would. A key is its limit's identity plus the request key,
 * held as a 64-bit fingerprint (two 32-bit FNV-1a hashes); one spin lock guards the whole table, held
 * for a probe of a few slots. A slot whose window ended is reused by the next new key on its probe
 * path. When a key finds no slot within MAX_PROBES (the table is full of live windows), the worker
 * counts it in a window of its own, as a single-threaded proxy would, and the table counts the miss.
 */
import { threadId } from 'node:worker_threads';
import { SHARED_RATE_LIMIT_WINDOWS, SHARED_WINDOWS_HEADER_BYTES, SHARED_WINDOW_BYTES, WINDOWS_LOCK, WINDOWS_MISSES, workerMemory } from '../../gateway/runtime/worker-memory.js';
import { LocalStore } from './store.js';
import type { ConsumeOutcome, RateLimitStore, WindowLimit } from './store.js';

const MAX_PROBES = 64;
const INTS_PER_WINDOW = SHARED_WINDOW_BYTES / 4;
const HEADER_INTS = SHARED_WINDOWS_HEADER_BYTES / 4;
// A window, from its first Int32 index `base` (always even): [base, base+1] the fingerprint (0, 0 =
// never used), [base+2] units used (saturating), and bytes 16-23 the Float64 endsAt (Date.now() ms).
const FINGERPRINT_A = 0;
const FINGERPRINT_B = 1;
const USED = 2;
const MAX_USED = 0x7fffffff;

function endsAtIndex(base: number): number {
  return base / 2 + 2;
}

function fnv1a(text: string, seed: number): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

export class SharedWindowStore implements RateLimitStore {
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly windowMs: number;
  private overflow: LocalStore | null = null;

  constructor(
    buffer: SharedArrayBuffer,
    /** Same in every worker for the same limit (its registry identity): the namespace of its keys. */
    private readonly identity: string,
    private readonly limit: WindowLimit,
    private readonly clock: () => number,
  ) {
    this.ints = new Int32Array(buffer);
    this.floats = new Float64Array(buffer);
    this.windowMs = limit.windowSeconds * 1000;
  }

  consume(key: string, cost: number): ConsumeOutcome {
    const name = `${this.identity}\u0000${key}`;
    const a = fnv1a(name, 0x811c9dc5);
    // Never (0, 0), which marks a slot no key ever took.
    const b = fnv1a(name, 0x050c5d1f) | 1;
    const now = this.clock();
    const { ints, floats } = this;
    while (Atomics.compareExchange(ints, WINDOWS_LOCK, 0, threadId) !== 0);
    let slot = -1;
    let reusable = -1;
    for (let probe = 0, index = (a >>> 0) % SHARED_RATE_LIMIT_WINDOWS; probe < MAX_PROBES; probe++, index = (index + 1) % SHARED_RATE_LIMIT_WINDOWS) {
      const base = HEADER_INTS + index * INTS_PER_WINDOW;
      const heldA = ints[base + FINGERPRINT_A];
      const heldB = ints[base + FINGERPRINT_B];
      if (heldA === a && heldB === b) {
        slot = base;
        break;
      }
      const ended = (floats[endsAtIndex(base)] as number) <= now;
      if (heldA === 0 && heldB === 0) {
        if (reusable === -1) reusable = base;
        break;
      }
      if (ended && reusable === -1) reusable = base;
    }
    if (slot === -1 && reusable !== -1) {
      slot = reusable;
      ints[slot + FINGERPRINT_A] = a;
      ints[slot + FINGERPRINT_B] = b;
      floats[endsAtIndex(slot)] = 0;
    }
    if (slot === -1) {
      Atomics.add(ints, WINDOWS_MISSES, 1);
      Atomics.store(ints, WINDOWS_LOCK, 0);
      this.overflow ??= new LocalStore(this.limit, this.clock);
      return this.overflow.consume(key, cost);
    }
    let endsAt = floats[endsAtIndex(slot)] as number;
    if (endsAt <= now) {
      ints[slot + USED] = 0;
      endsAt = now + this.windowMs;
      floats[endsAtIndex(slot)] = endsAt;
    }
    const used = Math.min(MAX_USED, (ints[slot + USED] as number) + cost);
    ints[slot + USED] = used;
    Atomics.store(ints, WINDOWS_LOCK, 0);
    const resetMs = endsAt - now;
    if (used > this.limit.requests) return { allowed: false, remaining: 0, resetMs };
    return { allowed: true, remaining: this.limit.requests - used, resetMs };
  }
}

/** Windows shared by the worker threads when the proxy runs several (`identity` names the limit in each), else a LocalStore. */
export function createMemoryStore(limit: WindowLimit, identity: string, clock: () => number): RateLimitStore {
  const shared = workerMemory();
  return shared === null ? new LocalStore(limit, clock) : new SharedWindowStore(shared.rateLimitWindows, identity, limit, clock);
}
