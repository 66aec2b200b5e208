/**
 * HTTP/1.1 upgrades (WebSocket) through the proxy. An upgrade request is dispatched through the SAME
 * fastify pipeline as any request (core attributes, authn, authz, routing, rate limits, faults), so a
 * policy that would deny the request denies the upgrade: only the terminal step differs. There the
 * proxy picks an endpoint of the routed cluster (circuit breaker included), opens a raw connection the
 * way the endpoint's pool would (TLS origination included) and sends the rewritten request head.
 *
 * Upgrade smuggling is closed at the root: nothing the client sent after the request head reaches the
 * upstream, and the two connections are not spliced, until the upstream has answered `101`. Any other
 * answer is relayed as an ordinary response and the client connection goes back to the HTTP parser, so
 * the next request on it is parsed, routed and authorised like any other. Only the Upgrade tokens of
 * MeshConfig `connections.upgrades` (default: websocket) are attempted; any other (h2c, the classic
 * smuggling vector) has its Upgrade header dropped and is served as a plain request, as Envoy does for
 * h2c. An upgrade request that carries a body is refused (400): its body would otherwise be read as the
 * next request.
 *
 * The tunnel is the request's response: when it closes, the onResponse hooks (metrics, access log,
 * tracing) report it once, as Envoy reports an upgraded stream at its end: the status the upstream
 * answered (101, or its refusal), the whole duration, and the bytes of the whole tunnel.
 *
 * Known limits, as in a first Envoy `upgrade_configs` setup: the upstream's 101 is relayed as it came,
 * so response header operations and `x-envoy-upstream-service-time` do not apply to it; the route
 * timeout and retries do not apply to an upgrade.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import http, { ServerResponse } from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { sendLocalReply } from '../http/local-reply.js';
import { httpConnectionListener } from '../listeners/h2c.js';
import type { LocalReply } from '../pipeline/types.js';
import type { Cluster } from '../upstream/cluster.js';
import { openRawConnection, type UpstreamEndpoint } from '../upstream/endpoint.js';
import { computeHashKey } from '../upstream/hash-key.js';
import * as replies from '../upstream/replies.js';
import { cleanResponseHeaders } from './forward-headers.js';
import type { ProxyRequestContext } from './proxy-context.js';

interface PendingUpgrade {
  readonly socket: Duplex;
  /** Bytes the client sent after the request head (already read off the socket by the HTTP parser). */
  readonly head: Buffer;
  /** The upgrade token to attempt (lower case). */
  readonly token: string;
  readonly hasBody: boolean;
  /** Set once the upstream answered 101 and the connections are spliced: the socket never returns to HTTP. */
  tunnelled: boolean;
}

const pending = new WeakMap<IncomingMessage, PendingUpgrade>();


const UPGRADE_WITH_BODY: LocalReply = Object.freeze({
  status: 400,
  flag: 'DPE',
  details: 'upgrade_request_with_body',
  message: 'bad request: an upgrade request cannot carry a body',
});

const INVALID_UPGRADE_HEADER: LocalReply = Object.freeze({
  status: 400,
  flag: 'DPE',
  details: 'invalid_upstream_request_header',
  message: 'bad request: a request header value cannot be sent (CR, LF or NUL in it)',
});

function carriesBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Whether the connection can go back to HTTP parsing once the response to this request is written. */
function reusable(request: IncomingMessage, hasBody: boolean): boolean {
  if (httpConnectionListener === undefined || hasBody || request.httpVersion !== '1.1') return false;
  const connection = request.headers.connection;
  return connection === undefined || !/(^|,)\s*close\s*(,|$)/i.test(connection);
}

/**
 * Routes `upgrade` events of the listener's server through the fastify app. The response object is
 * bound to the client socket, so a local reply (404, 403, 429, 503…) or a refusal relayed from the
 * upstream is written there; once it is finished the socket goes back to the HTTP parser with the
 * bytes that followed the head, or is closed when that is not possible.
 */
export function attachUpgradeHandling(app: FastifyInstance, upgrades: readonly string[], isDraining: () => boolean): void {
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const onError = (): void => {
      socket.destroy();
    };
    socket.on('error', onError);
    const upgrade = (request.headers.upgrade ?? '').trim().toLowerCase();
    const hasBody = carriesBody(request);
    let entry: PendingUpgrade | null = null;
    if (upgrades.includes(upgrade) || hasBody) {
      entry = { socket, head, token: upgrade, hasBody, tunnelled: false };
      pending.set(request, entry);
    } else {
      // Not offered: served as a plain request on this connection (RFC 9110 §7.8 lets a server ignore Upgrade).
      delete request.headers.upgrade;
    }
    const response = new ServerResponse(request);
    response.shouldKeepAlive = reusable(request, hasBody) && !isDraining();
    response.assignSocket(socket as Socket);
    response.once('finish', () => {
      if (entry?.tunnelled === true) return;
      if (!response.shouldKeepAlive || socket.destroyed || httpConnectionListener === undefined) {
        socket.end();
        return;
      }
      response.detachSocket(socket as Socket);
      socket.off('error', onError);
      if (head.length > 0) socket.unshift(head);
      httpConnectionListener.call(app.server, socket);
    });
    app.routing(request, response);
  });
}

/**
 * Whether the terminal step attempts this request's upgrade: it carries one the listener offers and the
 * route allows it (`routeTokens` null: every offered token). An upgrade with a body is always taken
 * there, to be refused. Otherwise an upgrade request is forwarded as a plain request (its `Upgrade` is
 * hop-by-hop and not sent) and the connection stays HTTP.
 */
