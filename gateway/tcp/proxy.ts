/**
 * Opaque TCP proxying of one accepted connection (docs/tcp.md), Envoy's tcp_proxy: the connection
 * hooks may refuse it (AuthorizationPolicy), it is routed (sidecar inbound: the local app's port; egress
 * and passthrough ports: the L4 rules), an endpoint is picked by the cluster's load balancer, the
 * cluster's `connectionPool.tcp.maxConnections` bounds the connections open to it (over it: closed, UO),
 * and the upstream connection is opened the way the endpoint's pool opens its own (mesh mTLS origination
 * included) within `connectTimeout`. Then bytes flow both ways, half-closes included, until both sides
 * are closed, `idleTimeout` passes without a byte, or `maxConnectionDuration` is reached (DT).
 *
 * While it is open, the hooks see its bytes every MeshConfig `metrics.tcpReportingInterval` (Istio's
 * tcpReportingDuration), so a long-lived connection shows in the byte series before it closes.
 *
 * A refused connection is closed at once: TCP has no status to send. What happened is in the flags
 * and details the hooks (metrics, access log) see once the connection is closed.
 */
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { ConnectionAttributes, ConnectionRecord, MeshPlugin } from '../pipeline/types.js';
import type { ListenerSpec } from '../listeners/listener-spec.js';
import { INBOUND_APP_HOST } from '../snapshot/core-clusters.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { Cluster } from '../upstream/cluster.js';
import { openPlainConnection, openRawConnection } from '../upstream/endpoint.js';
import { computeHashKey } from '../upstream/hash-key.js';
import { routeConnection } from '../snapshot/tcp-routes.js';

/** Only `useSourceIp` of a consistent hash applies to a TCP connection: the other keys are HTTP's. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

export interface TcpProxyContext {
  readonly spec: ListenerSpec;
  readonly currentSnapshot: () => Snapshot;
  /** The plugins with connection hooks that apply to this listener's direction. */
  readonly plugins: readonly MeshPlugin[];
  readonly logger: FastifyBaseLogger;
  readonly random: () => number;
}

/** Connections each cluster has open through the TCP proxy (Envoy's per-cluster `max_connections` for tcp_proxy). */
const openConnections = new WeakMap<Cluster, number>();

function tcpConnectionsOpen(cluster: Cluster): number {
  return openConnections.get(cluster) ?? 0;
}

class LiveRecord implements ConnectionRecord {
  readonly startEpochMs = Date.now();
  readonly startMs = performance.now();
  endMs = Number.NaN;
  routeName = '';
  upstreamCluster = '';
  upstreamHost = '';
  readonly responseFlags: string[] = [];
  details = '';
  receivedBytes = 0;
  sentBytes = 0;
  constructor(readonly attrs: ConnectionAttributes) {}
}

