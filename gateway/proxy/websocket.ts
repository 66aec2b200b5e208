/**
 * WebSocket upgrades through the proxy. An upgrade request is dispatched through the SAME fastify
 * pipeline as any request (core attributes, authn, authz, routing, rate limits, faults), so a policy
 * that would deny the request denies the upgrade: only the terminal step differs. There the proxy
 * picks an endpoint of the routed cluster (circuit breaker included), opens a raw connection the way
 * the endpoint's pool would (TLS origination included), sends the rewritten request head and then
 * pipes bytes both ways until either side closes.
 *
 * The tunnel is the request's response: when it closes, the onResponse hooks (metrics, access log,
 * tracing) report it once, as Envoy reports an upgraded stream at its end: the status the upstream
 * answered (101, or its refusal), the whole duration, and the bytes of the whole tunnel.
 *
 * Known limits, as in a first Envoy `upgrade_configs` setup: the upstream's 101 (or refusal) is relayed
 * byte for byte, so response header operations and `x-envoy-upstream-service-time` do not apply; the
 * route timeout and retries do not apply to an upgraded connection.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerResponse } from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { sendLocalReply } from '../http/local-reply.js';
import type { Cluster } from '../upstream/cluster.js';
import type { UpstreamEndpoint } from '../upstream/endpoint.js';
import { computeHashKey } from '../upstream/hash-key.js';
import * as replies from '../upstream/replies.js';
import type { ProxyRequestContext } from './proxy-context.js';

interface PendingUpgrade {
  readonly socket: Duplex;
  /** Bytes the client sent after the request head (already read off the socket by the HTTP parser). */
  readonly head: Buffer;
}

const pending = new WeakMap<IncomingMessage, PendingUpgrade>();

/**
 * Routes `upgrade` events of the listener's server through the fastify app. The response object is
 * bound to the client socket, so a local reply (404, 403, 429, 503…) is written there; the socket is
 * closed once such a reply is finished, since the HTTP parser has already let go of it.
 */
export function attachUpgradeHandling(app: FastifyInstance): void {
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!isWebSocketUpgrade(request)) {
      // Other upgrades (h2c, …) are not offered: the request is answered as plain HTTP on this connection.
      delete request.headers.upgrade;
    } else {
      pending.set(request, { socket, head });
    }
    const response = new ServerResponse(request);
    response.shouldKeepAlive = false;
    response.assignSocket(socket as Socket);
    response.once('finish', () => socket.end());
    app.routing(request, response);
  });
}

function isWebSocketUpgrade(request: IncomingMessage): boolean {
  const upgrade = request.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

/** The client socket of a WebSocket upgrade this request carries, or undefined for ordinary requests. */
export function pendingUpgrade(request: FastifyRequest): PendingUpgrade | undefined {
  return pending.get(request.raw);
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3}) /;

/** The status of the response head that starts `chunk`, or null when it does not start with one. */
function statusOfHead(chunk: Buffer): number | null {
  const match = STATUS_LINE.exec(chunk.toString('latin1', 0, 16));
  return match === null ? null : Number(match[1]);
}

function requestHead(method: string, path: string, headers: OutgoingHttpHeaders): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [String(value)]) {
      // Header operations come from config; a value that could split the head is dropped rather than sent.
      if (/[\r\n]/.test(item)) continue;
      head += `${name}: ${item}\r\n`;
    }
  }
  return `${head}\r\n`;
}

function openConnection(endpoint: UpstreamEndpoint): Promise<Socket> {
  const transport = endpoint.transport;
  if (transport === null) return Promise.reject(new Error(`endpoint ${endpoint.key} cannot open raw connections`));
  const { address, port } = endpoint.metadata;
  return new Promise((resolve, reject) => {
    transport.connect(
      { hostname: address, host: address, protocol: transport.secure ? 'https:' : 'http:', port: String(port), localAddress: null, httpSocket: undefined },
      (error, socket) => (error === null ? resolve(socket as Socket) : reject(error)),
    );
  });
}

export interface UpgradeTarget {
  readonly cluster: Cluster;
  readonly passthrough?: { readonly host: string; readonly port: number };
  readonly method: string;
  readonly path: string;
  /** Upstream request headers as for a plain request (hop-by-hop headers already removed). */
  readonly headers: OutgoingHttpHeaders;
}

function endpointOf(target: UpgradeTarget, ctx: ProxyRequestContext): UpstreamEndpoint | null {
  const { cluster } = target;
  if (cluster.passthrough) {
    const destination = target.passthrough ?? { host: cluster.host, port: cluster.port };
    return destination.host.startsWith('*') ? null : cluster.passthroughEndpoint(destination.host, destination.port);
  }
  const { hash } = computeHashKey(cluster.policy.loadBalancer.hashKey, { headers: target.headers as Readonly<Record<string, string | readonly string[] | undefined>>, sourceIp: ctx.attrs.remoteIp, path: target.path });
  return cluster.pick(hash, null);
}

/** Terminal step for a WebSocket upgrade: connect, send the head, then splice the two sockets. */
export async function proxyUpgrade(request: FastifyRequest, reply: FastifyReply, ctx: ProxyRequestContext, target: UpgradeTarget): Promise<FastifyReply> {
  const upgrade = pending.get(request.raw);
  if (upgrade === undefined) throw new Error('proxyUpgrade called for a request without an upgrade');
  const { cluster } = target;
  const endpoint = endpointOf(target, ctx);
  if (endpoint === null) return sendLocalReply(request, reply, replies.NO_HEALTHY_UPSTREAM);
  ctx.upstreamHost = endpoint.key;
  const admission = cluster.breaker.acquire(null);
  if (admission === 'overflow') return sendLocalReply(request, reply, replies.OVERFLOW, replies.OVERFLOW_HEADERS);
  if (admission !== 'granted') await admission;
  let upstream: Socket;
  try {
    upstream = await openConnection(endpoint);
  } catch {
    cluster.breaker.release();
    cluster.outlier?.record(endpoint, 503);
    return sendLocalReply(request, reply, replies.CONNECT_FAILURE);
  }
  endpoint.active += 1;
  endpoint.totalRequests += 1;
  cluster.totalRequests += 1;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    endpoint.active -= 1;
    cluster.breaker.release();
  };
  const client = upgrade.socket;
  if (client.destroyed) {
    upstream.destroy();
    release();
    return reply;
  }
  reply.hijack();
  const headers = { ...target.headers, connection: 'Upgrade', upgrade: request.headers.upgrade, 'x-envoy-attempt-count': '1' };
  upstream.write(requestHead(target.method, target.path, headers));
  if (upgrade.head.length > 0) upstream.write(upgrade.head);
  const response = reply.raw;
  let answered = false;
  upstream.once('data', (chunk: Buffer) => {
    answered = true;
    response.statusCode = statusOfHead(chunk) ?? response.statusCode;
  });
  upstream.on('error', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.once('close', () => {
    release();
    client.destroy();
  });
  client.once('close', () => {
    upstream.destroy();
    if (!answered) {
      // Envoy's UC: the upstream connection ended before any response.
      response.statusCode = 503;
      ctx.responseFlags.push('UC');
    }
    // The hijacked response is complete now: fastify runs the onResponse hooks on its 'finish'.
    response.emit('finish');
  });
  upstream.pipe(client);
  client.pipe(upstream);
  return reply;
}
