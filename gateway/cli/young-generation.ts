/**
 * Start-up must not size V8's young generation for the rest of the process's life.
 *
 * Loading the modules and compiling the config allocate ~20 MB of objects that all survive, so V8
 * doubles the new space at each scavenge (1 → 16 MB per semi-space): 24 MB of RSS that an idle
 * sidecar then keeps, since V8 only shrinks it on memory pressure. Holding the growth factor at 1
 * while starting costs a few more scavenges, once; putting V8's default back when the proxy is ready
 * lets the young generation grow with the traffic as before, so a loaded proxy is unaffected.
 *
 * `--max-semi-space-size` would be the usual knob, but V8 reads it only when the heap is created
 * (before any of our code runs), whereas the growth factor is read at every scavenge.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default (flag-definitions.h `semi_space_growth_factor`). */
const V8_DEFAULT_GROWTH_FACTOR = 2;

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

export function releaseYoungGeneration(): void {
  setFlagsFromString(`--semi-space-growth-factor=${V8_DEFAULT_GROWTH_FACTOR}`);
}
