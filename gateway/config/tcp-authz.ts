/**
 * Istio's rule for AuthorizationPolicy fields that only exist for HTTP, applied to a TCP connection
 * (docs/policies.md#authorizationpolicy-on-tcp): `requestPrincipals`, `hosts`, `methods`, `paths` (and
 * their `not…` forms) and `request.*` conditions. An ALLOW rule that uses one never matches on TCP (the
 * whole rule is dropped); a DENY or AUDIT rule loses only those fields, so what remains matches more —
 * a DENY rule whose only conditions are HTTP fields denies every TCP connection it is not scoped away
 * from (with `ports`, for instance).
 */
import type { Condition, Operation, Rule, Source } from './kinds/authorization-policy.js';

const HTTP_ONLY_SOURCE: readonly (keyof Source)[] = ['requestPrincipals', 'notRequestPrincipals'];
const HTTP_ONLY_OPERATION: readonly (keyof Operation)[] = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];

function isHttpOnlyCondition(condition: Condition): boolean {
  return condition.key.startsWith('request.');
}

/** Field paths (relative to the rule, e.g. `to[0].operation.methods`) of the HTTP-only fields a rule uses. */
export function httpOnlyFields(rule: Rule): string[] {
  const fields: string[] = [];
  (rule.from ?? []).forEach((entry, index) => {
    for (const field of HTTP_ONLY_SOURCE) if (entry.source?.[field] !== undefined) fields.push(`from[${index}].source.${field}`);
  });
  (rule.to ?? []).forEach((entry, index) => {
    for (const field of HTTP_ONLY_OPERATION) if (entry.operation?.[field] !== undefined) fields.push(`to[${index}].operation.${field}`);
  });
  (rule.when ?? []).forEach((condition, index) => {
    if (isHttpOnlyCondition(condition)) fields.push(`when[${index}]`);
  });
  return fields;
}

function without<T extends object>(value: T, fields: readonly (keyof T)[]): T {
  const copy = { ...value };
  for (const field of fields) delete copy[field];
  return copy;
}

/**
 * The rule as it applies to a TCP connection: unchanged without HTTP-only fields; null for an ALLOW
 * rule with one; for DENY and AUDIT the rule without them, a `from`/`to` entry left with no field
 * matching anything (so its list does too).
 */
export function ruleForTcp(rule: Rule, action: 'ALLOW' | 'DENY' | 'AUDIT'): Rule | null {
  if (httpOnlyFields(rule).length === 0) return rule;
  if (action === 'ALLOW') return null;
  const from = (rule.from ?? []).map((entry) => without(entry.source ?? {}, HTTP_ONLY_SOURCE));
  const to = (rule.to ?? []).map((entry) => without(entry.operation ?? {}, HTTP_ONLY_OPERATION));
  const when = (rule.when ?? []).filter((condition) => !isHttpOnlyCondition(condition));
  const anyEmpty = (entries: readonly object[]): boolean => entries.some((entry) => Object.keys(entry).length === 0);
  return {
    ...(from.length === 0 || anyEmpty(from) ? {} : { from: from.map((source) => ({ source })) }),
    ...(to.length === 0 || anyEmpty(to) ? {} : { to: to.map((operation) => ({ operation })) }),
    ...(when.length === 0 ? {} : { when }),
  };
}
