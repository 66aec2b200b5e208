/**
 * The long-lived owner of every upstream cluster. Each config snapshot calls `update()` with the
 * cluster definitions of that snapshot and gets an immutable ClusterSet to pin on its requests.
 * Clusters whose identity and policy did not change keep their runtime state (pools, outlier state,
 * counters); clusters that disappear or change drain. DNS names are resolved in the background.
 */
import { Cluster, clusterIdentity } from './cluster.js';
import type { ClusterDefinition, ClusterRuntimeOptions, ClusterStats } from './cluster.js';
import { DnsCache } from './dns-cache.js';
import type { DnsLookup } from './dns-cache.js';
import type { RegistryEndpoint } from './registry.js';
import type { MeshIdentityProvider } from './tls-origination.js';

export interface ClusterManagerOptions {
  readonly identity?: MeshIdentityProvider | null;
  readonly trustDomain?: string;
  /** DNS refresh period (default 60 s). */
  readonly dnsRefreshMs?: number;
  readonly dnsFamily?: 0 | 4 | 6;
  readonly dnsLookup?: DnsLookup;
  /** Source of randomness for load balancing (tests pass a seeded one). */
  readonly random?: () => number;
  /** Clock of outlier ejections (default Date.now; tests pass one they advance). */
  readonly now?: () => number;
}

export interface ClusterSet {
  /** `port` may be omitted when the service has one port (else its first declared port). `subset` '' or omitted = no subset. */
  get(host: string, port?: number, subset?: string): Cluster | undefined;
  readonly clusters: readonly Cluster[];
}

const DEFAULT_DNS_REFRESH_MS = 60_000;

class IndexedClusterSet implements ClusterSet {
  /** host → port → subset → cluster; the first port of a host is its default. */
  private readonly byHost = new Map<string, Map<number, Map<string, Cluster>>>();
  private readonly wildcards: string[];

  constructor(readonly clusters: readonly Cluster[]) {
    for (const cluster of clusters) {
      const ports = this.byHost.get(cluster.host) ?? new Map<number, Map<string, Cluster>>();
      const subsets = ports.get(cluster.port) ?? new Map<string, Cluster>();
      subsets.set(cluster.subset, cluster);
      ports.set(cluster.port, subsets);
      this.byHost.set(cluster.host, ports);
    }
    this.wildcards = [...this.byHost.keys()].filter((h) => h.startsWith('*.')).sort((a, b) => b.length - a.length);
  }

  get(host: string, port?: number, subset = ''): Cluster | undefined {
    let ports = this.byHost.get(host);
    if (ports === undefined) {
      const lower = host.toLowerCase();
      ports = this.byHost.get(lower);
      if (ports === undefined) {
        const wildcard = this.wildcards.find((w) => lower.endsWith(w.slice(1)));
        if (wildcard === undefined) return undefined;
        ports = this.byHost.get(wildcard);
      }
    }
    const subsets = port === undefined ? ports?.values().next().value : ports?.get(port);
    return subsets?.get(subset);
  }
}

export class ClusterManager {
  private clusters = new Map<string, Cluster>();
  private definitions = new Map<string, ClusterDefinition>();
  private readonly dns: DnsCache;
  private readonly runtime: ClusterRuntimeOptions;
  private closed = false;

  constructor(options: ClusterManagerOptions = {}) {
    this.runtime = {
      identity: options.identity ?? null,
      trustDomain: options.trustDomain ?? 'cluster.local',
      random: options.random ?? Math.random,
      now: options.now ?? Date.now,
    };
    this.dns = new DnsCache({
      refreshMs: options.dnsRefreshMs ?? DEFAULT_DNS_REFRESH_MS,
      family: options.dnsFamily ?? 4,
      onChange: (name) => this.onDnsChange(name),
      ...(options.dnsLookup === undefined ? {} : { lookup: options.dnsLookup }),
    });
  }

  update(definitions: readonly ClusterDefinition[]): ClusterSet {
    if (this.closed) throw new Error('ClusterManager is closed');
    const next = new Map<string, Cluster>();
    const nextDefinitions = new Map<string, ClusterDefinition>();
    const names: string[] = [];
    for (const definition of definitions) {
      if (next.has(definition.name)) continue;
      const existing = this.clusters.get(definition.name);
      const cluster = existing !== undefined && existing.identity === clusterIdentity(definition) ? existing : new Cluster(definition, this.runtime);
      next.set(definition.name, cluster);
      nextDefinitions.set(definition.name, definition);
      if (isDnsResolved(definition)) for (const e of definition.endpoints) names.push(e.address);
    }
    for (const [name, cluster] of this.clusters) if (next.get(name) !== cluster) void cluster.close();
    this.clusters = next;
    this.definitions = nextDefinitions;
    this.dns.track(names);
    for (const [name, cluster] of next) cluster.setEndpoints(this.concreteEndpoints(nextDefinitions.get(name) as ClusterDefinition));
    return new IndexedClusterSet([...next.values()]);
  }

  /** Resolves when the DNS lookups started by the last `update()` have answered (call before serving). */
  dnsSettled(): Promise<void> {
    return this.dns.settled();
  }

  stats(): ClusterStats[] {
    return [...this.clusters.values()].map((c) => c.stats());
  }

  /** Shutdown: stop DNS and timers, drain every pool. */
  async close(): Promise<void> {
    this.closed = true;
    this.dns.close();
    const all = [...this.clusters.values()];
    this.clusters.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private concreteEndpoints(definition: ClusterDefinition): RegistryEndpoint[] {
    if (definition.resolution === 'NONE') return [];
    if (!isDnsResolved(definition)) return [...definition.endpoints];
    const result: RegistryEndpoint[] = [];
    for (const endpoint of definition.endpoints) {
      const addresses = this.dns.addresses(endpoint.address);
      const used = definition.resolution === 'DNS_ROUND_ROBIN' ? addresses.slice(0, 1) : addresses;
      for (const address of used) result.push({ ...endpoint, address });
    }
    return result;
  }

  private onDnsChange(name: string): void {
    for (const [clusterName, definition] of this.definitions) {
      if (!isDnsResolved(definition) || !definition.endpoints.some((e) => e.address === name)) continue;
      this.clusters.get(clusterName)?.setEndpoints(this.concreteEndpoints(definition));
    }
  }
}

function isDnsResolved(definition: ClusterDefinition): boolean {
  return definition.resolution === 'DNS' || definition.resolution === 'DNS_ROUND_ROBIN';
}
