/**
 * Compiles the fields of `from.source` and `to.operation` (docs/policies.md#fromsource) into matchers.
 * Each matcher carries a short description so `explain` can say which field decided, using the very
 * same closures the request path runs. Problems are returned as data; the caller turns them into
 * diagnostics and drops the rule, as Istio does for a rule it cannot build.
 */
import { combineMatchers, compileValueList, compileValuePattern } from '../../gateway/policy/value-match.js';
import type { ValueMatcher } from '../../gateway/policy/value-match.js';
import type { Operation, Source } from '../../gateway/config/kinds/authorization-policy.js';
import { compileIpBlocks } from './ip-match.js';
import type { AuthzRequest } from './request-view.js';

export interface FieldMatcher {
  readonly description: string;
  readonly matches: (request: AuthzRequest) => boolean;
  /** A header (lower-case) without which `matches` is false: its absence rejects the rule before any matcher runs. */
  readonly requiredHeader?: string;
}

export interface CompileProblem {
  /** Dotted field path inside the rule, e.g. `from[0].source.ipBlocks`. */
  readonly field: string;
  readonly message: string;
}

export interface FieldContext {
  readonly policyNamespace: string;
  readonly problems: CompileProblem[];
  readonly fieldPrefix: string;
}

function describe(name: string, values: readonly string[] | undefined, notName: string, notValues: readonly string[] | undefined): string {
  const parts: string[] = [];
  if (values !== undefined) parts.push(`${name}=${JSON.stringify(values)}`);
  if (notValues !== undefined) parts.push(`${notName}=${JSON.stringify(notValues)}`);
  return parts.join(' ');
}

function checkNonEmpty(context: FieldContext, field: string, list: readonly string[] | undefined): void {
  if (list?.some((value) => value === '') === true) {
    context.problems.push({ field: `${context.fieldPrefix}.${field}`, message: 'empty string in value list' });
  }
}

/** A string attribute matched with Istio value patterns (values AND NOT notValues). */
export function valueField(
  context: FieldContext,
  name: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  read: (request: AuthzRequest) => string,
  options: { ignoreCase?: boolean; compile?: (pattern: string) => ValueMatcher } = {},
): FieldMatcher | null {
  const notName = `not${name[0]?.toUpperCase() ?? ''}${name.slice(1)}`;
  checkNonEmpty(context, name, values);
  checkNonEmpty(context, notName, notValues);
  let matcher: ValueMatcher | null;
  if (options.compile !== undefined) {
    const compile = options.compile;
    matcher = combineMatchers(values?.map(compile) ?? [], notValues?.map(compile) ?? []);
  } else {
    matcher = compileValueList(values, notValues, { ignoreCase: options.ignoreCase === true });
  }
  if (matcher === null) return null;
  const test = matcher;
  return { description: describe(name, values, notName, notValues), matches: (request) => test(read(request)) };
}

/** IPs/CIDRs (values AND NOT notValues). */
export function ipField(
  context: FieldContext,
  name: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  read: (request: AuthzRequest) => string,
  notName = `not${name[0]?.toUpperCase() ?? ''}${name.slice(1)}`,
): FieldMatcher | null {
  if (values === undefined && notValues === undefined) return null;
  const compileList = (field: string, list: readonly string[] | undefined): ((ip: string) => boolean) | null => {
    if (list === undefined) return null;
    const compiled = compileIpBlocks(list);
    if ('invalid' in compiled) {
      context.problems.push({ field: `${context.fieldPrefix}.${field}`, message: `not an IP or CIDR: ${compiled.invalid.join(', ')}` });
      return () => false;
    }
    return compiled.matcher;
  };
  const positive = compileList(name, values);
  const negative = compileList(notName, notValues);
  return {
    description: describe(name, values, notName, notValues),
    matches: (request) => {
      const ip = read(request);
      return (positive === null || positive(ip)) && (negative === null || !negative(ip));
    },
  };
}

/** Istio's `namespaces` turns every `*` into a wildcard, not just a leading/trailing one. */
function compileNamespacePattern(pattern: string): ValueMatcher {
  if (pattern === '*' || !pattern.slice(1, -1).includes('*')) return compileValuePattern(pattern);
  const escaped = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const regex = new RegExp(`^${escaped.join('.*')}$`);
  return (value) => regex.test(value);
}

type RequestPrincipalMatcher = (iss: string, sub: string) => boolean;

/** docs/policies.md#value-patterns: split at the LAST `/`; each side is a value pattern against `iss` / `sub`. */
function compileRequestPrincipal(pattern: string): RequestPrincipalMatcher {
  if (pattern === '*') return (iss, sub) => iss !== '' && sub !== '';
  const slash = pattern.lastIndexOf('/');
  if (slash === -1) {
    if (pattern.endsWith('*')) {
      const prefix = pattern.slice(0, -1);
      return (iss) => iss.startsWith(prefix);
    }
    if (pattern.startsWith('*')) {
      const suffix = pattern.slice(1);
      return (_iss, sub) => sub.endsWith(suffix);
    }
    return () => false;
  }
  const issMatches = compileValuePattern(pattern.slice(0, slash));
  const subMatches = compileValuePattern(pattern.slice(slash + 1));
  return (iss, sub) => issMatches(iss) && subMatches(sub);
}

function anyPrincipalMatches(matchers: readonly RequestPrincipalMatcher[], iss: string, sub: string): boolean {
  for (let i = 0; i < matchers.length; i++) if ((matchers[i] as RequestPrincipalMatcher)(iss, sub)) return true;
  return false;
}

