/**
 * The local-limit windows worker threads share (plugins/ratelimit/shared-store.ts), driven here from one
 * thread as several workers' stores over the same buffer; test/runtime/workers.test.ts drives it across
 * real worker threads. Counts are shared per limit identity and key, windows end and restart, a full
 * table falls back to a window of the worker's own, and a lock left by a dead worker is freed.
 */
import t from 'tap';
import { createWorkerMemory, releaseHeldBy, SHARED_RATE_LIMIT_WINDOWS, WINDOWS_LOCK, WINDOWS_MISSES } from '../../gateway/runtime/worker-memory.js';
import { SharedWindowStore } from '../../plugins/ratelimit/shared-store.js';

const limit = { requests: 3, windowSeconds: 60 };

t.test('stores of the same limit in two workers count one window per key', async (t) => {
  const memory = createWorkerMemory();
  const first = new SharedWindowStore(memory.rateLimitWindows, 'policy-a', limit, Date.now);
  const second = new SharedWindowStore(memory.rateLimitWindows, 'policy-a', limit, Date.now);
  t.match(first.consume('10.0.0.1', 1), { allowed: true, remaining: 2 });
  t.match(second.consume('10.0.0.1', 1), { allowed: true, remaining: 1 });
  t.match(first.consume('10.0.0.1', 1), { allowed: true, remaining: 0 });
  t.match(second.consume('10.0.0.1', 1), { allowed: false, remaining: 0 }, 'the fourth is refused, whichever worker sees it');
  t.match(second.consume('10.0.0.2', 1), { allowed: true, remaining: 2 }, 'another key has its own window');
  const otherLimit = new SharedWindowStore(memory.rateLimitWindows, 'policy-b', limit, Date.now);
  t.match(otherLimit.consume('10.0.0.1', 1), { allowed: true, remaining: 2 }, 'another limit counts the same key apart');
  t.match(first.consume('10.0.0.3', 5), { allowed: false }, 'a cost above the limit is refused at once');
});

t.test('a window that ended starts again', async (t) => {
  const memory = createWorkerMemory();
  let now = 1_000_000;
  const store = new SharedWindowStore(memory.rateLimitWindows, 'short', { requests: 1, windowSeconds: 60 }, () => now);
  t.match(store.consume('k', 1), { allowed: true });
  now += 59_999;
  t.match(store.consume('k', 1), { allowed: false }, 'still inside the window');
  now += 1;
  t.match(store.consume('k', 1), { allowed: true, remaining: 0 }, 'a fresh window');
});

t.test('a full table: a new key is counted by its worker alone, and the miss is counted', async (t) => {
  const memory = createWorkerMemory();
  const store = new SharedWindowStore(memory.rateLimitWindows, 'flood', limit, Date.now);
  for (let i = 0; i < SHARED_RATE_LIMIT_WINDOWS + 1_000; i++) store.consume(`key-${i}`, 1);
  const misses = new Int32Array(memory.rateLimitWindows)[WINDOWS_MISSES] ?? 0;
  t.ok(misses >= 1_000, `keys beyond the table's size found no shared window (${misses})`);
  const late = `key-${SHARED_RATE_LIMIT_WINDOWS + 999}`;
  t.match(store.consume(late, 1), { allowed: true });
  t.match(store.consume(late, 1), { allowed: true, remaining: 0 }, 'still limited, in a window of its own');
  t.match(store.consume(late, 1), { allowed: false });
});

t.test('the lock of a worker that died is freed by the supervisor, not the lock of a live one', async (t) => {
  const memory = createWorkerMemory();
  const header = new Int32Array(memory.rateLimitWindows);
  header[WINDOWS_LOCK] = 42;
  releaseHeldBy(memory, 7);
  t.equal(header[WINDOWS_LOCK], 42, 'another thread still holds it');
  releaseHeldBy(memory, 42);
  t.equal(header[WINDOWS_LOCK], 0, 'freed');
  t.match(new SharedWindowStore(memory.rateLimitWindows, 'after', limit, Date.now).consume('k', 1), { allowed: true });
});
