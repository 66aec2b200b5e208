/**
 * Durations as Istio YAML writes them. Istio accepts protobuf JSON durations (`"1.5s"`) and, through
 * its Go tooling, Go-style units and sequences (`"250ms"`, `"1m"`, `"1h30m"`); we accept the same set.
 * Negative durations are rejected: no Istio field accepts them.
 */
/** Summed in nanoseconds and divided once, so that e.g. "100ns" is exactly 0.0001 ms. */
const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3,
  'μs': 1e3,
  ms: 1e6,
  s: 1e9,
  m: 6e10,
  h: 3.6e12,
};

/** Protobuf's Duration range: ±10,000 years. */
const MAX_DURATION_MS = 315_576_000_000 * 1000;

const COMPONENT = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

export class DurationError extends Error {
  constructor(
    readonly input: string,
    reason: string,
  ) {
    super(`invalid duration "${input}": ${reason}`);
    this.name = 'DurationError';
  }
}

type ScanResult = { readonly ms: number } | { readonly problem: string };

function scan(text: string): ScanResult {
  if (text === '') return { problem: 'empty string (write e.g. "5s", "250ms", "1m")' };
  if (text.startsWith('-')) return { problem: 'negative durations are not allowed' };
  if (text === '0') return { ms: 0 };
  let position = 0;
  let totalNs = 0;
  while (position < text.length) {
    COMPONENT.lastIndex = position;
    const component = COMPONENT.exec(text);
    if (component === null) {
      const rest = text.slice(position);
      return {
        problem: /^\d+(\.\d+)?$/.test(rest)
          ? `missing unit after "${rest}" (use ns, us, ms, s, m or h)`
          : `unexpected "${rest}" (expected a number followed by ns, us, ms, s, m or h)`,
      };
    }
    totalNs += Number(component[1]) * (UNIT_NS[component[2] ?? 's'] ?? 1e9);
    position = COMPONENT.lastIndex;
  }
  const totalMs = totalNs / 1e6;
  if (!Number.isFinite(totalMs) || totalMs > MAX_DURATION_MS) return { problem: 'longer than the maximum of 10,000 years' };
  return { ms: totalMs };
}

/** Explains why `text` is not a duration, or returns null when it is one. */
export function durationProblem(text: string): string | null {
  const result = scan(text);
  return 'problem' in result ? result.problem : null;
}

export function isDuration(text: string): boolean {
  return durationProblem(text) === null;
}

/** Duration in milliseconds (fractional for sub-millisecond units). Throws `DurationError` on bad input. */
export function parseDuration(text: string): number {
  const result = scan(text);
  if ('problem' in result) throw new DurationError(text, result.problem);
  return result.ms;
}
