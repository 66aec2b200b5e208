/**
 * Loaded config is frozen (parse-documents.ts), and a reload shares the frozen spec of every document
 * whose text did not change: what later stages compute from a spec can be kept by it and reused.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** What `compute` makes of a frozen value, kept for as long as the value lives; an unfrozen value may still change, so it gets a fresh one. */
export function keptFor<Key extends object, Value>(value: Key, kept: WeakMap<Key, Value>, compute: () => Value): Value {
  if (!Object.isFrozen(value)) return compute();
  let known = kept.get(value);
  if (known === undefined) kept.set(value, (known = compute()));
  return known;
}
