/**
 * Semantic checks of AuthorizationPolicy (docs/policies.md#authorizationpolicy), PeerAuthentication (docs/policies.md#peerauthentication-mtls-modes) and
 * RequestAuthentication (docs/policies.md#requestauthentication-jwt) that the schema cannot express.
 */
import { isIP } from 'node:net';
import { portKind } from './port-protocol.js';
import { labelsMatch } from './labels.js';
import { httpOnlyFields, ruleForTcp } from './tcp-authz.js';
import type { AuthorizationPolicySpec, Condition, Operation, Rule, Source } from './kinds/authorization-policy.js';
import type { SidecarSpec } from './kinds/sidecar.js';
import type { PeerAuthenticationSpec } from './kinds/peer-authentication.js';
import type { JWTRule, RequestAuthenticationSpec } from './kinds/request-authentication.js';
import { isRecord } from './field-path.js';
import type { FieldPath, Resource } from './resource.js';
import type { ValidationContext } from './validate-context.js';

const DEFAULT_ROOT_NAMESPACE = 'istio-system';

const PLAIN_KEYS = new Set([
  'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount', 'source.trustDomain',
  'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'destination.ip', 'destination.port', 'connection.sni',
]);
const IP_KEYS = new Set(['source.ip', 'remote.ip', 'destination.ip']);
const IDENTITY_KEYS = /^(source\.(principal|namespace|serviceAccount|trustDomain)|request\.auth\.)/;
const IDENTITY_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'requestPrincipals', 'notRequestPrincipals'] as const;

function isKnownConditionKey(key: string): boolean {
  return (
    PLAIN_KEYS.has(key) ||
    /^request\.headers\[[^\]]+\]$/.test(key) ||
    /^request\.auth\.claims(\[[^\]]+\])+$/.test(key) ||
    /^experimental\.envoy\.filters\.[^[]+\[[^\]]+\]$/.test(key)
  );
}

