/**
 * Long synchronous work written as steps (a generator that yields between units of work), run either
 * in one go (`validate`, tests) or in slices (a reload): a reload of a large config runs beside the
 * traffic it must not stall, and a 10 000-rule config takes hundreds of milliseconds to read, validate
 * and compile. One implementation of each stage serves both callers.
 */
import { performance } from 'node:perf_hooks';

export type Steps<T> = Generator<void, T>;

/**
 * Longest stretch of work before requests in flight get the event loop back. A proxied request waits
 * for several turns (its request read, the upstream's response, …) and may meet a slice at each, so a
 * slice must be short beside the request itself: with 1 ms slices, requests in flight during a
 * reload of the 10 000-rule config took p50 ~4 ms against ~0.5 ms quiet; with 0.1 ms, ~0.9 ms. A turn
 * costs 3–6 µs (2 vCPU VM); the reload's CPU time was the same at 0.1 and 1 ms within the noise.
 */
const SLICE_MS = 0.1;

export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/** Lets I/O callbacks (requests in flight) run before the next slice of work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function runStepsSliced<T>(steps: Steps<T>): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    if (performance.now() - sliceStart >= SLICE_MS) {
      await yieldToEventLoop();
      sliceStart = performance.now();
    }
  }
}