export function attemptsUpgrade(request: FastifyRequest, routeTokens: readonly string[] | null): boolean {
  const upgrade = pending.get(request.raw);
  if (upgrade === undefined) return false;
  return upgrade.hasBody || routeTokens === null || routeTokens.includes(upgrade.token);
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

/** The 101 head as the upstream sent it (node's parser already refused anything malformed in it). */
function switchingHead(response: IncomingMessage): string {
  let head = `HTTP/1.1 101 ${response.statusMessage ?? 'Switching Protocols'}\r\n`;
  const raw = response.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`;
  return `${head}\r\n`;
}

/**
 * Terminal step for an upgrade: connect, send the head alone, and splice the two sockets only once the
 * upstream answered 101; any other answer is relayed as an ordinary response.
 */
export async function proxyUpgrade(request: FastifyRequest, reply: FastifyReply, ctx: ProxyRequestContext, target: UpgradeTarget): Promise<FastifyReply> {
  const upgrade = pending.get(request.raw);
  if (upgrade === undefined) throw new Error('proxyUpgrade called for a request without an upgrade');
  if (upgrade.hasBody) return sendLocalReply(request, reply, UPGRADE_WITH_BODY);
  const { cluster } = target;
  const endpoint = endpointOf(target, ctx);
  if (endpoint === null) return sendLocalReply(request, reply, replies.NO_HEALTHY_UPSTREAM);
  ctx.upstreamHost = endpoint.key;
  // An upgraded connection is never shared: it always waits for a connection of its own.
  const breaker = cluster.breaker;
  const first = breaker.admit('none');
  const admission = first === 'wait' ? await breaker.waitForConnection(() => 'none', null) : first;
  if (admission === 'overflow') return sendLocalReply(request, reply, replies.OVERFLOW, replies.OVERFLOW_HEADERS);
  const opened = admission === 'pending-opens';
  let upstream: Socket;
  try {
    upstream = await openRawConnection(endpoint);
  } catch {
    breaker.releasePending(opened);
    cluster.connectFailures += 1;
    cluster.outlier?.record(endpoint, 503);
    return sendLocalReply(request, reply, replies.CONNECT_FAILURE);
  }
  breaker.connectionOpened();
  upstream.once('close', () => breaker.connectionClosed());
  if (!breaker.attach(opened)) {
    upstream.destroy();
    return sendLocalReply(request, reply, replies.OVERFLOW, replies.OVERFLOW_HEADERS);
  }
  endpoint.active += 1;
  endpoint.totalRequests += 1;
  cluster.totalRequests += 1;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    endpoint.active -= 1;
    breaker.releaseActive();
  };
  upstream.once('close', release);
  const client = upgrade.socket;
  if (client.destroyed) {
    upstream.destroy();
    return reply;
  }
  let upstreamRequest: http.ClientRequest;
  try {
    upstreamRequest = http.request({
      method: target.method,
      path: target.path,
      headers: { ...target.headers, connection: 'Upgrade', upgrade: upgrade.token, 'x-envoy-attempt-count': '1' },
      createConnection: () => upstream,
      setHost: false,
    });
  } catch {
    // node validates every header value; one from a header operation or a claim that could split the head is refused here.
    upstream.destroy();
    return sendLocalReply(request, reply, INVALID_UPGRADE_HEADER);
  }
  reply.hijack();
  const response = reply.raw;
  const onClientGone = (): void => {
    upstreamRequest.destroy();
  };
  client.once('close', onClientGone);
  upstreamRequest.once('upgrade', (upstreamResponse: IncomingMessage, upstreamSocket: Duplex, upstreamHead: Buffer) => {
    client.off('close', onClientGone);
    upgrade.tunnelled = true;
    response.statusCode = 101;
    client.write(switchingHead(upstreamResponse));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    // Only now may the bytes the client sent after its head go upstream.
    if (upgrade.head.length > 0) upstreamSocket.write(upgrade.head);
    upstreamSocket.on('error', () => client.destroy());
    client.on('error', () => upstreamSocket.destroy());
    upstreamSocket.once('close', () => client.destroy());
    client.once('close', () => {
      upstreamSocket.destroy();
      // The hijacked response is complete now: fastify runs the onResponse hooks on its 'finish'.
      response.emit('finish');
    });
    upstreamSocket.pipe(client);
    client.pipe(upstreamSocket);
  });
  upstreamRequest.once('response', (upstreamResponse: IncomingMessage) => {
    // A refusal (or any non-101 answer) is an ordinary response; the upstream connection is not reused.
    const headers = cleanResponseHeaders(upstreamResponse.headers as Record<string, string | string[] | undefined>);
    ctx.relayedHeaders = headers;
    response.writeHead(upstreamResponse.statusCode ?? 502, headers);
    upstreamResponse.pipe(response);
    upstreamResponse.once('end', () => upstream.destroy());
    upstreamResponse.once('error', () => client.destroy());
  });
  upstreamRequest.once('error', () => {
    if (upgrade.tunnelled) return;
    upstream.destroy();
    if (response.headersSent) {
      client.destroy();
      return;
    }
    // Envoy's UC: the upstream connection ended before any response.
    ctx.responseFlags.push('UC');
    const local = replies.CONNECTION_TERMINATED;
    response.writeHead(local.status, { 'content-type': 'text/plain; charset=utf-8', ...(ctx.debugHeaders ? { 'x-meshgate-reason': `${local.flag} ${local.details}` } : {}) });
    response.end(`${local.message}\n`);
  });
  upstreamRequest.end();
  return reply;
}
