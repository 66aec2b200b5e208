/**
 * `meshgate explain`: which AuthorizationPolicy decides a described request, and why, computed with the
 * compiled matchers the request path uses (so the explanation cannot drift from enforcement).
 * CUSTOM providers are not called: the trace says which provider would be asked.
 */
import type { DescribedRequest, Explanation } from '../../gateway/pipeline/capabilities.js';
import type { CompiledAuthz } from './compile.js';
import { denialDetails, evaluateRbac, evaluateShadow, matchingAuditPolicies, matchingCustomPolicy } from './evaluate.js';
import { authzRequestFromDescription } from './request-view.js';

export function explainRequest(compiled: CompiledAuthz, described: DescribedRequest): Explanation {
  const request = authzRequestFromDescription(described);
  const trace: string[] = [];
  const custom = matchingCustomPolicy(compiled, request, trace);
  if (custom !== null) trace.push(`CUSTOM ${custom.id} matched → provider ${custom.extAuthz?.providerName ?? '?'} would be asked first`);
  const decision = evaluateRbac(compiled.deny, compiled.allow, request, trace);
  for (const audited of matchingAuditPolicies(compiled, request)) trace.push(`AUDIT ${audited} matched (audit only)`);
  const shadow = evaluateShadow(compiled, request);
  if (shadow !== null) {
    trace.push(`with dry-run policies enforced: ${shadow.allowed ? 'ALLOW' : 'DENY'} (${shadow.policy ?? 'none'} rule[${shadow.ruleIndex}])`);
  }
  return {
    decision: decision.allowed ? 'ALLOW' : 'DENY',
    policy: decision.policy,
    ruleIndex: decision.ruleIndex,
    details: decision.allowed ? '' : denialDetails(decision),
    customPolicy: custom?.id ?? null,
    trace,
  };
}
