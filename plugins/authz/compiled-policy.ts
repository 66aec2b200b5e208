/**
 * A compiled AuthorizationPolicy, what a decision on it says, and how one of its rules matches a
 * request: what the compiler (compile.ts), the rule index (rule-index.ts) and the evaluation
 * (evaluate.ts) share.
 */
import type { ExtAuthzClient } from './ext-authz.js';
import type { FieldMatcher } from './field-matchers.js';
import type { AuthzRequest } from './request-view.js';

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface CompiledRule {
  readonly index: number;
  /** One entry per `from[i]`: the set fields of its source (AND). Empty list = any source. */
  readonly from: readonly (readonly FieldMatcher[])[];
  readonly to: readonly (readonly FieldMatcher[])[];
  readonly when: readonly FieldMatcher[];
  /**
   * A request path can only match the rule if it starts with one of these (the literal heads of its
   * `paths` patterns); null when some branch does not constrain the path. Lets the many rules written
   * for other paths be rejected with a few `startsWith` before any matcher runs.
   */
  readonly pathHeads: readonly string[] | null;
  /**
   * A request's authority (lower-cased) can only match the rule if it ends with one of these (its
   * exact and `*suffix` host patterns, lower-cased); null when some branch does not constrain the host
   * or allows a `prefix*` or `*` host.
   */
  readonly hostTails: readonly string[] | null;
  /** Headers some `when` condition needs present (`FieldMatcher.requiredHeader`): one absent ⇒ no match. */
  readonly requiredHeaders: readonly string[];
}

export interface CompiledPolicy {
  /** `<namespace>/<name>`, as in Envoy's `rbac_access_denied_matched_policy[…]`. */
  readonly id: string;
  readonly action: AuthzAction;
  readonly dryRun: boolean;
  /** The external authorizer of a CUSTOM policy. */
  readonly extAuthz: ExtAuthzClient | null;
  /** Empty = never matches (an ALLOW policy without rules is allow-nothing). */
  readonly rules: readonly CompiledRule[];
}

export interface RbacDecision {
  readonly allowed: boolean;
  /** `<ns>/<name>` of the deciding policy; null when no ALLOW policy exists (allow) or none matched (deny). */
  readonly policy: string | null;
  /** Index of the deciding rule in that policy, or -1. */
  readonly ruleIndex: number;
}

function allMatch(fields: readonly FieldMatcher[], request: AuthzRequest): boolean {
  for (let i = 0; i < fields.length; i++) if (!(fields[i] as FieldMatcher).matches(request)) return false;
  return true;
}

function anyBranch(branches: readonly (readonly FieldMatcher[])[], request: AuthzRequest): boolean {
  if (branches.length === 0) return true;
  for (let i = 0; i < branches.length; i++) if (allMatch(branches[i] as readonly FieldMatcher[], request)) return true;
  return false;
}

function startsWithAny(path: string, heads: readonly string[]): boolean {
  for (const head of heads) if (path.startsWith(head)) return true;
  return false;
}

/** The rule's matchers, for a request whose path is already known to start with one of its `pathHeads`. */
export function ruleMatchesAdmittedPath(rule: CompiledRule, request: AuthzRequest): boolean {
  for (let i = 0; i < rule.requiredHeaders.length; i++) if (request.header(rule.requiredHeaders[i] as string) === undefined) return false;
  return anyBranch(rule.from, request) && anyBranch(rule.to, request) && allMatch(rule.when, request);
}

export function ruleMatches(rule: CompiledRule, request: AuthzRequest): boolean {
  if (rule.pathHeads !== null && !startsWithAny(request.path, rule.pathHeads)) return false;
  return ruleMatchesAdmittedPath(rule, request);
}

/** Index of the first matching rule, or -1. */
export function firstMatchingRule(policy: CompiledPolicy, request: AuthzRequest): number {
  for (const rule of policy.rules) if (ruleMatches(rule, request)) return rule.index;
  return -1;
}