export function isIpOrCidr(value: string): boolean {
  const [address = '', prefix, extra] = value.split('/');
  if (extra !== undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

function isPort(value: string): boolean {
  return /^\d{1,5}$/.test(value) && Number(value) <= 65535;
}

function pathTemplateProblem(path: string): string | null {
  if (!path.includes('{') && !path.includes('}')) return null;
  const segments = path.split('/');
  for (const [index, segment] of segments.entries()) {
    if (!segment.includes('{') && !segment.includes('}')) continue;
    if (segment !== '{*}' && segment !== '{**}') return `segment "${segment}" must be exactly {*} or {**}`;
    if (segment === '{**}' && segments.slice(index + 1).some((s) => s === '{*}' || s === '{**}')) return '{**} must be the last operator';
  }
  return path.replace(/\{\*\*?\}/g, '').includes('*') ? '"*" cannot be combined with {*} or {**}' : null;
}

function checkValueLists(ctx: ValidationContext, policy: Resource, block: Record<string, unknown>, path: FieldPath): void {
  for (const [field, values] of Object.entries(block)) {
    if (!Array.isArray(values)) continue;
    values.forEach((value, index) => {
      if (value === '') ctx.report(policy, 'MG0308', [...path, field, index], `empty string in ${field}`);
    });
  }
}

function checkSource(ctx: ValidationContext, policy: Resource, source: Source, path: FieldPath): void {
  checkValueLists(ctx, policy, source, path);
  for (const field of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
    source[field]?.forEach((value, index) => {
      if (value !== '' && !isIpOrCidr(value)) ctx.report(policy, 'MG0304', [...path, field, index], `"${value}" is not an IP address or CIDR`);
    });
  }
  const hasServiceAccounts = (source.serviceAccounts?.length ?? 0) + (source.notServiceAccounts?.length ?? 0) > 0;
  const combined = (['principals', 'notPrincipals', 'namespaces', 'notNamespaces'] as const).filter((f) => source[f] !== undefined);
  if (hasServiceAccounts && combined.length > 0) {
    ctx.report(policy, 'MG0313', [...path, combined[0] as string], `serviceAccounts cannot be combined with ${combined.join(', ')}`);
  }
}

function checkOperation(ctx: ValidationContext, policy: Resource, operation: Operation, path: FieldPath): void {
  checkValueLists(ctx, policy, operation, path);
  for (const field of ['ports', 'notPorts'] as const) {
    operation[field]?.forEach((value, index) => {
      if (value !== '' && !isPort(value)) ctx.report(policy, 'MG0305', [...path, field, index], `port "${value}" must be a number from 0 to 65535`);
    });
  }
  for (const field of ['paths', 'notPaths'] as const) {
    operation[field]?.forEach((value, index) => {
      const problem = pathTemplateProblem(value);
      if (problem !== null) ctx.report(policy, 'MG0315', [...path, field, index], problem);
    });
  }
}

function checkCondition(ctx: ValidationContext, policy: Resource, condition: Condition, path: FieldPath): void {
  if (!isKnownConditionKey(condition.key)) {
    ctx.report(policy, 'MG0302', [...path, 'key'], `unknown condition key "${condition.key}"`);
  }
  if ((condition.values?.length ?? 0) === 0 && (condition.notValues?.length ?? 0) === 0) {
    ctx.report(policy, 'MG0307', path, `condition "${condition.key}" needs values or notValues`);
  }
  checkValueLists(ctx, policy, condition, path);
  for (const field of ['values', 'notValues'] as const) {
    condition[field]?.forEach((value, index) => {
      if (value === '') return;
      if (IP_KEYS.has(condition.key) && !isIpOrCidr(value)) {
        ctx.report(policy, 'MG0304', [...path, field, index], `"${value}" is not an IP address or CIDR`);
      } else if (condition.key === 'destination.port' && !isPort(value)) {
        ctx.report(policy, 'MG0305', [...path, field, index], `port "${value}" must be a number from 0 to 65535`);
      }
    });
  }
}

/** Whether some `*`-suffixed (or `{**}`) entry of the list covers what lies under the exact path. */
function coveredBelow(path: string, entries: readonly string[]): boolean {
  const below = path.endsWith('/') ? path : `${path}/`;
  return entries.some((entry) => {
    const prefix = entry.endsWith('/{**}') ? entry.slice(0, -4) : entry.endsWith('*') ? entry.slice(0, -1) : null;
    return prefix !== null && below.startsWith(prefix);
  });
}

/**
 * Rules a request can walk around (MG0316, MG0317): the list that narrows what a DENY refuses (`hosts`,
 * `paths`), or what an ALLOW exempts (`notHosts`, `notPaths`), names an exact host without its port form
 * or an exact path without the paths under it.
 */
function checkWalkArounds(ctx: ValidationContext, policy: Resource, action: string, operation: Operation, path: FieldPath): void {
  const deny = action === 'DENY' || action === 'AUDIT';
  if (!deny && action !== 'ALLOW') return;
  const hostField = deny ? 'hosts' : 'notHosts';
  const hosts = operation[hostField] ?? [];
  hosts.forEach((host, index) => {
    if (host === '' || host.includes(':') || host.endsWith('*')) return;
    if (hosts.some((other) => other.toLowerCase() === `${host.toLowerCase()}:*`)) return;
    ctx.report(policy, 'MG0316', [...path, hostField, index], `"${host}" does not match "${host}:443" or "${host}:80"; add "${host}:*" so that a Host with a port cannot walk around this rule`);
  });
  const pathField = deny ? 'paths' : 'notPaths';
  const paths = operation[pathField] ?? [];
  paths.forEach((exact, index) => {
    if (exact === '' || exact === '/' || exact.includes('*') || exact.includes('{')) return;
    if (coveredBelow(exact, paths)) return;
    const suggestion = `${exact.endsWith('/') ? exact : `${exact}/`}*`;
    ctx.report(policy, 'MG0317', [...path, pathField, index], `"${exact}" matches only that exact path, not "${suggestion.slice(0, -1)}…"; add "${suggestion}" unless only this one path is meant`);
  });
}

function checkAuthorizationPolicy(ctx: ValidationContext, policy: Resource<AuthorizationPolicySpec>): void {
  const { action = 'ALLOW', rules, provider } = policy.spec;
  if ((action === 'DENY' || action === 'CUSTOM') && (rules?.length ?? 0) === 0) {
    ctx.report(policy, 'MG0301', ['spec'], `${action} policy without rules would never match`);
  }
  if (provider !== undefined && action !== 'CUSTOM') {
    ctx.report(policy, 'MG0306', ['spec', 'provider'], `provider is only allowed with action CUSTOM (action is ${action})`);
  }
  if (action === 'CUSTOM') {
    if (provider === undefined) ctx.report(policy, 'MG0306', ['spec', 'action'], 'CUSTOM needs a provider');
    else if (!(ctx.mesh?.extensionProviders ?? []).some((p) => p.name === provider.name)) {
      ctx.report(policy, 'MG0306', ['spec', 'provider', 'name'], `no MeshConfig extensionProvider is named "${provider.name}"`);
    }
  }
  rules?.forEach((rule, ruleIndex) => {
    const rulePath = ['spec', 'rules', ruleIndex];
    for (const [field, inner] of [['from', 'source'], ['to', 'operation']] as const) {
      const list = rule[field];
      if (list === undefined) continue;
      if (list.length === 0) ctx.report(policy, 'MG0303', [...rulePath, field], `${field} must not be an empty list`);
      list.forEach((entry, index) => {
        const value: unknown = (entry as Record<string, unknown>)[inner];
        const path = [...rulePath, field, index];
        if (!isRecord(value) || Object.keys(value).length === 0) {
          ctx.report(policy, 'MG0303', path, `${field}[${index}].${inner} must not be empty`);
          return;
        }
        if (inner === 'source') {
          checkSource(ctx, policy, value as Source, [...path, inner]);
          if (action === 'CUSTOM') {
            const used = IDENTITY_FIELDS.filter((f) => (value as Source)[f] !== undefined);
            if (used.length > 0) ctx.report(policy, 'MG0313', [...path, inner, used[0] as string], `CUSTOM policies cannot use ${used.join(', ')}`);
          }
        } else {
          checkOperation(ctx, policy, value as Operation, [...path, inner]);
          checkWalkArounds(ctx, policy, action, value as Operation, [...path, inner]);
        }
      });
    }
    rule.when?.forEach((condition, index) => {
      checkCondition(ctx, policy, condition, [...rulePath, 'when', index]);
      if (action === 'CUSTOM' && IDENTITY_KEYS.test(condition.key)) {
        ctx.report(policy, 'MG0313', [...rulePath, 'when', index, 'key'], `CUSTOM policies cannot use "${condition.key}"`);
      }
    });
  });
}

function checkPeerAuthentication(ctx: ValidationContext, policy: Resource<PeerAuthenticationSpec>): void {
  const ports = policy.spec.portLevelMtls;
  const hasSelector = Object.keys(policy.spec.selector?.matchLabels ?? {}).length > 0;
  if (ports !== undefined && Object.keys(ports).length > 0 && !hasSelector) {
    ctx.report(policy, 'MG0309', ['spec', 'portLevelMtls'], 'portLevelMtls needs a selector');
  }
  for (const port of Object.keys(ports ?? {})) {
    const number = Number(port);
    if (!Number.isInteger(number) || number < 1 || number > 65535) {
      ctx.report(policy, 'MG0305', ['spec', 'portLevelMtls', port], `port "${port}" must be a number from 1 to 65535`);
    }
  }
  const rootNamespace = ctx.mesh?.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  if (hasSelector && policy.metadata.namespace === rootNamespace) {
    ctx.report(policy, 'MG0314', ['spec', 'selector'], `a selector in the root namespace "${rootNamespace}" makes Istio ignore this policy`);
  }
}

function jwksProblems(jwks: string): { error: string | null; privateKey: boolean } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(jwks);
  } catch (error) {
    return { error: `jwks is not JSON: ${error instanceof Error ? error.message : String(error)}`, privateKey: false };
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.keys)) return { error: 'jwks must be an object with a "keys" list', privateKey: false };
  if (!parsed.keys.every((key) => isRecord(key) && typeof key.kty === 'string')) {
    return { error: 'every jwks key must be an object with a "kty"', privateKey: false };
  }
  return { error: null, privateKey: parsed.keys.some((key) => isRecord(key) && ('d' in key || 'p' in key || 'k' in key)) };
}

