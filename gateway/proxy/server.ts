/**
 * One fastify instance per listener, composed the same way for every mode: the core context hook,
 * then the pipeline table, then the terminal proxy step. Modes differ only in the ListenerSpec and the
 * TLS/server factory they pass in. The observer plugins' hooks (`everyRequest`) apply to every route;
 * the other steps only to the routes that forward, not to what a sidecar's Dapr API answers itself.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyRequest, FastifyServerFactory } from 'fastify';
import { randomUUID } from 'node:crypto';
import { sendLocalReply } from '../http/local-reply.js';
import { SCHEMALESS } from '../http/schemaless.js';
import type { ProxyEvents } from '../pipeline/capabilities.js';
import type { LocalReply, MeshPlugin, RequestAttributes } from '../pipeline/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { registerDaprApi, registerDaprInvocation } from '../dapr/api/routes.js';
import { computeAttributes } from './attributes.js';
import { acceptRequestId } from './forward-headers.js';
import type { Server as HttpServer } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { serveH2cBeside } from '../listeners/h2c.js';
import type { ClientConnections } from '../listeners/client-connections.js';
import { applyHttp1Limits } from '../listeners/http1-limits.js';
import type { Http1Limits } from '../listeners/http1-limits.js';
import { hostListed } from '../listeners/listener-spec.js';
import type { ClientConnectionSettings, ListenerSpec } from '../listeners/listener-spec.js';
import type { TlsListener } from '../listeners/tls-server.js';
import { LOOP_DETECTED, MAX_PROXY_HOPS, hopsOf } from './loop-guard.js';
import { ProxyRequestContext } from './proxy-context.js';
import { createProxyHandler } from './terminal.js';
import { attachUpgradeHandling } from './websocket.js';

export interface ProxyServerOptions {
  readonly listener: ListenerSpec;
  /** The snapshot a NEW request starts on; in-flight requests keep theirs. */
  readonly currentSnapshot: () => Snapshot;
  readonly plugins: readonly MeshPlugin[];
  /** Told of upstream retries and overflows and of Dapr publishes. */
  readonly events: ProxyEvents;
  readonly logger: FastifyBaseLogger;
  readonly tls?: TlsListener;
  /** For listeners that accept TLS and plaintext on one port (PERMISSIVE). */
  readonly serverFactory?: FastifyServerFactory;
  /** The listener's client connections; this server's are watched here, a serverFactory's server watches its own. */
  readonly connections: ClientConnections;
  /** The request-head deadline and largest head (a serverFactory's server applies them to its own inner servers). */
  readonly http1Limits: Http1Limits;
  /** Outbound listeners: what the Dapr API's `POST /v1.0/shutdown` calls. */
  readonly requestShutdown?: () => void;
}

/** node's own default handshake deadline, kept when the head timeout is disabled. */
const NODE_HANDSHAKE_TIMEOUT_MS = 120_000;

function fallbackAttributes(request: FastifyRequest, listener: ListenerSpec): RequestAttributes {
  return {
    method: request.raw.method ?? '',
    authority: '',
    host: '',
    path: '/',
    query: '',
    scheme: listener.protocol === 'http' ? 'http' : 'https',
    sourceIp: request.raw.socket.remoteAddress ?? '',
    remoteIp: request.raw.socket.remoteAddress ?? '',
    destinationIp: request.raw.socket.localAddress ?? '',
    destinationPort: listener.port,
    sni: '',
    peer: null,
  };
}

/**
 * The listener's logger, as one whose children are itself. request.log is then the listener's logger:
 * fastify would otherwise build a pino child on every request only to bind its own counter id (`reqId`,
 * not the request's x-request-id), and it re-validates the result of a custom child factory on every
 * request, while its default factory on this logger costs one call.
 */
function childlessLogger(logger: FastifyBaseLogger): FastifyBaseLogger {
  const shared = Object.create(logger) as FastifyBaseLogger;
  shared.child = () => shared;
  return shared;
}

/** The options of an HTTPS listener's server (HTTP/2 with its HTTP/1.1 fallback). */
export function http2Options(tls: Pick<TlsListener, 'options'>, connections: ClientConnectionSettings): Record<string, unknown> {
  return {
    ...tls.options,
    settings: { maxConcurrentStreams: connections.http2MaxConcurrentStreams },
    // node's HTTP/1.1 fallback of the h2 server never sets TCP_NODELAY (http.Server's default does not
    // apply there): the first response on a connection then waited behind the unacknowledged TLS 1.3
    // session tickets for the client's delayed ACK, ~40 ms. Set at accept, for both protocols.
    noDelay: true,
    handshakeTimeout: connections.requestHeadersTimeoutMs > 0 ? connections.requestHeadersTimeoutMs : NODE_HANDSHAKE_TIMEOUT_MS,
  };
}

