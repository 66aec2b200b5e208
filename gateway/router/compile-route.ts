/**
 * One VirtualService's `http[]` → its ordered route entries for one scope (docs/routing.md#how-a-request-is-routed).
 * Each match block becomes its own route keeping its position; a catch-all drops every later rule
 * of the VirtualService. A rule that cannot be compiled is dropped and reported.
 */
import type { Diagnostic, Resource, ResourceMetadata } from '../config/resource.js';
import { parseDuration } from '../config/duration.js';
import { keptFor } from '../config/frozen.js';
import type {
  HTTPDirectResponse,
  HTTPMirrorPolicy,
  HTTPRoute,
  HTTPRouteDestination,
  VirtualServiceSpec,
} from '../config/kinds/virtual-service.js';
import { compileCors } from './cors.js';
import { MG_ROUTE_RULE_DROPPED, RouteCompileError, routeDiagnostic } from './errors.js';
import { compileFault } from './fault.js';
import { compileHeaderOperations } from './headers.js';
import { compileMatch } from './match.js';
import type { MatchScope, UriMatchKind } from './match.js';
import { compileRedirect } from './redirect.js';
import type { RequestView } from './request-view.js';
import { resolveRetryPolicy } from './retry.js';
import { compilePathRewrite } from './rewrite.js';
import type {
  CompiledDestination,
  CompiledMirror,
  CompiledRoute,
  DirectResponseAction,
  ForwardAction,
  RouteAction,
} from './types.js';

type FieldPath = readonly (string | number)[];

/** A compiled route plus the predicate that selects it. */
export interface RouteEntry {
  readonly route: CompiledRoute;
  readonly test: (view: RequestView) => boolean;
  /** Matches every request: moved behind the other routes when several VirtualServices are merged. */
  readonly catchAll: boolean;
}

function compileDestination(entry: HTTPRouteDestination): CompiledDestination {
  const request = compileHeaderOperations(entry.headers?.request, 'request');
  const response = compileHeaderOperations(entry.headers?.response, 'response');
  return Object.freeze({
    host: entry.destination.host,
    ...(entry.destination.subset !== undefined ? { subset: entry.destination.subset } : {}),
    ...(entry.destination.port?.number !== undefined ? { port: entry.destination.port.number } : {}),
    requestHeaders: request.ops,
    responseHeaders: response.ops,
    authorityRewrite: request.authority,
  });
}

/** Relative weights: a lone destination gets 100 %; among several, an omitted/0 weight gets nothing. */
export function compileForward(entries: readonly HTTPRouteDestination[], field: FieldPath): ForwardAction {
  const [only] = entries;
  if (entries.length === 1 && only !== undefined) {
    const destination = compileDestination(only);
    return Object.freeze({ kind: 'forward' as const, destinations: [destination], pick: () => destination });
  }
  const weighted = entries.filter((entry) => (entry.weight ?? 0) > 0);
  if (entries.some((entry) => (entry.weight ?? 0) < 0)) throw new RouteCompileError(field, 'weights must not be negative');
  if (weighted.length === 0) throw new RouteCompileError(field, 'the destinations of a rule have a total weight of 0');
  const destinations = weighted.map(compileDestination);
  const total = weighted.reduce((sum, entry) => sum + (entry.weight ?? 0), 0);
  let running = 0;
  const cumulative = weighted.map((entry) => (running += entry.weight ?? 0) / total);
  const last = destinations[destinations.length - 1] as CompiledDestination;
  return Object.freeze({
    kind: 'forward' as const,
    destinations,
    pick(random: number): CompiledDestination {
      for (let index = 0; index < cumulative.length; index++) {
        if (random < (cumulative[index] as number)) return destinations[index] as CompiledDestination;
      }
      return last;
    },
  });
}

function compileDirectResponse(response: HTTPDirectResponse): DirectResponseAction {
  const body =
    response.body?.bytes !== undefined
      ? Buffer.from(response.body.bytes, 'base64')
      : Buffer.from(response.body?.string ?? '', 'utf8');
  return Object.freeze({ kind: 'direct-response' as const, status: response.status, body });
}

function compileAction(rule: HTTPRoute, uri: UriMatchKind): RouteAction {
  if (rule.redirect !== undefined) return compileRedirect(rule.redirect, uri, ['redirect']);
  if (rule.directResponse !== undefined) return compileDirectResponse(rule.directResponse);
  if (rule.route !== undefined && rule.route.length > 0) return compileForward(rule.route, ['route']);
  if (rule.delegate !== undefined) throw new RouteCompileError(['delegate'], 'delegate VirtualServices are not supported yet');
  throw new RouteCompileError([], 'a rule needs one of route, redirect or directResponse');
}

/** `mirror` + `mirrorPercentage`/`mirrorPercent`, or `mirrors[]`; absent percentage = 100 %, explicit 0 = none. */
function compileMirrors(rule: HTTPRoute): CompiledMirror[] {
  const toMirror = (destination: HTTPMirrorPolicy['destination'], percent: number): CompiledMirror => ({
    destination: {
      host: destination.host,
      ...(destination.subset !== undefined ? { subset: destination.subset } : {}),
      ...(destination.port?.number !== undefined ? { port: destination.port.number } : {}),
    },
    fraction: Math.min(percent, 100) / 100,
  });
  const mirrors: CompiledMirror[] = [];
  if (rule.mirror !== undefined) {
    mirrors.push(toMirror(rule.mirror, rule.mirrorPercentage?.value ?? rule.mirrorPercent ?? 100));
  }
  for (const policy of rule.mirrors ?? []) mirrors.push(toMirror(policy.destination, policy.percentage?.value ?? 100));
  return mirrors.filter((mirror) => mirror.fraction > 0);
}