function checkJwtRule(ctx: ValidationContext, policy: Resource, rule: JWTRule, path: FieldPath): void {
  if ((rule.issuer ?? '') === '' && (rule.jwksUri ?? '') === '') {
    ctx.report(policy, 'MG0310', path, 'jwtRule needs an issuer or a jwksUri');
  }
  if (rule.jwksUri !== undefined && rule.jwks !== undefined) {
    ctx.report(policy, 'MG0310', [...path, 'jwks'], 'set only one of jwksUri and jwks');
  }
  if (rule.jwksUri !== undefined && rule.jwksUri !== '') {
    let protocol = '';
    try {
      protocol = new URL(rule.jwksUri).protocol;
    } catch {
      protocol = '';
    }
    if (protocol !== 'http:' && protocol !== 'https:') ctx.report(policy, 'MG0310', [...path, 'jwksUri'], `jwksUri "${rule.jwksUri}" is not an http(s) URL`);
  }
  if (rule.jwks !== undefined) {
    const { error, privateKey } = jwksProblems(rule.jwks);
    if (error !== null) ctx.report(policy, 'MG0310', [...path, 'jwks'], error);
    if (privateKey) ctx.report(policy, 'MG0311', [...path, 'jwks'], 'jwks contains private or symmetric key material');
  }
  for (const field of ['audiences', 'fromParams', 'fromCookies'] as const) {
    rule[field]?.forEach((value, index) => {
      if (value === '') ctx.report(policy, 'MG0310', [...path, field, index], `empty string in ${field}`);
    });
  }
  const headers = new Set<string>();
  rule.outputClaimToHeaders?.forEach((entry, index) => {
    const header = entry.header.toLowerCase();
    if (headers.has(header)) ctx.report(policy, 'MG0312', [...path, 'outputClaimToHeaders', index, 'header'], `header "${entry.header}" is set twice`);
    headers.add(header);
  });
}