function claimString(request: AuthzRequest, claim: string): string {
  const value = request.auth?.claims[claim];
  return typeof value === 'string' ? value : '';
}

function requestPrincipalField(context: FieldContext, source: Source): FieldMatcher | null {
  const { requestPrincipals: values, notRequestPrincipals: notValues } = source;
  if (values === undefined && notValues === undefined) return null;
  checkNonEmpty(context, 'requestPrincipals', values);
  checkNonEmpty(context, 'notRequestPrincipals', notValues);
  const positive = values?.map(compileRequestPrincipal) ?? [];
  const negative = notValues?.map(compileRequestPrincipal) ?? [];
  return {
    description: describe('requestPrincipals', values, 'notRequestPrincipals', notValues),
    matches: (request) => {
      const iss = claimString(request, 'iss');
      const sub = claimString(request, 'sub');
      return (values === undefined || anyPrincipalMatches(positive, iss, sub)) && !anyPrincipalMatches(negative, iss, sub);
    },
  };
}

function serviceAccountField(context: FieldContext, source: Source): FieldMatcher | null {
  const { serviceAccounts: values, notServiceAccounts: notValues } = source;
  if (values === undefined && notValues === undefined) return null;
  if (source.principals !== undefined || source.namespaces !== undefined) {
    context.problems.push({ field: `${context.fieldPrefix}.serviceAccounts`, message: 'cannot be combined with principals or namespaces' });
  }
  const qualify = (account: string): string => (account.includes('/') ? account : `${context.policyNamespace}/${account}`);
  const positive = new Set(values?.map(qualify));
  const negative = new Set(notValues?.map(qualify));
  return {
    description: describe('serviceAccounts', values, 'notServiceAccounts', notValues),
    matches: (request) => {
      const peer = request.peer;
      const account = peer === null ? '' : `${peer.namespace}/${peer.serviceAccount}`;
      return (values === undefined || positive.has(account)) && !negative.has(account);
    },
  };
}

export function compileSource(context: FieldContext, source: Source): FieldMatcher[] {
  const fields = [
    valueField(context, 'principals', source.principals, source.notPrincipals, (r) => r.peer?.principal ?? ''),
    requestPrincipalField(context, source),
    valueField(context, 'namespaces', source.namespaces, source.notNamespaces, (r) => r.peer?.namespace ?? '', {
      compile: compileNamespacePattern,
    }),
    serviceAccountField(context, source),
    valueField(context, 'trustDomains', source.trustDomains, source.notTrustDomains, (r) => r.peer?.trustDomain ?? ''),
    ipField(context, 'ipBlocks', source.ipBlocks, source.notIpBlocks, (r) => r.sourceIp),
    ipField(context, 'remoteIpBlocks', source.remoteIpBlocks, source.notRemoteIpBlocks, (r) => r.remoteIp),
  ];
  return fields.filter((field): field is FieldMatcher => field !== null);
}

const TEMPLATE_OPERATOR = /^\{\*\*?\}$/;

/** `{*}` = exactly one segment, `{**}` = zero or more segments (must be the last operator). */
function compilePathPattern(context: FieldContext, field: string): (pattern: string) => ValueMatcher {
  return (pattern) => {
    if (!pattern.includes('{')) return compileValuePattern(pattern);
    const segments = pattern.split('/');
    const problem = (message: string): ValueMatcher => {
      context.problems.push({ field: `${context.fieldPrefix}.${field}`, message: `${pattern}: ${message}` });
      return () => false;
    };
    let sawDoubleStar = false;
    const parts: string[] = [];
    for (const segment of segments) {
      if (segment.includes('{') || segment.includes('}') || segment.includes('*')) {
        if (!TEMPLATE_OPERATOR.test(segment)) return problem('a segment with a template must be only `{*}` or `{**}`');
        if (sawDoubleStar) return problem('`{**}` must be the last operator');
        if (segment === '{**}') sawDoubleStar = true;
        parts.push(segment === '{*}' ? '[^/]+' : '.*');
      } else {
        parts.push(segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      }
    }
    const regex = new RegExp(`^${parts.join('/')}$`);
    return (value) => regex.test(value);
  };
}

function portField(context: FieldContext, operation: Operation): FieldMatcher | null {
  const { ports: values, notPorts: notValues } = operation;
  if (values === undefined && notValues === undefined) return null;
  for (const [field, list] of [['ports', values], ['notPorts', notValues]] as const) {
    for (const port of list ?? []) {
      if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
        context.problems.push({ field: `${context.fieldPrefix}.${field}`, message: `not a port: ${port}` });
      }
    }
  }
  const positive = new Set(values?.map(Number));
  const negative = new Set(notValues?.map(Number));
  return {
    description: describe('ports', values, 'notPorts', notValues),
    matches: (request) =>
      (values === undefined || positive.has(request.destinationPort)) && !negative.has(request.destinationPort),
  };
}

function lowerCased(list: readonly string[] | undefined): string[] | undefined {
  return list?.map((value) => value.toLowerCase());
}

export function compileOperation(context: FieldContext, operation: Operation): FieldMatcher[] {
  const fields = [
    // The view's authority is already lower-cased, so folding the patterns once replaces a fold per comparison.
    valueField(context, 'hosts', lowerCased(operation.hosts), lowerCased(operation.notHosts), (r) => r.authority),
    portField(context, operation),
    valueField(context, 'methods', operation.methods, operation.notMethods, (r) => r.method),
    valueField(context, 'paths', operation.paths, operation.notPaths, (r) => r.path, {
      compile: compilePathPattern(context, 'paths'),
    }),
  ];
  return fields.filter((field): field is FieldMatcher => field !== null);
}
