/**
 * Which DestinationRule applies to a host, as seen by this proxy (docs/routing.md#conventions): rules
 * visible to the client namespace (`exportTo`) are searched in the client namespace, then the
 * service's namespace, then the root namespace; in the first namespace with a match, the rules for
 * the best-matching host (exact before the longest wildcard) are merged — the first top-level
 * `trafficPolicy` wins and the first subset of a name wins, in document order, rules with a matching
 * `workloadSelector` first. Built once per snapshot.
 */
import type { DestinationRuleSpec, Subset, TrafficPolicy } from '../config/kinds/destination-rule.js';
import type { Resource } from '../config/resource.js';
import { labelsMatch } from '../config/labels.js';

export interface MergedDestinationRule {
  readonly host: string;
  readonly namespace: string;
  readonly trafficPolicy: TrafficPolicy | undefined;
  readonly subsets: ReadonlyMap<string, Subset>;
  /** `namespace/name` of every merged rule, for diagnostics and the admin API. */
  readonly sources: readonly string[];
}

export interface DestinationRuleClient {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface DestinationRuleIndex {
  lookup(host: string, serviceNamespace: string): MergedDestinationRule | undefined;
}

export function isVisibleTo(exportTo: readonly string[] | undefined, ownNamespace: string, clientNamespace: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true;
  return exportTo.some((entry) => entry === '*' || (entry === '.' ? ownNamespace === clientNamespace : entry === clientNamespace));
}

/** 0 = no match; larger = more specific. Exact matches beat every wildcard. */
function matchScore(pattern: string, host: string): number {
  if (pattern === host) return Number.MAX_SAFE_INTEGER;
  if (pattern === '*') return 1;
  if (pattern.startsWith('*.') && host.endsWith(pattern.slice(1))) return pattern.length;
  return 0;
}

interface IndexedRule {
  readonly resource: Resource<DestinationRuleSpec>;
  /** Lower-cased; a short host was already expanded by the loader (config/short-hosts.ts). */
  readonly host: string;
  readonly selected: boolean;
}

function merge(rules: readonly IndexedRule[], host: string, namespace: string): MergedDestinationRule {
  let trafficPolicy: TrafficPolicy | undefined;
  const subsets = new Map<string, Subset>();
  for (const rule of rules) {
    const spec = rule.resource.spec;
    trafficPolicy ??= spec.trafficPolicy;
    for (const subset of spec.subsets ?? []) if (!subsets.has(subset.name)) subsets.set(subset.name, subset);
  }
  return {
    host,
    namespace,
    trafficPolicy,
    subsets,
    sources: rules.map((r) => `${r.resource.metadata.namespace}/${r.resource.metadata.name}`),
  };
}

export function indexDestinationRules(
  resources: readonly Resource<DestinationRuleSpec>[],
  client: DestinationRuleClient,
  rootNamespace: string,
): DestinationRuleIndex {
  const byNamespace = new Map<string, IndexedRule[]>();
  for (const resource of resources) {
    const namespace = resource.metadata.namespace;
    if (!isVisibleTo(resource.spec.exportTo, namespace, client.namespace)) continue;
    const selector = resource.spec.workloadSelector?.matchLabels;
    if (selector !== undefined && (namespace !== client.namespace || !labelsMatch(selector, client.labels))) continue;
    const list = byNamespace.get(namespace) ?? [];
    list.push({ resource, host: resource.spec.host.toLowerCase(), selected: selector !== undefined });
    byNamespace.set(namespace, list);
  }
  for (const list of byNamespace.values()) {
    list.sort((a, b) => Number(b.selected) - Number(a.selected) || a.resource.source.order - b.resource.source.order);
  }
  const cache = new Map<string, MergedDestinationRule | undefined>();

  function lookupIn(namespace: string, host: string): MergedDestinationRule | undefined {
    const rules = byNamespace.get(namespace);
    if (rules === undefined) return undefined;
    let best = 0;
    let matching: IndexedRule[] = [];
    for (const rule of rules) {
      const score = matchScore(rule.host, host);
      if (score === 0 || score < best) continue;
      if (score > best) {
        best = score;
        matching = [];
      }
      matching.push(rule);
    }
    return matching.length === 0 ? undefined : merge(matching, host, namespace);
  }

  return {
    lookup(host, serviceNamespace) {
      const lower = host.toLowerCase();
      const cacheKey = `${serviceNamespace}\u0000${lower}`;
      if (cache.has(cacheKey)) return cache.get(cacheKey);
      let found: MergedDestinationRule | undefined;
      for (const namespace of [client.namespace, serviceNamespace, rootNamespace]) {
        found = lookupIn(namespace, lower);
        if (found !== undefined) break;
      }
      cache.set(cacheKey, found);
      return found;
    },
  };
}