/** Proxies `downstream` (already accepted, TLS terminated where the listener does that) to its upstream. */
export function proxyConnection(downstream: Socket, attrs: ConnectionAttributes, context: TcpProxyContext): void {
  const snapshot = context.currentSnapshot();
  const record = new LiveRecord(attrs);
  const states = snapshot.pluginStates;
  let openedReported = false;
  const reportOpened = (): void => {
    openedReported = true;
    for (const plugin of context.plugins) plugin.connections?.opened?.(states.get(plugin.name), record);
  };
  const countBytes = (): void => {
    record.receivedBytes = downstream.bytesRead;
    record.sentBytes = downstream.bytesWritten;
  };
  const finish = (): void => {
    record.endMs = performance.now();
    countBytes();
    if (!openedReported) reportOpened();
    for (const plugin of context.plugins) plugin.connections?.closed?.(states.get(plugin.name), record);
  };
  const reportProgress = (): void => {
    countBytes();
    for (const plugin of context.plugins) plugin.connections?.progress?.(states.get(plugin.name), record);
  };
  const refuse = (flag: string, details: string): void => {
    if (flag !== '') record.responseFlags.push(flag);
    record.details = details;
    onceClosed(downstream, finish);
    downstream.destroy();
  };
  downstream.on('error', () => downstream.destroy());

  for (const plugin of context.plugins) {
    const denial = plugin.connections?.admit?.(states.get(plugin.name), attrs) ?? null;
    if (denial !== null) return refuse('', denial.details);
  }

  let cluster: Cluster | undefined;
  let endToEndTls = false;
  if (context.spec.direction === 'inbound') {
    cluster = snapshot.clusters.get(INBOUND_APP_HOST, context.spec.port);
    record.routeName = 'inbound';
  } else {
    const view = { destinationIp: attrs.destinationIp, sni: attrs.sni };
    const rule = routeConnection(snapshot.tcpRoutes.get(context.spec.port), view);
    if (rule === null) return refuse('NR', 'filter_chain_not_found');
    record.routeName = rule.name;
    const destination = rule.pick(context.random(), view);
    endToEndTls = rule.endToEndTls === true;
    cluster = snapshot.clusters.get(destination.host, destination.port ?? context.spec.port, destination.subset ?? '');
  }
  if (cluster === undefined) return refuse('NC', 'cluster_not_found');
  record.upstreamCluster = cluster.name;
  const { hash } = computeHashKey(cluster.policy.loadBalancer.hashKey, { headers: NO_HEADERS, sourceIp: attrs.sourceIp, path: '' });
  const endpoint = cluster.pick(hash, null);
  if (endpoint === null) return refuse('UH', 'no_healthy_upstream');
  record.upstreamHost = endpoint.key;
  const limits = cluster.policy.connectionPool;
  const open = tcpConnectionsOpen(cluster);
  if (open >= limits.maxConnections) {
    cluster.breaker.overflows += 1;
    return refuse('UO', 'upstream_max_connections_overflow');
  }
  openConnections.set(cluster, open + 1);
  endpoint.active += 1;
  endpoint.totalRequests += 1;
  cluster.totalRequests += 1;
  const target = cluster;
  const release = (): void => {
    openConnections.set(target, tcpConnectionsOpen(target) - 1);
    endpoint.active -= 1;
  };
  reportOpened();
  // Bytes the client sends while the upstream connection opens wait in the socket's buffer.
  downstream.pause();
  const connecting = endToEndTls ? openPlainConnection(endpoint, limits.connectTimeoutMs) : openRawConnection(endpoint);
  connecting.then(
    (upstream) => {
      const progress = snapshot.tcpReportingIntervalMs > 0 ? setInterval(reportProgress, snapshot.tcpReportingIntervalMs).unref() : undefined;
      splice(downstream, upstream, target, record, () => {
        clearInterval(progress);
        release();
        finish();
      });
    },
    (error: unknown) => {
      release();
      target.connectFailures += 1;
      target.outlier?.record(endpoint, 503);
      context.logger.debug({ err: error, upstream: endpoint.key }, 'TCP upstream connection failed');
      refuse('UF', 'upstream_connection_failure');
    },
  );
}

/** `callback` once `socket` has closed, also when it already has (the client may leave while the upstream connects). */
function onceClosed(socket: Socket, callback: () => void): void {
  if (socket.closed) callback();
  else socket.once('close', callback);
}

function splice(downstream: Socket, upstream: Socket, cluster: Cluster, record: LiveRecord, done: () => void): void {
  const limits = cluster.policy.connectionPool;
  if (downstream.destroyed) {
    upstream.destroy();
    onceClosed(downstream, done);
    return;
  }
  upstream.setNoDelay(true);
  if (limits.tcpKeepalive !== null) upstream.setKeepAlive(true, limits.tcpKeepalive.timeMs);
  let open = 2;
  const closed = (): void => {
    open -= 1;
    if (open === 0) {
      clearTimeout(durationTimer);
      done();
    }
  };
  downstream.once('close', () => {
    upstream.destroy();
    closed();
  });
  upstream.once('close', () => {
    downstream.destroy();
    closed();
  });
  upstream.on('error', () => upstream.destroy());
  // Every byte either way is read or written on the downstream socket: its timeout is the connection's idle timeout.
  if (limits.tcpIdleTimeoutMs > 0) downstream.setTimeout(limits.tcpIdleTimeoutMs, () => downstream.destroy());
  const durationTimer =
    limits.maxConnectionDurationMs > 0
      ? setTimeout(() => {
          record.responseFlags.push('DT');
          downstream.destroy();
        }, limits.maxConnectionDurationMs)
      : undefined;
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  downstream.resume();
}
