/**
 * Cross-reference and semantic checks of VirtualServices and DestinationRules (docs/routing.md,
 * Istio's `validation/virtualservice.go` and `validation.go`): things a schema cannot express.
 */
import type { DestinationRuleSpec, LoadBalancerSettings, TrafficPolicy } from './kinds/destination-rule.js';
import type { GatewaySpec } from './kinds/gateway.js';
import type { ServiceEntrySpec } from './kinds/service-entry.js';
import type {
  Destination,
  HTTPMatchRequest,
  HTTPRoute,
  StringMatch,
  VirtualServiceSpec,
} from './kinds/virtual-service.js';
import type { WorkloadEntrySpec } from './kinds/workload-entry.js';
import { hostCovers, hostProblem } from './hosts.js';
import { defaultMeshConfig } from './kinds/mesh-config.js';
import type { MeshConfigSpec } from './kinds/mesh-config.js';
import { keptFor } from './frozen.js';
import { expandShortHost } from './short-hosts.js';
import type { DiagnosticCode } from './diagnostics.js';
import type { FieldPath, Resource } from './resource.js';
import type { ValidationContext } from './validate-context.js';
import type { Steps } from './steps.js';
import { MAX_REGEX_LENGTH, re2Program } from './re2.js';
import { didYouMean } from './suggest.js';

const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);
const MAX_DIRECT_BODY = 1024 * 1024;
const WARN_DIRECT_BODY = 100 * 1024;
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'refused-stream', 'retriable-4xx',
  'retriable-status-codes', 'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

type VirtualService = Resource<VirtualServiceSpec>;
/** Where a check that sees one spec alone puts what it finds. */
type Report = (code: DiagnosticCode, path: FieldPath, message: string) => void;

