/**
 * Where a routed request goes: the cluster of the picked destination, a sidecar's local app, the host's
 * default cluster for mesh traffic without a VirtualService, or — for hosts outside the registry —
 * passthrough (ALLOW_ANY) or a refusal (REGISTRY_ONLY, Istio's BlackHoleCluster: 502).
 */
import type { LocalReply } from '../pipeline/types.js';
import type { CompiledDestination } from '../router/types.js';
import { INBOUND_APP_HOST, PASSTHROUGH_HOST } from '../snapshot/core-clusters.js';
import type { Cluster } from '../upstream/cluster.js';
import { NO_CLUSTER } from '../upstream/replies.js';
import { OWN_LISTENER } from './loop-guard.js';
import type { ProxyRequestContext } from './proxy-context.js';

export type DestinationChoice =
  | {
      readonly kind: 'cluster';
      readonly cluster: Cluster;
      readonly destination: CompiledDestination | null;
      readonly passthrough?: { readonly host: string; readonly port: number };
    }
  | { readonly kind: 'reply'; readonly reply: LocalReply };

function blackhole(host: string): LocalReply {
  return {
    status: 502,
    flag: 'NR',
    details: 'blackhole_cluster',
    message: `outbound traffic to "${host}" is not allowed: it is not in the service registry and outboundTrafficPolicy is REGISTRY_ONLY`,
  };
}

function clusterNotFound(host: string, subset: string | undefined): LocalReply {
  const what = subset === undefined ? `host "${host}"` : `subset "${subset}" of host "${host}"`;
  return { ...NO_CLUSTER, message: `no upstream cluster for ${what}` };
}

export function chooseDestination(ctx: ProxyRequestContext, random: number): DestinationChoice {
  const clusters = ctx.snapshot.clusters;
  if (ctx.listener.direction === 'inbound') {
    const cluster = clusters.get(INBOUND_APP_HOST, ctx.listener.port);
    return cluster === undefined ? { kind: 'reply', reply: clusterNotFound('local app', undefined) } : { kind: 'cluster', cluster, destination: null };
  }
  const route = ctx.route;
  if (route !== null && route.action.kind === 'forward') {
    const destination = route.action.pick(random);
    const cluster = clusters.get(destination.host, destination.port, destination.subset);
    return cluster === undefined
      ? { kind: 'reply', reply: clusterNotFound(destination.host, destination.subset) }
      : { kind: 'cluster', cluster, destination };
  }
  const routeRequest = ctx.routeRequest;
  const host = ctx.attrs.host;
  const port = routeRequest?.port ?? 80;
  const serviceHost = ctx.snapshot.serviceHost(host);
  const cluster = clusters.get(serviceHost, port) ?? clusters.get(serviceHost);
  if (cluster !== undefined) return { kind: 'cluster', cluster, destination: null };
  const passthrough = clusters.get(PASSTHROUGH_HOST);
  if (passthrough === undefined) return { kind: 'reply', reply: blackhole(host) };
  if (ctx.snapshot.isOwnOutbound(host, port)) return { kind: 'reply', reply: OWN_LISTENER };
  return { kind: 'cluster', cluster: passthrough, destination: null, passthrough: { host, port } };
}
