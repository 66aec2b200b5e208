/**
 * Waits for a condition that another thread, process or timer makes true: polls `probe` until
 * `done(value)` holds or `timeoutMs` passes, and returns the last value either way, for the caller's
 * assertion to report. The deadline is generous on purpose: it bounds a failing test, it is never the
 * thing being measured, so a loaded machine only makes a passing test slower.
 */
export const EVENTUALLY_TIMEOUT_MS = 20_000;

export async function eventually<T>(
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = EVENTUALLY_TIMEOUT_MS, intervalMs = 20 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || performance.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
