/**
 * AuthorizationPolicy → immutable matcher tables, once per snapshot (docs/policies.md#which-policies-apply).
 * Only the policies selecting this proxy's workload are kept; they are grouped by action so the
 * request path runs CUSTOM → DENY → ALLOW without looking at anything else.
 */
import type { AuthorizationPolicySpec, Rule } from '../../gateway/config/kinds/authorization-policy.js';
import type { MeshConfigSpec } from '../../gateway/config/kinds/mesh-config.js';
import { makeDiagnostic } from '../../gateway/config/diagnostics.js';
import type { DiagnosticCode } from '../../gateway/config/diagnostics.js';
import type { Resource } from '../../gateway/config/resource.js';
import { policyAppliesTo } from '../../gateway/policy/selector.js';
import { ruleForTcp } from '../../gateway/config/tcp-authz.js';
import type { CompileInput } from '../../gateway/pipeline/types.js';
import type { AuthzAction, CompiledPolicy, CompiledRule } from './compiled-policy.js';
import { compileCondition } from './conditions.js';
import { createExtAuthzClient } from './ext-authz.js';
import type { ExtAuthzClient } from './ext-authz.js';
import { compileOperation, compileSource } from './field-matchers.js';
import type { CompileProblem, FieldContext, FieldMatcher } from './field-matchers.js';
import { indexPolicies } from './rule-index.js';
import type { IndexedPolicies } from './rule-index.js';

export interface CompiledAuthz {
  /** Enforced policies by action, in config order. */
  readonly custom: readonly CompiledPolicy[];
  readonly deny: IndexedPolicies;
  readonly allow: IndexedPolicies;
  readonly audit: readonly CompiledPolicy[];
  /** `istio.io/dry-run: "true"` policies: evaluated and logged, never enforced. */
  readonly dryRun: readonly CompiledPolicy[];
  /** Enforced + dry-run policies together: the decision dry-run would lead to; null without dry-run policies. */
  readonly shadow: { readonly deny: IndexedPolicies; readonly allow: IndexedPolicies } | null;
  /** For a request no ALLOW policy matched: the ALLOW policies it was checked against, in config order. */
  readonly allowTried: string;
  /** The enforced DENY and ALLOW policies as they apply to TCP connections (gateway/config/tcp-authz.ts). */
  readonly tcp: { readonly deny: IndexedPolicies; readonly allow: IndexedPolicies };
}

const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

