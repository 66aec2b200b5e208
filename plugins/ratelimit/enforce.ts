/**
 * The per-request walk over the compiled policies: every matching rule of every applicable policy,
 * each limit in turn, stopping at the first refusal. Returns what happened; the hook turns it into a
 * reply and headers. The walk runs straight through while stores answer at once (local counters) and
 * resumes where it stood when one answers through a promise (Redis), so a local decision costs no
 * promise at all.
 */
import type { FastifyRequest } from 'fastify';
import type { CompiledLimit, CompiledPolicy, CompiledRateLimits, CompiledRule } from './compile.js';
import { BackendUnavailableError } from './store.js';
import type { ConsumeOutcome } from './store.js';

export interface AdmittedLimit {
  readonly limit: CompiledLimit;
  readonly remaining: number;
  readonly resetMs: number;
}

export type Verdict =
  | { readonly kind: 'allowed'; readonly reported: readonly AdmittedLimit[] }
  | { readonly kind: 'limited'; readonly policy: CompiledPolicy; readonly limit: CompiledLimit; readonly resetMs: number }
  | { readonly kind: 'unavailable'; readonly policy: CompiledPolicy };

class RateLimitWalk {
  private policyIndex = 0;
  private ruleIndex = 0;
  /** 0 when the rule is entered; past 0, the walk resumes inside the rule, whose key is `key`. */
  private limitIndex = 0;
  private key = '';
  private matched = false;
  private readonly reported: AdmittedLimit[] = [];

  constructor(
    private readonly request: FastifyRequest,
    private readonly policies: readonly CompiledPolicy[],
  ) {}

  /** Walks on from where it stands; a promise only when a store answers through one. */
  next(): Verdict | Promise<Verdict> {
    for (; this.policyIndex < this.policies.length; this.policyIndex++, this.ruleIndex = 0, this.matched = false) {
      const policy = this.policies[this.policyIndex] as CompiledPolicy;
      for (; this.ruleIndex < policy.rules.length; this.ruleIndex++, this.limitIndex = 0) {
        const rule = policy.rules[this.ruleIndex] as CompiledRule;
        if (this.limitIndex === 0) {
          if (!rule.matches(this.request)) continue;
          const key = rule.keyOf(this.request);
          if (key === null) continue;
          this.key = key;
          this.matched = true;
        }
        for (; this.limitIndex < rule.limits.length; this.limitIndex++) {
          const limit = rule.limits[this.limitIndex] as CompiledLimit;
          const outcome = limit.store.consume(this.key, limit.cost);
          if (outcome instanceof Promise) return outcome.then((settled) => this.resume(policy, limit, settled), (error: unknown) => this.failed(policy, error));
          const refusal = this.judge(policy, limit, outcome);
          if (refusal !== null) return refusal;
        }
      }
      if (this.matched) policy.decisions.record('allowed');
    }
    return { kind: 'allowed', reported: this.reported };
  }

  private resume(policy: CompiledPolicy, limit: CompiledLimit, outcome: ConsumeOutcome): Verdict | Promise<Verdict> {
    const refusal = this.judge(policy, limit, outcome);
    if (refusal !== null) return refusal;
    this.limitIndex++;
    return this.next();
  }

  /** The refusal `outcome` means, or null when the limit admitted the request. */
  private judge(policy: CompiledPolicy, limit: CompiledLimit, outcome: ConsumeOutcome): Verdict | null {
    if (!outcome.allowed) {
      policy.decisions.record('limited');
      return { kind: 'limited', policy, limit, resetMs: outcome.resetMs };
    }
    if (policy.headersOnAllowed) this.reported.push({ limit, remaining: outcome.remaining, resetMs: outcome.resetMs });
    return null;
  }

  private failed(policy: CompiledPolicy, error: unknown): Verdict {
    if (!(error instanceof BackendUnavailableError)) throw error;
    policy.decisions.record('unavailable');
    return { kind: 'unavailable', policy };
  }
}

export function enforceRateLimits(request: FastifyRequest, compiled: CompiledRateLimits): Verdict | Promise<Verdict> {
  return new RateLimitWalk(request, compiled.policies).next();
}