function regexProblem(pattern: string): string | null {
  if (pattern.length > MAX_REGEX_LENGTH) return `regex is ${pattern.length} characters long (max ${MAX_REGEX_LENGTH})`;
  try {
    re2Program(pattern);
    return null;
  } catch (error) {
    return `invalid RE2 regex ${JSON.stringify(pattern)}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

function checkStringMatch(report: Report, match: StringMatch, path: FieldPath, prefixMayBeEmpty: boolean): void {
  if (match.regex !== undefined) {
    const problem = regexProblem(match.regex);
    if (problem !== null) report('MG0207', [...path, 'regex'], problem);
  }
  if (match.prefix === '' && !prefixMayBeEmpty) report('MG0211', [...path, 'prefix'], 'prefix must not be empty');
}

function checkMatch(report: Report, match: HTTPMatchRequest, path: FieldPath): void {
  if (match.uri !== undefined) checkStringMatch(report, match.uri, [...path, 'uri'], true);
  for (const field of ['scheme', 'method', 'authority'] as const) {
    const value = match[field];
    if (value !== undefined) checkStringMatch(report, value, [...path, field], false);
  }
  for (const field of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const [key, value] of Object.entries(match[field] ?? {})) {
      checkStringMatch(report, value, [...path, field, key], false);
    }
  }
}

/**
 * Registry hosts: ServiceEntry hosts plus WorkloadEntry names and `app` labels (how sidecar workloads
 * are addressed), those also as the Kubernetes-style FQDN a short route host expands to.
 */
function registryHosts(ctx: ValidationContext): string[] {
  const clusterDomain = ctx.ofKind<MeshConfigSpec>('MeshConfig')[0]?.spec.clusterDomain ?? defaultMeshConfig().clusterDomain;
  const hosts: string[] = [];
  for (const entry of ctx.ofKind<ServiceEntrySpec>('ServiceEntry')) hosts.push(...entry.spec.hosts);
  for (const entry of ctx.ofKind<WorkloadEntrySpec>('WorkloadEntry')) {
    const names = [entry.metadata.name, ...(entry.spec.labels?.app === undefined ? [] : [entry.spec.labels.app])];
    for (const name of names) hosts.push(name, expandShortHost(name, entry.metadata.namespace, clusterDomain));
  }
  return hosts;
}

function subsetsByHost(ctx: ValidationContext): Map<string, Set<string>> {
  const result = new Map<string, Set<string>>();
  for (const rule of ctx.ofKind<DestinationRuleSpec>('DestinationRule')) {
    const host = rule.spec.host.toLowerCase();
    const names = result.get(host) ?? new Set<string>();
    for (const subset of rule.spec.subsets ?? []) names.add(subset.name);
    result.set(host, names);
  }
  return result;
}

interface DestinationChecks {
  readonly subsets: Map<string, Set<string>>;
  readonly registry: string[];
  readonly warned: Set<string>;
}

/** `route "name"` for a named rule; unnamed rules are identified by the diagnostic's field path alone. */
function routeLabel(name: string | undefined): string {
  return name === undefined ? 'this route' : `route "${name}"`;
}

function checkDestination(ctx: ValidationContext, vs: Resource, destination: Destination, path: FieldPath, checks: DestinationChecks, routeName?: string): void {
  const host = destination.host.toLowerCase();
  if (destination.subset !== undefined && !checks.subsets.get(host)?.has(destination.subset)) {
    const defined = checks.subsets.get(host) ?? [];
    ctx.report(
      vs,
      'MG0203',
      [...path, 'subset'],
      `${routeLabel(routeName)} sends to subset "${destination.subset}" of host "${destination.host}", which no DestinationRule defines${didYouMean(destination.subset, defined)}; it answers 503 (NC) until one does`,
    );
  }
  const key = `${vs.metadata.namespace}/${vs.metadata.name}/${host}`;
  if (!checks.warned.has(key) && !checks.registry.some((pattern) => hostCovers(pattern, host))) {
    checks.warned.add(key);
    ctx.report(vs, 'MG0213', [...path, 'host'], `host "${destination.host}" is not defined by any ServiceEntry or WorkloadEntry`);
  }
}

function checkWeights(report: Report, route: readonly { weight?: number }[], path: FieldPath): void {
  let total = 0;
  route.forEach((destination, index) => {
    const weight = destination.weight ?? 0;
    if (weight < 0) report('MG0204', [...path, index, 'weight'], `weight must not be negative, got ${weight}`);
    total += Math.max(weight, 0);
  });
  if (route.length > 1 && total === 0) {
    report('MG0204', path, `the ${route.length} destinations have a total weight of 0 (an omitted weight counts as 0)`);
  }
}

function checkActions(report: Report, rule: HTTPRoute, path: FieldPath): void {
  const actions = (['route', 'redirect', 'directResponse', 'delegate'] as const).filter((field) =>
    field === 'route' ? (rule.route?.length ?? 0) > 0 : rule[field] !== undefined,
  );
  if (actions.length === 0) {
    report('MG0205', path, 'rule needs one of route, redirect, directResponse or delegate');
  } else if (actions.length > 1) {
    report('MG0205', [...path, actions[1] as string], `${actions.join(' and ')} cannot be combined`);
  }
  const terminal = rule.redirect !== undefined ? 'redirect' : rule.directResponse !== undefined ? 'directResponse' : undefined;
  if (terminal !== undefined) {
    for (const field of ['rewrite', 'fault'] as const) {
      if (rule[field] !== undefined) report('MG0205', [...path, field], `${field} cannot be combined with ${terminal}`);
    }
  }
}

function checkRedirect(report: Report, rule: HTTPRoute, path: FieldPath): void {
  const redirect = rule.redirect;
  if (redirect === undefined) return;
  const at = [...path, 'redirect'];
  if (redirect.redirectCode !== undefined && !REDIRECT_CODES.has(redirect.redirectCode)) {
    report('MG0208', [...at, 'redirectCode'], `redirectCode ${redirect.redirectCode} is not one of 301, 302, 303, 307, 308`);
  }
  if (redirect.uri !== undefined && redirect.prefixRewrite !== undefined) {
    report('MG0214', [...at, 'prefixRewrite'], 'uri and prefixRewrite cannot both be set');
  }
  if (redirect.port !== undefined && redirect.derivePort !== undefined) {
    report('MG0214', [...at, 'derivePort'], 'port and derivePort cannot both be set');
  }
  const meaningful = ['uri', 'prefixRewrite', 'authority', 'scheme', 'port', 'derivePort'] as const;
  if (meaningful.every((field) => redirect[field] === undefined)) {
    report('MG0214', at, 'redirect needs at least one of uri, prefixRewrite, authority, scheme, port or derivePort');
  }
}

/** What an HTTP rule alone decides: actions, redirect, matches, weights, rewrite, retries, fault, CORS, body. */
function checkHttpRuleSpec(report: Report, rule: HTTPRoute, path: FieldPath): void {
  checkActions(report, rule, path);
  checkRedirect(report, rule, path);
  rule.match?.forEach((match, index) => checkMatch(report, match, [...path, 'match', index]));
  if (rule.route !== undefined) checkWeights(report, rule.route, [...path, 'route']);
  if (rule.mirror !== undefined && rule.mirrors !== undefined) report('MG0214', [...path, 'mirrors'], 'mirror and mirrors cannot both be set');
  const rewrite = rule.rewrite;
  if (rewrite?.uri !== undefined && rewrite.uriRegexRewrite !== undefined) {
    report('MG0214', [...path, 'rewrite', 'uriRegexRewrite'], 'rewrite.uri and uriRegexRewrite cannot both be set');
  }
  if (rewrite?.uriRegexRewrite !== undefined) {
    const problem = regexProblem(rewrite.uriRegexRewrite.match);
    if (problem !== null) report('MG0207', [...path, 'rewrite', 'uriRegexRewrite', 'match'], problem);
  }
  const retries = rule.retries;
  if (retries !== undefined) {
    const others = Object.keys(retries).filter((key) => key !== 'attempts');
    if (retries.attempts === 0 && others.length > 0) {
      report('MG0206', [...path, 'retries', others[0] as string], `attempts is 0 (retries disabled) but ${others.join(', ')} is set`);
    }
    for (const token of (retries.retryOn ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '')) {
      if (!RETRY_ON.has(token) && !/^[1-5]\d\d$/.test(token)) {
        report('MG0215', [...path, 'retries', 'retryOn'], `unknown retryOn policy "${token}"`);
      }
    }
  }
  const fault = rule.fault;
  if (fault !== undefined) {
    if (fault.delay === undefined && fault.abort === undefined) report('MG0214', [...path, 'fault'], 'fault needs delay and/or abort');
    if (fault.delay !== undefined && fault.delay.fixedDelay === undefined) report('MG0214', [...path, 'fault', 'delay'], 'delay needs fixedDelay');
    if (fault.abort !== undefined && fault.abort.httpStatus === undefined && fault.abort.grpcStatus === undefined) {
      report('MG0214', [...path, 'fault', 'abort'], 'abort needs httpStatus or grpcStatus');
    }
  }
  rule.corsPolicy?.allowOrigins?.forEach((origin, index) => checkStringMatch(report, origin, [...path, 'corsPolicy', 'allowOrigins', index], false));
  const body = rule.directResponse?.body;
  if (body !== undefined) {
    const size = body.string !== undefined ? Buffer.byteLength(body.string) : Buffer.from(body.bytes ?? '', 'base64').length;
    const at = [...path, 'directResponse', 'body'];
    if (size > MAX_DIRECT_BODY) report('MG0209', at, `body is ${size} bytes (max ${MAX_DIRECT_BODY})`);
    else if (size > WARN_DIRECT_BODY) report('MG0210', at, `body is ${size} bytes (over ${WARN_DIRECT_BODY})`);
  }
}

/** An HTTP rule's destinations against the registry and the DestinationRules' subsets. */
function checkHttpRuleDestinations(ctx: ValidationContext, vs: VirtualService, rule: HTTPRoute, path: FieldPath, checks: DestinationChecks): void {
  rule.route?.forEach((destination, index) => checkDestination(ctx, vs, destination.destination, [...path, 'route', index, 'destination'], checks, rule.name));
  if (rule.mirror !== undefined) checkDestination(ctx, vs, rule.mirror, [...path, 'mirror'], checks, rule.name);
  rule.mirrors?.forEach((mirror, index) => checkDestination(ctx, vs, mirror.destination, [...path, 'mirrors', index, 'destination'], checks, rule.name));
}

function gatewayExists(gateways: readonly Resource<GatewaySpec>[], reference: string, namespace: string): boolean {
  const [ns, name] = reference.includes('/') ? reference.split('/', 2) : [namespace, reference];
  return gateways.some((gateway) => gateway.metadata.name === name && gateway.metadata.namespace === ns);
}

function checkDelegate(ctx: ValidationContext, vs: VirtualService, rule: HTTPRoute, path: FieldPath): void {
  const delegate = rule.delegate;
  if (delegate === undefined) return;
  const namespace = delegate.namespace ?? vs.metadata.namespace;
  const target = ctx
    .ofKind<VirtualServiceSpec>('VirtualService')
    .find((candidate) => candidate.metadata.name === delegate.name && candidate.metadata.namespace === namespace);
  if (target === undefined) {
    ctx.report(vs, 'MG0218', [...path, 'delegate'], `delegate VirtualService ${namespace}/${delegate.name ?? ''} does not exist`);
  } else if ((target.spec.hosts?.length ?? 0) > 0) {
    ctx.report(vs, 'MG0218', [...path, 'delegate'], `delegate VirtualService ${namespace}/${target.metadata.name} must not have hosts`);
  }
}

/** A problem a VirtualService's spec alone decides, its position still a field path. */
interface SpecProblem {
  readonly code: DiagnosticCode;
  readonly path: FieldPath;
  readonly message: string;
}

/**
 * What each VirtualService's spec alone says, by the frozen spec: a reload shares the loaded spec of
 * every document whose text did not change (parse-documents.ts), so it checks only the VirtualServices
 * that changed. What depends on other resources (destinations, gateways, delegates) is checked each time.
 */
const specProblems = new WeakMap<object, readonly SpecProblem[]>();

function checkVirtualServiceSpec(spec: VirtualServiceSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const report: Report = (code, path, message) => problems.push({ code, path, message });
  const gatewayBound = (spec.gateways ?? []).some((g) => g !== 'mesh');
  spec.hosts?.forEach((host, index) => {
    const problem = hostProblem(host, gatewayBound);
    if (problem !== null) report('MG0217', ['spec', 'hosts', index], problem);
  });
  spec.http?.forEach((rule, index) => checkHttpRuleSpec(report, rule, ['spec', 'http', index]));
  for (const section of ['tcp', 'tls'] as const) {
    spec[section]?.forEach((rule, index) => {
      if (rule.route !== undefined) checkWeights(report, rule.route, ['spec', section, index, 'route']);
    });
  }
  return problems;
}

function checkVirtualService(ctx: ValidationContext, vs: VirtualService, checks: DestinationChecks): void {
  for (const { code, path, message } of keptFor(vs.spec, specProblems, () => checkVirtualServiceSpec(vs.spec))) ctx.report(vs, code, path, message);
  const gateways = ctx.ofKind<GatewaySpec>('Gateway');
  const checkGatewayList = (list: readonly string[], path: FieldPath): void => {
    list.forEach((reference, index) => {
      if (reference !== 'mesh' && !gatewayExists(gateways, reference, vs.metadata.namespace)) {
        const names = gateways.flatMap((g) => [`${g.metadata.namespace}/${g.metadata.name}`, ...(g.metadata.namespace === vs.metadata.namespace ? [g.metadata.name] : [])]);
        ctx.report(vs, 'MG0212', [...path, index], `Gateway "${reference}" does not exist${didYouMean(reference, names)}`);
      }
    });
  };
  checkGatewayList(vs.spec.gateways ?? [], ['spec', 'gateways']);
  vs.spec.http?.forEach((rule, index) => {
    const path = ['spec', 'http', index];
    checkHttpRuleDestinations(ctx, vs, rule, path, checks);
    checkDelegate(ctx, vs, rule, path);
    rule.match?.forEach((match, matchIndex) => checkGatewayList(match.gateways ?? [], [...path, 'match', matchIndex, 'gateways']));
  });
  for (const section of ['tcp', 'tls'] as const) {
    vs.spec[section]?.forEach((rule, index) => {
      rule.route?.forEach((destination, destinationIndex) => checkDestination(ctx, vs, destination.destination, ['spec', section, index, 'route', destinationIndex, 'destination'], checks));
    });
  }
}

function checkLoadBalancer(ctx: ValidationContext, dr: Resource, lb: LoadBalancerSettings, path: FieldPath): void {
  if (lb.simple !== undefined && lb.consistentHash !== undefined) {
    ctx.report(dr, 'MG0214', [...path, 'consistentHash'], 'simple and consistentHash cannot both be set');
  }
  const hash = lb.consistentHash;
  if (hash !== undefined) {
    const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter((key) => hash[key] !== undefined);
    if (keys.length !== 1) ctx.report(dr, 'MG0214', [...path, 'consistentHash'], `consistentHash needs exactly one hash key, got ${keys.length === 0 ? 'none' : keys.join(', ')}`);
    if (hash.ringHash !== undefined && hash.maglev !== undefined) ctx.report(dr, 'MG0214', [...path, 'consistentHash', 'maglev'], 'ringHash and maglev cannot both be set');
  }
  const locality = lb.localityLbSetting;
  if (locality !== undefined) {
    const modes = (['distribute', 'failover', 'failoverPriority'] as const).filter((key) => (locality[key]?.length ?? 0) > 0);
    if (modes.length > 1) ctx.report(dr, 'MG0214', [...path, 'localityLbSetting'], `only one of ${modes.join(', ')} may be set`);
  }
}

function checkTrafficPolicy(ctx: ValidationContext, dr: Resource, policy: TrafficPolicy | undefined, path: FieldPath): void {
  if (policy === undefined) return;
  if (policy.loadBalancer !== undefined) checkLoadBalancer(ctx, dr, policy.loadBalancer, [...path, 'loadBalancer']);
  policy.portLevelSettings?.forEach((entry, index) => {
    if (entry.loadBalancer !== undefined) checkLoadBalancer(ctx, dr, entry.loadBalancer, [...path, 'portLevelSettings', index, 'loadBalancer']);
  });
  const tls = policy.tls;
  if (tls?.mode === 'MUTUAL' && tls.credentialName === undefined && (tls.clientCertificate === undefined || tls.privateKey === undefined)) {
    ctx.report(dr, 'MG0214', [...path, 'tls'], 'MUTUAL needs clientCertificate and privateKey (or credentialName)');
  }
  if (tls?.mode === 'ISTIO_MUTUAL') {
    const extra = (['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const).filter((key) => tls[key] !== undefined);
    if (extra.length > 0) ctx.report(dr, 'MG0214', [...path, 'tls', extra[0] as string], `ISTIO_MUTUAL uses the mesh certificate; remove ${extra.join(', ')}`);
  }
}

function checkDestinationRule(ctx: ValidationContext, dr: Resource<DestinationRuleSpec>, registry: readonly string[]): void {
  const problem = hostProblem(dr.spec.host, false);
  if (problem !== null) ctx.report(dr, 'MG0217', ['spec', 'host'], problem);
  else if (!registry.some((pattern) => hostCovers(pattern, dr.spec.host))) {
    ctx.report(dr, 'MG0213', ['spec', 'host'], `host "${dr.spec.host}" is not defined by any ServiceEntry or WorkloadEntry`);
  }
  checkTrafficPolicy(ctx, dr, dr.spec.trafficPolicy, ['spec', 'trafficPolicy']);
  const seen = new Set<string>();
  dr.spec.subsets?.forEach((subset, index) => {
    if (seen.has(subset.name)) ctx.report(dr, 'MG0216', ['spec', 'subsets', index, 'name'], `subset "${subset.name}" is defined twice`);
    seen.add(subset.name);
    checkTrafficPolicy(ctx, dr, subset.trafficPolicy, ['spec', 'subsets', index, 'trafficPolicy']);
  });
}

export function* validateRouting(ctx: ValidationContext): Steps<void> {
  const registry = registryHosts(ctx);
  const checks: DestinationChecks = { subsets: subsetsByHost(ctx), registry, warned: new Set() };
  for (const vs of ctx.ofKind<VirtualServiceSpec>('VirtualService')) {
    checkVirtualService(ctx, vs, checks);
    yield;
  }
  for (const dr of ctx.ofKind<DestinationRuleSpec>('DestinationRule')) {
    checkDestinationRule(ctx, dr, registry);
    yield;
  }
}
