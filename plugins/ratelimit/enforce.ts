/**
 * The per-request walk over the compiled policies: every matching rule of every applicable policy,
 * each limit in turn, stopping at the first refusal. Returns what happened; the hook turns it into a
 * reply and headers.
 */
import type { FastifyRequest } from 'fastify';
import type { CompiledLimit, CompiledPolicy, CompiledRateLimits } from './compile.js';
import { recordDecision } from './stats.js';
import { BackendUnavailableError } from './store.js';

export interface AdmittedLimit {
  readonly limit: CompiledLimit;
  readonly remaining: number;
  readonly resetMs: number;
}

export type Verdict =
  | { readonly kind: 'allowed'; readonly reported: readonly AdmittedLimit[] }
  | { readonly kind: 'limited'; readonly policy: CompiledPolicy; readonly limit: CompiledLimit; readonly resetMs: number }
  | { readonly kind: 'unavailable'; readonly policy: CompiledPolicy };

type PolicyOutcome = Exclude<Verdict, { kind: 'allowed' }> | 'allowed' | 'not-matched';

async function enforcePolicy(request: FastifyRequest, policy: CompiledPolicy, reported: AdmittedLimit[]): Promise<PolicyOutcome> {
  let matched = false;
  for (const rule of policy.rules) {
    if (!rule.matches(request)) continue;
    const key = rule.keyOf(request);
    if (key === null) continue;
    matched = true;
    for (const limit of rule.limits) {
      let outcome;
      try {
        outcome = await limit.store.consume(key, limit.cost);
      } catch (error: unknown) {
        if (error instanceof BackendUnavailableError) return { kind: 'unavailable', policy };
        throw error;
      }
      if (!outcome.allowed) return { kind: 'limited', policy, limit, resetMs: outcome.resetMs };
      if (policy.headersOnAllowed) reported.push({ limit, remaining: outcome.remaining, resetMs: outcome.resetMs });
    }
  }
  return matched ? 'allowed' : 'not-matched';
}

export async function enforceRateLimits(request: FastifyRequest, compiled: CompiledRateLimits): Promise<Verdict> {
  const reported: AdmittedLimit[] = [];
  for (const policy of compiled.policies) {
    const outcome = await enforcePolicy(request, policy, reported);
    if (outcome === 'not-matched') continue;
    if (outcome === 'allowed') {
      recordDecision(policy.id, 'allowed');
      continue;
    }
    recordDecision(policy.id, outcome.kind);
    return outcome;
  }
  return { kind: 'allowed', reported };
}