function routeName(resource: Resource<VirtualServiceSpec>, rule: HTTPRoute, ruleIndex: number, matchName: string | undefined): string {
  const base = `${resource.metadata.namespace}/${resource.metadata.name}.${rule.name ?? String(ruleIndex)}`;
  return matchName === undefined ? base : `${base}.${matchName}`;
}

/** The annotation that narrows which upgrades a VirtualService's routes attempt (Envoy's per-route upgrade_configs). */
export const UPGRADES_ANNOTATION = 'meshgate.dev/upgrades';

function upgradeTokens(resource: Resource<VirtualServiceSpec>): readonly string[] | null {
  const listed = resource.metadata.annotations[UPGRADES_ANNOTATION];
  if (listed === undefined) return null;
  return Object.freeze(listed.split(',').map((token) => token.trim().toLowerCase()).filter((token) => token !== '' && token !== 'none'));
}

function compileRule(
  resource: Resource<VirtualServiceSpec>,
  rule: HTTPRoute,
  ruleIndex: number,
  scope: MatchScope,
): { entries: RouteEntry[]; truncates: boolean } {
  const matches = rule.match !== undefined && rule.match.length > 0 ? rule.match : [undefined];
  // Everything not depending on the match block is compiled once per rule.
  const requestHeaders = compileHeaderOperations(rule.headers?.request, 'request');
  const responseHeaders = compileHeaderOperations(rule.headers?.response, 'response');
  const shared = {
    virtualService: Object.freeze({ namespace: resource.metadata.namespace, name: resource.metadata.name }),
    requestHeaders: requestHeaders.ops,
    responseHeaders: responseHeaders.ops,
    timeoutMs: rule.timeout !== undefined ? parseDuration(rule.timeout) : 0,
    retry: resolveRetryPolicy(rule.retries),
    fault: compileFault(rule.fault),
    mirrors: Object.freeze(compileMirrors(rule)),
    cors: compileCors(rule.corsPolicy, ['corsPolicy']),
    upgrades: upgradeTokens(resource),
  };
  const authority = rule.rewrite?.authority ?? requestHeaders.authority;

  const entries: RouteEntry[] = [];
  let truncates = false;
  for (const [matchIndex, match] of matches.entries()) {
    const compiled = compileMatch(match, scope, ['match', matchIndex]);
    if (compiled === null) continue;
    const route: CompiledRoute = Object.freeze({
      ...shared,
      name: routeName(resource, rule, ruleIndex, match?.name),
      action: compileAction(rule, compiled.uri),
      rewrite: Object.freeze({ path: compilePathRewrite(rule.rewrite, compiled.uri, ['rewrite']), authority }),
    });
    entries.push({ route, test: compiled.test, catchAll: compiled.matchesEverything });
    if (compiled.matchesEverything) {
      truncates = true;
      break;
    }
  }
  return { entries, truncates };
}

/** A rule dropped at compile time, its position still a field path of the VirtualService. */
interface DroppedRule {
  readonly field: FieldPath;
  readonly message: string;
}

interface CompiledVirtualService {
  readonly metadata: ResourceMetadata;
  readonly routes: readonly RouteEntry[];
  readonly dropped: readonly DroppedRule[];
}

/**
 * Compiled routes by the VirtualService spec they came from, then by scope. A reload shares the
 * loaded spec of every document whose text did not change (parse-documents.ts, short-hosts.ts), so it
 * compiles only the VirtualServices that changed: a 10 000-rule config's routes are most of what a
 * reload allocates, and what survives a scavenge while requests wait is copied. Routes hold no state,
 * so snapshots can share them.
 */
const compiledBySpec = new WeakMap<object, Map<string, CompiledVirtualService>>();
const labelKeys = new WeakMap<object, string>();

function scopeKey(scope: MatchScope): string {
  let labels = labelKeys.get(scope.proxyLabels);
  if (labels === undefined) {
    labels = JSON.stringify(Object.entries(scope.proxyLabels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    labelKeys.set(scope.proxyLabels, labels);
  }
  return `${scope.listenerPort ?? ''}\u0000${scope.gateway}\u0000${scope.proxyNamespace}\u0000${scope.virtualServiceNamespace}\u0000${labels}`;
}

function compileRules(resource: Resource<VirtualServiceSpec>, scope: MatchScope): CompiledVirtualService {
  const routes: RouteEntry[] = [];
  const dropped: DroppedRule[] = [];
  for (const [ruleIndex, rule] of (resource.spec.http ?? []).entries()) {
    try {
      const { entries, truncates } = compileRule(resource, rule, ruleIndex, scope);
      routes.push(...entries);
      if (truncates) break;
    } catch (error) {
      if (!(error instanceof RouteCompileError)) throw error;
      dropped.push({ field: ['spec', 'http', ruleIndex, ...error.field], message: `HTTP rule dropped: ${error.message}` });
    }
  }
  return { metadata: resource.metadata, routes, dropped };
}

/**
 * The ordered routes of one VirtualService in one scope; later rules after a catch-all are dropped.
 * Dropped rules are reported at the resource's current position, also when its routes come from an
 * earlier compile.
 */
export function compileVirtualServiceRoutes(
  resource: Resource<VirtualServiceSpec>,
  scope: MatchScope,
  diagnostics: Diagnostic[] | undefined,
): readonly RouteEntry[] {
  const byScope = keptFor(resource.spec, compiledBySpec, () => new Map<string, CompiledVirtualService>());
  const key = scopeKey(scope);
  let compiled = byScope.get(key);
  if (compiled?.metadata !== resource.metadata) byScope.set(key, (compiled = compileRules(resource, scope)));
  for (const { field, message } of compiled.dropped) diagnostics?.push(routeDiagnostic(resource, MG_ROUTE_RULE_DROPPED, field, message));
  return compiled.routes;
}