/** `namespace → TCP ports` of the Sidecars there, with the labels each selects (undefined: every workload of the namespace). */
function tcpIngressPorts(ctx: ValidationContext): { namespace: string; labels: Readonly<Record<string, string>> | undefined; ports: number[] }[] {
  return ctx.ofKind<SidecarSpec>('Sidecar').flatMap((sidecar) => {
    const ports = (sidecar.spec.ingress ?? []).filter((entry) => portKind(entry.port.protocol) === 'tcp').map((entry) => entry.port.number);
    return ports.length === 0 ? [] : [{ namespace: sidecar.metadata.namespace, labels: sidecar.spec.workloadSelector?.labels, ports }];
  });
}

/** Whether every `to` entry of the rule names `ports` and none of them is one of `tcpPorts`. */
function scopedAway(rule: Rule, tcpPorts: readonly number[]): boolean {
  const to = rule.to ?? [];
  return to.length > 0 && to.every((entry) => entry.operation?.ports !== undefined && !entry.operation.ports.some((port) => tcpPorts.includes(Number(port))));
}

/** MG0318: an AuthorizationPolicy with HTTP-only fields that selects a workload with a TCP port (docs/policies.md#authorizationpolicy-on-tcp). */
function checkTcpPolicies(ctx: ValidationContext, rootNamespace: string): void {
  const sidecars = tcpIngressPorts(ctx);
  if (sidecars.length === 0) return;
  for (const policy of ctx.ofKind<AuthorizationPolicySpec>('AuthorizationPolicy')) {
    const action = policy.spec.action ?? 'ALLOW';
    if (action === 'CUSTOM') continue;
    const selector = policy.spec.selector?.matchLabels;
    const ports = sidecars
      .filter((sidecar) => policy.metadata.namespace === rootNamespace || policy.metadata.namespace === sidecar.namespace)
      // The policy selects the Sidecar's workloads when its labels are among those the Sidecar selects by.
      .filter((sidecar) => selector === undefined || (sidecar.labels !== undefined && labelsMatch(selector, sidecar.labels)))
      .flatMap((sidecar) => sidecar.ports);
    if (ports.length === 0) continue;
    policy.spec.rules?.forEach((rule, index) => {
      const fields = httpOnlyFields(rule);
      if (fields.length === 0 || scopedAway(rule, ports)) return;
      const remaining = action === 'ALLOW' ? null : ruleForTcp(rule, 'DENY');
      const effect =
        remaining === null
          ? 'on TCP the whole rule is dropped, so it never admits a connection'
          : Object.keys(remaining).length === 0
            ? `on TCP only those fields are dropped, which leaves nothing: the rule ${action === 'DENY' ? 'denies' : 'audits'} every TCP connection`
            : 'on TCP only those fields are dropped: the rest of the rule matches more connections';
      ctx.report(
        policy,
        'MG0318',
        ['spec', 'rules', index],
        `rule ${index} uses HTTP-only fields (${fields.join(', ')}) and the policy selects TCP port(s) ${[...new Set(ports)].join(', ')}: ${effect}; scope it with \`ports\``,
      );
    });
  }
}

export function validateSecurity(ctx: ValidationContext): void {
  for (const policy of ctx.ofKind<AuthorizationPolicySpec>('AuthorizationPolicy')) checkAuthorizationPolicy(ctx, policy);
  checkTcpPolicies(ctx, ctx.mesh?.rootNamespace ?? DEFAULT_ROOT_NAMESPACE);
  for (const policy of ctx.ofKind<PeerAuthenticationSpec>('PeerAuthentication')) checkPeerAuthentication(ctx, policy);
  for (const policy of ctx.ofKind<RequestAuthenticationSpec>('RequestAuthentication')) {
    policy.spec.jwtRules?.forEach((rule, index) => checkJwtRule(ctx, policy, rule, ['spec', 'jwtRules', index]));
  }
}
