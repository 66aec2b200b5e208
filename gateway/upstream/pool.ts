/**
 * One undici Pool per upstream endpoint (keep-alive connections reused across requests). Limits come
 * from the cluster's resolved connectionPool policy; closing the pool drains it: undici lets every
 * queued and running request finish before the connections are closed, so a reload never cuts a
 * request in flight.
 */
import type { ResolvedConnectionPool } from './policy.js';
import { UNLIMITED } from './policy.js';
import { Pool } from './undici-core.js';
import type { Connector } from './undici-core.js';

/** Largest delay a Node timer accepts (~24.8 days): "never" for an idle timeout of 0. */
const NEVER_MS = 2_147_483_647;

export function endpointOrigin(address: string, port: number, secure: boolean): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `${secure ? 'https' : 'http'}://${host}:${port}`;
}

export function createEndpointPool(
  origin: string,
  limits: ResolvedConnectionPool,
  connect: Connector,
): Pool {
  const idle = limits.idleTimeoutMs === 0 ? NEVER_MS : Math.min(limits.idleTimeoutMs, NEVER_MS);
  return new Pool(origin, {
    connect,
    // The circuit breaker lets a request open a connection only below the cluster's maxConnections; this bounds one endpoint alone too.
    connections: limits.maxConnections >= UNLIMITED ? null : limits.maxConnections,
    keepAliveTimeout: idle,
    // An upstream's `Keep-Alive: timeout=N` hint may shorten, never lengthen, our idle timeout.
    keepAliveMaxTimeout: idle,
    ...(limits.maxRequestsPerConnection > 0 ? { maxRequestsPerClient: limits.maxRequestsPerConnection } : {}),
    pipelining: 1,
  });
}