/** `spec.rules[0].from[1].source` → ['spec', 'rules', 0, 'from', 1, 'source'] for `Resource.at`. */
function parseFieldPath(field: string): (string | number)[] {
  return field.split(/[.[\]]+/).filter(Boolean).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function problemCode(message: string): DiagnosticCode {
  if (message.startsWith('unsupported condition key')) return 'MG0302';
  if (message.includes('values/notValues')) return 'MG0307';
  if (message.startsWith('not an IP')) return 'MG0304';
  if (message.startsWith('not a port')) return 'MG0305';
  if (message.startsWith('empty string')) return 'MG0308';
  if (message.includes('cannot be combined')) return 'MG0313';
  if (message.includes('template') || message.includes('{**}')) return 'MG0315';
  return 'MG0303';
}

/** The literal text every path matching `pattern` starts with; null when it may start with anything. */
function literalHead(pattern: string): string | null {
  if (pattern.startsWith('*')) return null;
  const template = pattern.indexOf('{');
  if (template !== -1) return pattern.slice(0, template);
  return pattern.endsWith('*') ? pattern.slice(0, -1) : pattern;
}

/** The literal end of every authority that `pattern` admits; null when it may end with anything. */
function literalTail(pattern: string): string | null {
  if (pattern === '*' || (pattern.length > 1 && pattern.endsWith('*'))) return null;
  return (pattern.length > 1 && pattern.startsWith('*') ? pattern.slice(1) : pattern).toLowerCase();
}

/**
 * What `literal` keeps of every `field` pattern of every `to` branch (a head, a tail); null when a
 * branch does not constrain the field or a pattern keeps nothing, since the rule may then match any value.
 */
function literalsOf(rule: Rule, field: 'paths' | 'hosts', literal: (pattern: string) => string | null): string[] | null {
  if (rule.to === undefined || rule.to.length === 0) return null;
  const literals: string[] = [];
  for (const entry of rule.to) {
    const patterns = entry.operation?.[field];
    if (patterns === undefined) return null;
    for (const pattern of patterns) {
      const kept = literal(pattern);
      if (kept === null || kept === '') return null;
      literals.push(kept);
    }
  }
  return literals;
}

function compileRule(rule: Rule, index: number, policyNamespace: string, problems: CompileProblem[]): CompiledRule {
  const prefix = `spec.rules[${index}]`;
  const context = (fieldPrefix: string): FieldContext => ({ policyNamespace, problems, fieldPrefix });
  if (rule.from?.length === 0) problems.push({ field: `${prefix}.from`, message: '`from` must not be an empty list' });
  if (rule.to?.length === 0) problems.push({ field: `${prefix}.to`, message: '`to` must not be an empty list' });
  const from = (rule.from ?? []).map((entry, i) => {
    const fields = compileSource(context(`${prefix}.from[${i}].source`), entry.source ?? {});
    if (fields.length === 0) problems.push({ field: `${prefix}.from[${i}].source`, message: 'source must not be empty' });
    return fields;
  });
  const to = (rule.to ?? []).map((entry, i) => {
    const fields = compileOperation(context(`${prefix}.to[${i}].operation`), entry.operation ?? {});
    if (fields.length === 0) problems.push({ field: `${prefix}.to[${i}].operation`, message: 'operation must not be empty' });
    return fields;
  });
  const when = (rule.when ?? [])
    .map((condition, i) => compileCondition(context(`${prefix}.when[${i}]`), condition))
    .filter((condition): condition is FieldMatcher => condition !== null);
  const requiredHeaders = when.flatMap((condition) => (condition.requiredHeader === undefined ? [] : [condition.requiredHeader]));
  return { index, from, to, when, pathHeads: literalsOf(rule, 'paths', literalHead), hostTails: literalsOf(rule, 'hosts', literalTail), requiredHeaders };
}

function findMeshConfig(resources: readonly Resource[]): MeshConfigSpec | undefined {
  return resources.find((resource) => resource.kind === 'MeshConfig')?.spec as MeshConfigSpec | undefined;
}

export function compileAuthz(input: CompileInput): CompiledAuthz {
  const providers = new Map((findMeshConfig(input.resources)?.extensionProviders ?? []).map((p) => [p.name, p]));
  const extAuthzClients = new Map<string, ExtAuthzClient>();
  const groups = { custom: [] as CompiledPolicy[], deny: [] as CompiledPolicy[], allow: [] as CompiledPolicy[], audit: [] as CompiledPolicy[] };
  const dryRun: CompiledPolicy[] = [];
  const tcp = { deny: [] as CompiledPolicy[], allow: [] as CompiledPolicy[] };

  for (const resource of input.resources) {
    if (resource.kind !== 'AuthorizationPolicy') continue;
    const spec = resource.spec as AuthorizationPolicySpec;
    const { namespace, name } = resource.metadata;
    if (!policyAppliesTo(namespace, spec.selector, input.workload, input.rootNamespace)) continue;
    const subject = { kind: resource.kind, namespace, name };
    const report = (code: DiagnosticCode, message: string, field: string): void => {
      input.diagnostics.push(makeDiagnostic(code, message, resource.at(parseFieldPath(field)), { ...subject, field }));
    };
    const action: AuthzAction = spec.action ?? 'ALLOW';
    if ((action === 'DENY' || action === 'CUSTOM') && (spec.rules ?? []).length === 0) {
      report('MG0301', `${action} policy without rules never matches`, 'spec.rules');
    }
    let extAuthz: ExtAuthzClient | null = null;
    if (action === 'CUSTOM') {
      const provider = providers.get(spec.provider?.name ?? '');
      if (provider?.envoyExtAuthzHttp === undefined) {
        report('MG0306', `CUSTOM policy needs a provider naming a MeshConfig extensionProviders entry with envoyExtAuthzHttp (got "${spec.provider?.name ?? ''}")`, 'spec.provider');
        continue;
      }
      extAuthz = extAuthzClients.get(provider.name) ?? createExtAuthzClient(provider);
      extAuthzClients.set(provider.name, extAuthz);
    } else if (spec.provider !== undefined) {
      report('MG0306', '`provider` is only allowed with action CUSTOM', 'spec.provider');
    }

    const rules: CompiledRule[] = [];
    const tcpRules: CompiledRule[] = [];
    (spec.rules ?? []).forEach((rule, index) => {
      const problems: CompileProblem[] = [];
      const compiled = compileRule(rule, index, namespace, problems);
      for (const problem of problems) report(problemCode(problem.message), problem.message, problem.field);
      // A rule that cannot be built is dropped whole, as Istio does: never half-enforced.
      if (problems.length > 0) return;
      rules.push(compiled);
      if (action !== 'ALLOW' && action !== 'DENY') return;
      const forTcp = ruleForTcp(rule, action);
      if (forTcp === rule) tcpRules.push(compiled);
      else if (forTcp !== null) tcpRules.push(compileRule(forTcp, index, namespace, []));
    });

    const policy: CompiledPolicy = {
      id: `${namespace}/${name}`,
      action,
      dryRun: resource.metadata.annotations[DRY_RUN_ANNOTATION] === 'true',
      extAuthz,
      rules,
    };
    if (!policy.dryRun && (action === 'ALLOW' || action === 'DENY')) tcp[action === 'ALLOW' ? 'allow' : 'deny'].push({ ...policy, rules: tcpRules });
    if (policy.dryRun) dryRun.push(policy);
    else groups[action === 'ALLOW' ? 'allow' : action === 'DENY' ? 'deny' : action === 'AUDIT' ? 'audit' : 'custom'].push(policy);
  }
  const shadow =
    dryRun.length === 0
      ? null
      : {
          deny: indexPolicies([...groups.deny, ...dryRun.filter((policy) => policy.action === 'DENY')]),
          allow: indexPolicies([...groups.allow, ...dryRun.filter((policy) => policy.action === 'ALLOW')]),
        };
  return {
    custom: groups.custom,
    deny: indexPolicies(groups.deny),
    allow: indexPolicies(groups.allow),
    audit: groups.audit,
    dryRun,
    shadow,
    allowTried: `ALLOW policies tried: ${groups.allow.map((policy) => policy.id).join(', ')}`,
    tcp: { deny: indexPolicies(tcp.deny), allow: indexPolicies(tcp.allow) },
  };
}
