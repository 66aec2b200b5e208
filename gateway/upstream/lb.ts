/**
 * Endpoint selection for one cluster (docs/routing.md#load-balancing): LEAST_REQUEST (power of two choices on
 * active requests, weighted), ROUND_ROBIN (smooth weighted), RANDOM (weighted), RING_HASH
 * (consistent hashing; ~1/N keys move when a host joins or leaves). Ejected endpoints are skipped
 * unless the cluster is in panic (outlier detection's minHealthPercent). On a retry, hosts already tried are avoided
 * (Envoy previous_hosts: up to 5 re-selections). Built when the endpoint set changes, never per request.
 */
import type { UpstreamEndpoint } from './endpoint.js';
import { hash32 } from './hash.js';
import type { ResolvedLoadBalancer } from './policy.js';

export interface HealthPolicy {
  panics(healthy: number, total: number): boolean;
}

export interface LoadBalancer {
  /** null when no endpoint may take traffic (→ 503 UH). `hash` null = no affinity key. */
  pick(hash: number | null, tried: readonly UpstreamEndpoint[] | null): UpstreamEndpoint | null;
}

const HOST_RESELECTIONS = 5;

/** The endpoints that may take traffic now: all when none is ejected or in panic, else the healthy ones. */
function usableEndpoints(all: readonly UpstreamEndpoint[], health: HealthPolicy | null): readonly UpstreamEndpoint[] {
  if (health === null) return all;
  let healthy = 0;
  for (const e of all) if (!e.ejected) healthy += 1;
  if (healthy === all.length || health.panics(healthy, all.length)) return all;
  return healthy === 0 ? [] : all.filter((e) => !e.ejected);
}

function weightedPick(list: readonly UpstreamEndpoint[], uniform: boolean, random: () => number): UpstreamEndpoint {
  if (uniform) return list[Math.floor(random() * list.length)] as UpstreamEndpoint;
  let total = 0;
  for (const e of list) total += e.weight;
  let point = random() * total;
  for (const e of list) {
    point -= e.weight;
    if (point < 0) return e;
  }
  return list[list.length - 1] as UpstreamEndpoint;
}

type Chooser = (usable: readonly UpstreamEndpoint[]) => UpstreamEndpoint;

function leastRequest(uniform: boolean, random: () => number): Chooser {
  return (usable) => {
    if (usable.length === 1) return usable[0] as UpstreamEndpoint;
    const first = weightedPick(usable, uniform, random);
    let second = weightedPick(usable, uniform, random);
    if (second === first) second = usable[(usable.indexOf(first) + 1) % usable.length] as UpstreamEndpoint;
    return (second.active + 1) / second.weight < (first.active + 1) / first.weight ? second : first;
  };
}

function roundRobin(uniform: boolean, random: () => number): Chooser {
  // Envoy starts each new round-robin balancer at a random offset so that proxies do not move in lockstep.
  let next = Math.floor(random() * 1024);
  if (uniform) return (usable) => usable[next++ % usable.length] as UpstreamEndpoint;
  return (usable) => {
    let total = 0;
    let best = usable[0] as UpstreamEndpoint;
    for (const e of usable) {
      e.roundRobinCurrent += e.weight;
      total += e.weight;
      if (e.roundRobinCurrent > best.roundRobinCurrent) best = e;
    }
    best.roundRobinCurrent -= total;
    return best;
  };
}

function simpleBalancer(
  all: readonly UpstreamEndpoint[],
  choose: Chooser,
  health: HealthPolicy | null,
): LoadBalancer {
  return {
    pick(_hash, tried) {
      const usable = usableEndpoints(all, health);
      if (usable.length === 0) return null;
      let chosen = choose(usable);
      if (tried === null || tried.length === 0) return chosen;
      for (let i = 0; i < HOST_RESELECTIONS && tried.includes(chosen); i++) chosen = choose(usable);
      return chosen;
    },
  };
}

interface Ring {
  readonly points: Uint32Array;
  readonly owners: readonly UpstreamEndpoint[];
}

/** Ketama-style ring: each host gets points in proportion to its weight, at least one, ≥ ringSize in total. */
function buildRing(all: readonly UpstreamEndpoint[], ringSize: number): Ring {
  let totalWeight = 0;
  for (const e of all) totalWeight += e.weight;
  const entries: { point: number; owner: UpstreamEndpoint }[] = [];
  for (const e of all) {
    const count = Math.max(1, Math.ceil((ringSize * e.weight) / totalWeight));
    for (let i = 0; i < count; i++) entries.push({ point: hash32(`${e.key}_${i}`), owner: e });
  }
  entries.sort((a, b) => a.point - b.point);
  return { points: Uint32Array.from(entries, (x) => x.point), owners: entries.map((x) => x.owner) };
}

function firstAtOrAfter(points: Uint32Array, hash: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((points[mid] as number) < hash) low = mid + 1;
    else high = mid;
  }
  return low === points.length ? 0 : low;
}

function ringBalancer(
  all: readonly UpstreamEndpoint[],
  ringSize: number,
  health: HealthPolicy | null,
  random: () => number,
): LoadBalancer {
  const ring = buildRing(all, ringSize);
  return {
    pick(hash, tried) {
      const usable = usableEndpoints(all, health);
      if (usable.length === 0) return null;
      const start = hash === null ? Math.floor(random() * ring.points.length) : firstAtOrAfter(ring.points, hash >>> 0);
      let fallback: UpstreamEndpoint | null = null;
      // Walk clockwise past hosts that cannot take traffic (ejected, or already tried on this request).
      for (let step = 0; step < ring.owners.length; step++) {
        const owner = ring.owners[(start + step) % ring.owners.length] as UpstreamEndpoint;
        if (usable !== all && owner.ejected) continue;
        if (tried === null || !tried.includes(owner)) return owner;
        fallback ??= owner;
      }
      return fallback;
    },
  };
}

export function createLoadBalancer(
  endpoints: readonly UpstreamEndpoint[],
  settings: ResolvedLoadBalancer,
  health: HealthPolicy | null,
  random: () => number = Math.random,
): LoadBalancer {
  const uniform = endpoints.every((e) => e.weight === endpoints[0]?.weight);
  switch (settings.algorithm) {
    case 'RING_HASH':
      return ringBalancer(endpoints, settings.ringSize, health, random);
    case 'ROUND_ROBIN':
      return simpleBalancer(endpoints, roundRobin(uniform, random), health);
    case 'RANDOM':
      return simpleBalancer(endpoints, (usable) => weightedPick(usable, uniform, random), health);
    default:
      return simpleBalancer(endpoints, leastRequest(uniform, random), health);
  }
}
