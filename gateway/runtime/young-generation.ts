/**
 * V8's young generation, sized for the traffic in hand: not for start-up, nor for a load long gone.
 *
 * Start-up. Loading the modules and compiling the config allocate ~20 MB of objects that all survive,
 * so V8 doubles the new space at each scavenge (1 → 16 MB per semi-space): 24 MB of RSS that an idle
 * sidecar would then keep. Holding the growth factor at 1 while starting costs a few more scavenges,
 * once; putting V8's default back when the proxy is ready lets the young generation grow with the
 * traffic as before, so a loaded proxy is unaffected. `--max-semi-space-size` would be the usual knob,
 * but V8 reads it only when the heap is created (before any of our code runs), whereas the growth
 * factor is read at every scavenge.
 *
 * Idle. Traffic grows the new space to 2 × 16 MB again, and V8 11 (Node.js 20) gives it back only in
 * a scavenge that finds the allocation rate low, which an idle process never runs: it allocates
 * nothing. An ingress kept 118.7 MB of RSS for as long as it idled after a load. So a thread whose
 * event loop was idle for a whole check interval, and whose new space is more than twice the size V8
 * starts it at, runs that one scavenge itself: 118.7 → 91.9 MB, a 0.9 ms pause, at a moment when no
 * request is being served (bench/README.md#memory-issue-23-item-4). Newer V8s (Node.js 24) often shrink
 * an idle new space on their own; the check then finds nothing to do.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { performance } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';

/** V8's default (flag-definitions.h `semi_space_growth_factor`). */
const V8_DEFAULT_GROWTH_FACTOR = 2;
/** How often a thread asks whether it is idle with a grown new space. */
const IDLE_CHECK_INTERVAL_MS = 5_000;
/**
 * Event-loop utilization below which a whole interval counts as idle: ~50 proxied requests per second
 * at most, too few to have grown the new space, so a scavenge then finds it grown by a load that is over.
 */
const IDLE_UTILIZATION = 0.01;
/** The new space V8 starts with (1 MB semi-spaces on 64-bit) and shrinks back to. */
const V8_INITIAL_NEW_SPACE_BYTES = 1_048_576;

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/** Puts V8's growth back once the proxy is ready, and gives the grown new space back whenever this thread idles. */
export function releaseYoungGeneration(): void {
  setFlagsFromString(`--semi-space-growth-factor=${V8_DEFAULT_GROWTH_FACTOR}`);
  giveBackWhenIdle();
}

/** Whether an interval with this utilization and new space calls for a scavenge. */
export function shouldGiveBack(utilization: number, newSpaceBytes: number): boolean {
  return utilization < IDLE_UTILIZATION && newSpaceBytes > 2 * V8_INITIAL_NEW_SPACE_BYTES;
}

export interface IdleGiveBack {
  /** Scavenges run so far because the thread idled with a grown new space. */
  readonly giveBacks: number;
  stop(): void;
}

/** Checks this thread every `intervalMs` (an unref'd timer: it never keeps a process alive). */
export function giveBackWhenIdle(intervalMs: number = IDLE_CHECK_INTERVAL_MS): IdleGiveBack {
  // The collector of a fresh context; the flag goes back off at once, so no other context sees a `gc` global.
  setFlagsFromString('--expose-gc');
  const scavenge = runInNewContext('gc') as (options: { type: 'minor' }) => void;
  setFlagsFromString('--no-expose-gc');
  let lastUtilization = performance.eventLoopUtilization();
  let giveBacks = 0;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, lastUtilization);
    lastUtilization = now;
    if (!shouldGiveBack(utilization, readNewSpaceBytes())) return;
    scavenge({ type: 'minor' });
    giveBacks += 1;
  }, intervalMs);
  timer.unref();
  return {
    get giveBacks() {
      return giveBacks;
    },
    stop: () => clearInterval(timer),
  };
}

function readNewSpaceBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}
