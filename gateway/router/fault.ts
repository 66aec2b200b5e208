/**
 * `fault` (docs/routing.md#fault-injection). An omitted `percentage` means 0 % — Istio passes no percentage to
 * Envoy — so such a fault never fires. The deprecated integer `delay.percent` is used only without
 * `percentage`.
 */
import type { HTTPFaultInjection, Percent } from '../config/kinds/virtual-service.js';
import { parseDuration } from '../config/duration.js';
import type { CompiledFault } from './types.js';

function fraction(percentage: Percent | undefined, legacyPercent?: number): number {
  if (percentage !== undefined) return Math.min(Math.max(percentage.value, 0), 100) / 100;
  if (legacyPercent !== undefined) return Math.min(Math.max(legacyPercent, 0), 100) / 100;
  return 0;
}

export function compileFault(fault: HTTPFaultInjection | undefined): CompiledFault | null {
  if (fault === undefined) return null;
  const delay =
    fault.delay?.fixedDelay !== undefined
      ? { ms: parseDuration(fault.delay.fixedDelay), fraction: fraction(fault.delay.percentage, fault.delay.percent) }
      : null;
  let abort: CompiledFault['abort'] = null;
  if (fault.abort?.httpStatus !== undefined) {
    abort = { httpStatus: fault.abort.httpStatus, fraction: fraction(fault.abort.percentage) };
  } else if (fault.abort?.grpcStatus !== undefined) {
    abort = { grpcStatus: fault.abort.grpcStatus, fraction: fraction(fault.abort.percentage) };
  }
  if (delay === null && abort === null) return null;
  return Object.freeze({ delay, abort });
}
