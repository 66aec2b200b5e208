/** A seeded pseudo-random generator (mulberry32) in [0, 1): generated test inputs are the same on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random structural change of a parsed YAML tree: replaces a node with `scalar()`, appends an item,
 * adds or deletes a key. Draws from `random` only, so a seeded generator gives the same changes.
 */
export function treeMutator(random: () => number, scalar: () => unknown): (value: unknown) => unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const mutate = (value: unknown, depth: number): unknown => {
    if (depth > 0 && random() < 0.15) return scalar();
    if (Array.isArray(value)) {
      if (value.length === 0 || random() < 0.1) return [...value, scalar()];
      const index = Math.floor(random() * value.length);
      return value.map((item, i) => (i === index ? mutate(item, depth + 1) : item));
    }
    if (typeof value === 'object' && value !== null) {
      const entries = Object.entries(value);
      if (entries.length === 0 || random() < 0.1) return { ...value, [pick(['extra', 'weight', 'mode', 'hosts', 'spec'])]: scalar() };
      const index = Math.floor(random() * entries.length);
      if (random() < 0.1) return Object.fromEntries(entries.filter((_, i) => i !== index));
      return Object.fromEntries(entries.map(([k, v], i) => [k, i === index ? mutate(v, depth + 1) : v]));
    }
    return scalar();
  };
  return (value) => mutate(value, 0);
}