function fastifyOptions(options: ProxyServerOptions): Record<string, unknown> {
  const connections = options.listener.connections;
  const base: Record<string, unknown> = {
    loggerInstance: childlessLogger(options.logger),
    // No per-request log lines (the access-log plugin writes those); set through a LogController
    // because fastify 5 deprecates the top-level disableRequestLogging option (FSTDEP023).
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    // A draining listener keeps serving the connections it has, with `Connection: close` (fastify adds
    // it while closing) or after a GOAWAY: a 503 there would fail requests a client already sent.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    keepAliveTimeout: connections.idleTimeoutMs,
    http2SessionTimeout: connections.idleTimeoutMs,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 100 },
    schemaController: SCHEMALESS,
  };
  if (options.serverFactory !== undefined) return { ...base, serverFactory: options.serverFactory };
  if (options.tls !== undefined) return { ...base, http2: true, https: http2Options(options.tls, connections) };
  return base;
}

const MISDIRECTED: LocalReply = Object.freeze({
  status: 421,
  flag: '',
  details: 'misdirected_request_sni_host_mismatch',
  message: 'misdirected request: this host is served with other TLS settings; open a connection with its name as SNI',
});

export async function createProxyServer(options: ProxyServerOptions): Promise<FastifyInstance> {
  const { listener, tls } = options;
  const app = Fastify(fastifyOptions(options)) as unknown as FastifyInstance;
  options.tls?.attach(app.server as unknown as Parameters<TlsListener['attach']>[0]);
  // A sidecar's inbound server (serverFactory) dispatches connections to inner servers; upgrades are an edge/outbound feature.
  if (options.serverFactory === undefined) {
    if (tls === undefined) {
      serveH2cBeside(app.server as unknown as HttpServer, {
        maxConcurrentStreams: listener.connections.http2MaxConcurrentStreams,
        idleTimeoutMs: listener.connections.idleTimeoutMs,
        firstBytesTimeoutMs: listener.connections.requestHeadersTimeoutMs,
      });
    }
    const { connections } = options;
    connections.watch(app.server as unknown as NetServer, tls !== undefined);
    attachUpgradeHandling(app, listener.connections.upgrades, () => connections.isDraining);
    applyHttp1Limits(app.server, options.http1Limits);
  }
  app.decorateRequest('mesh', null as unknown as ProxyRequestContext);
  app.removeAllContentTypeParsers();
  // The body is streamed to the upstream untouched: no parsing, no buffering.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  // Synchronous with `done` rather than async: this runs on every request and never waits for anything.
  // Answering here (400, redirect) ends the pipeline by not calling done.
  app.addHook('onRequest', (request, reply, done) => {
    const snapshot = options.currentSnapshot();
    const requestId = acceptRequestId(request.headers['x-request-id']) ?? randomUUID();
    const result = computeAttributes(request, listener, snapshot);
    if (!result.ok) {
      request.mesh = new ProxyRequestContext(snapshot, listener, fallbackAttributes(request, listener), requestId);
      const message = result.status === 431 ? 'request header fields too large' : `bad request: ${result.reason.replace(/_/g, ' ')}`;
      sendLocalReply(request, reply, { status: result.status, flag: 'DPE', details: result.reason, message });
      return;
    }
    request.mesh = new ProxyRequestContext(snapshot, listener, result.attrs, requestId);
    if (hopsOf(request.headers) >= MAX_PROXY_HOPS) {
      sendLocalReply(request, reply, LOOP_DETECTED);
      return;
    }
    if (tls !== undefined && tls.misdirected(result.attrs.sni === '' ? null : result.attrs.sni, result.attrs.host)) {
      sendLocalReply(request, reply, MISDIRECTED);
      return;
    }
    if (listener.httpsRedirectHosts.length > 0 && hostListed(listener.httpsRedirectHosts, result.attrs.host)) {
      const attrs = result.attrs;
      const target = `https://${attrs.host}${attrs.path}${attrs.query === '' ? '' : `?${attrs.query}`}`;
      reply.code(301).header('location', target).send();
      return;
    }
    done();
  });
  const registered = options.plugins.filter((plugin) => plugin.inboundOnly !== true || listener.direction !== 'outbound');
  for (const plugin of registered) if (plugin.everyRequest === true) await app.register(plugin.register);

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    // request.log already carries the listener's name (a child binding); repeating it would duplicate the JSON key.
    request.log.error({ err: error }, 'request failed inside the proxy');
    if (reply.sent || reply.raw.headersSent) return reply;
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    return sendLocalReply(request, reply, { status, flag: status === 500 ? 'LR' : 'DPE', details: error.code ?? 'internal_error', message: status === 500 ? 'internal proxy error' : 'bad request' });
  });
  const daprApi = listener.direction === 'outbound' && options.currentSnapshot().dapr !== null;
  if (daprApi) await registerDaprApi(app, { requestShutdown: options.requestShutdown ?? (() => undefined), events: options.events });
  const proxyHandler = createProxyHandler(options.events);
  // Forwarded traffic: the rest of the pipeline in a context of its own, so its hooks run only for the routes that forward.
  await app.register(async (forwarding) => {
    for (const plugin of registered) if (plugin.everyRequest !== true) await forwarding.register(plugin.register);
    forwarding.setNotFoundHandler(proxyHandler);
    if (daprApi) registerDaprInvocation(forwarding, proxyHandler);
    forwarding.all('/*', proxyHandler);
  });
  return app;
}
