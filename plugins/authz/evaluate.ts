/**
 * The decision (docs/policies.md#evaluation-order): CUSTOM → DENY → ALLOW. CUSTOM needs a network call, so it is
 * split out (`matchingCustomPolicy`); `evaluateRbac` is synchronous and allocation-free on the hot path.
 * When a `trace` array is passed (explain), every policy and rule records why it did or did not match,
 * using the same compiled matchers.
 */
import type { CompiledAuthz } from './compile.js';
import { firstMatchingRule, ruleMatches, ruleMatchesAdmittedPath } from './compiled-policy.js';
import type { CompiledPolicy, CompiledRule, RbacDecision } from './compiled-policy.js';
import type { AuthzRequest } from './request-view.js';
import { pathlessRulesFor, rulesAdmittedByPath } from './rule-index.js';
import type { IndexedPolicies, IndexedRule } from './rule-index.js';

const ALLOW_NO_POLICIES: RbacDecision = { allowed: true, policy: null, ruleIndex: -1 };
const DENY_NO_MATCH: RbacDecision = { allowed: false, policy: null, ruleIndex: -1 };

/** Envoy's details string, e.g. `rbac_access_denied_matched_policy[ns/name]` or `…[none]`. */
export function denialDetails(decision: RbacDecision): string {
  return `rbac_access_denied_matched_policy[${decision.policy ?? 'none'}]`;
}

function describeFields(fields: readonly { description: string; matches: (r: AuthzRequest) => boolean }[], request: AuthzRequest): string {
  const failed = fields.find((field) => !field.matches(request));
  return failed === undefined ? 'matched' : `failed ${failed.description}`;
}

function explainRule(rule: CompiledRule, request: AuthzRequest): string {
  if (ruleMatches(rule, request)) return `rule[${rule.index}] matched`;
  const reasons: string[] = [];
  if (rule.from.length > 0 && !rule.from.some((fields) => fields.every((f) => f.matches(request)))) {
    reasons.push(`from: ${rule.from.map((fields, i) => `from[${i}] ${describeFields(fields, request)}`).join('; ')}`);
  }
  if (rule.to.length > 0 && !rule.to.some((fields) => fields.every((f) => f.matches(request)))) {
    reasons.push(`to: ${rule.to.map((fields, i) => `to[${i}] ${describeFields(fields, request)}`).join('; ')}`);
  }
  const failedCondition = rule.when.find((condition) => !condition.matches(request));
  if (failedCondition !== undefined) reasons.push(`failed ${failedCondition.description}`);
  return `rule[${rule.index}] did not match (${reasons.join('; ')})`;
}

function matchPolicies(policies: readonly CompiledPolicy[], request: AuthzRequest, trace: string[] | undefined): RbacDecision | null {
  for (const policy of policies) {
    if (trace !== undefined) {
      if (policy.rules.length === 0) trace.push(`${policy.action} ${policy.id}: no rules, never matches`);
      for (const rule of policy.rules) trace.push(`${policy.action} ${policy.id} ${explainRule(rule, request)}`);
    }
    const ruleIndex = firstMatchingRule(policy, request);
    if (ruleIndex !== -1) return { allowed: policy.action !== 'DENY', policy: policy.id, ruleIndex };
  }
  return null;
}

/**
 * The first rule in config order that matches, among those the path admits and those that ignore the
 * path but not the host (when the authority admits them). Rules gated on the same header (their first required header) tend to come in runs, such as one
 * per tenant: once that header is known absent, the rest of the run is passed over without a lookup.
 */
function firstIndexedMatch(indexed: IndexedPolicies, request: AuthzRequest): IndexedRule | null {
  const headed = rulesAdmittedByPath(indexed.index, request.path);
  const pathless = pathlessRulesFor(indexed.index, request.authority);
  let absentHeader: string | undefined;
  let i = 0;
  let j = 0;
  while (i < headed.length || j < pathless.length) {
    const next =
      j >= pathless.length || (i < headed.length && (headed[i] as IndexedRule).order < (pathless[j] as IndexedRule).order)
        ? (headed[i++] as IndexedRule)
        : (pathless[j++] as IndexedRule);
    const gate = next.rule.requiredHeaders[0];
    if (gate !== undefined) {
      if (gate === absentHeader) continue;
      if (request.header(gate) === undefined) {
        absentHeader = gate;
        continue;
      }
    }
    if (ruleMatchesAdmittedPath(next.rule, request)) return next;
  }
  return null;
}

/** The policies' decision (first matching policy and rule in config order); the trace walks every policy. */
function decidePolicies(indexed: IndexedPolicies, request: AuthzRequest, trace: string[] | undefined): RbacDecision | null {
  if (trace !== undefined) matchPolicies(indexed.policies, request, trace);
  return firstIndexedMatch(indexed, request)?.decision ?? null;
}

export function evaluateRbac(deny: IndexedPolicies, allow: IndexedPolicies, request: AuthzRequest, trace?: string[]): RbacDecision {
  const denied = decidePolicies(deny, request, trace);
  if (denied !== null) {
    trace?.push(`DENY policy ${denied.policy ?? ''} rule[${denied.ruleIndex}] matched → DENY`);
    return denied;
  }
  if (allow.policies.length === 0) {
    trace?.push('no ALLOW policy applies to this workload → ALLOW');
    return ALLOW_NO_POLICIES;
  }
  const allowed = decidePolicies(allow, request, trace);
  if (allowed !== null) {
    trace?.push(`ALLOW policy ${allowed.policy ?? ''} rule[${allowed.ruleIndex}] matched → ALLOW`);
    return allowed;
  }
  trace?.push('ALLOW policies exist but none matched → DENY');
  return DENY_NO_MATCH;
}

/** The first CUSTOM policy with a matching rule: its provider must be asked. */
export function matchingCustomPolicy(compiled: CompiledAuthz, request: AuthzRequest, trace?: string[]): CompiledPolicy | null {
  const matched = matchPolicies(compiled.custom, request, trace);
  return matched === null ? null : (compiled.custom.find((policy) => policy.id === matched.policy) ?? null);
}

/** AUDIT policies whose rules match (they never change the decision). */
export function matchingAuditPolicies(compiled: CompiledAuthz, request: AuthzRequest): string[] {
  const matched: string[] = [];
  for (const policy of compiled.audit) if (firstMatchingRule(policy, request) !== -1) matched.push(policy.id);
  return matched;
}

/** The decision that would be taken if the dry-run policies were enforced too; null without any. */
export function evaluateShadow(compiled: CompiledAuthz, request: AuthzRequest): RbacDecision | null {
  return compiled.shadow === null ? null : evaluateRbac(compiled.shadow.deny, compiled.shadow.allow, request);
}
