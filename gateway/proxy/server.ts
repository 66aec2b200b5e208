/**
 * One fastify instance per listener, composed the same way for every mode: the core context hook,
 * then the pipeline table, then the terminal proxy step. Modes differ only in the ListenerSpec and the
 * TLS/server factory they pass in.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyRequest, FastifyServerFactory } from 'fastify';
import { randomUUID } from 'node:crypto';
import { sendLocalReply } from '../http/local-reply.js';
import { SCHEMALESS } from '../http/schemaless.js';
import type { MeshPlugin, RequestAttributes } from '../pipeline/types.js';
import type { Snapshot } from '../runtime/snapshot.js';
import { registerDaprApi } from '../dapr/api/routes.js';
import { computeAttributes } from './attributes.js';
import { acceptRequestId } from './forward-headers.js';
import type { TlsListener } from '../listeners/tls-server.js';
import { hostListed } from './listener-spec.js';
import { LOOP_DETECTED, MAX_PROXY_HOPS, hopsOf } from './loop-guard.js';
import type { ListenerSpec } from './listener-spec.js';
import { ProxyRequestContext } from './proxy-context.js';
import { proxyHandler } from './terminal.js';
import { attachUpgradeHandling } from './websocket.js';

export interface ProxyServerOptions {
  readonly listener: ListenerSpec;
  /** The snapshot a NEW request starts on; in-flight requests keep theirs. */
  readonly currentSnapshot: () => Snapshot;
  readonly plugins: readonly MeshPlugin[];
  readonly logger: FastifyBaseLogger;
  readonly tls?: TlsListener;
  /** For listeners that accept TLS and plaintext on one port (PERMISSIVE). */
  readonly serverFactory?: FastifyServerFactory;
  /** Idle keep-alive timeout for client connections. */
  readonly keepAliveTimeoutMs?: number;
  /** Outbound listeners: what the Dapr API's `POST /v1.0/shutdown` calls. */
  readonly requestShutdown?: () => void;
}

function fallbackAttributes(request: FastifyRequest, listener: ListenerSpec): RequestAttributes {
  return {
    method: request.raw.method ?? '',
    authority: '',
    host: '',
    path: '/',
    query: '',
    scheme: listener.protocol,
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

function fastifyOptions(options: ProxyServerOptions): Record<string, unknown> {
  const base: Record<string, unknown> = {
    loggerInstance: childlessLogger(options.logger),
    // No per-request log lines (the access-log plugin writes those); set through a LogController
    // because fastify 5 deprecates the top-level disableRequestLogging option (FSTDEP023).
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 100 },
    schemaController: SCHEMALESS,
  };
  if (options.serverFactory !== undefined) return { ...base, serverFactory: options.serverFactory };
  if (options.tls !== undefined) return { ...base, http2: true, https: options.tls.options };
  return base;
}

export async function createProxyServer(options: ProxyServerOptions): Promise<FastifyInstance> {
  const { listener } = options;
  const app = Fastify(fastifyOptions(options)) as unknown as FastifyInstance;
  options.tls?.attach(app.server as unknown as Parameters<TlsListener['attach']>[0]);
  // A sidecar's inbound server (serverFactory) dispatches connections to inner servers; upgrades are an edge/outbound feature.
  if (options.serverFactory === undefined) {
    attachUpgradeHandling(app);
    // Read by node's HTTP/1 parser for every new connection (also the HTTP/1.1 fallback of the h2 server);
    // without it node's 16 KiB default would silently override MeshConfig.maxRequestHeadersKb.
    (app.server as { maxHeaderSize?: number }).maxHeaderSize = options.currentSnapshot().mesh.maxRequestHeadersKb * 1024;
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
      sendLocalReply(request, reply, { status: 400, flag: 'DPE', details: result.reason, message: `bad request: ${result.reason.replace(/_/g, ' ')}` });
      return;
    }
    request.mesh = new ProxyRequestContext(snapshot, listener, result.attrs, requestId);
    if (hopsOf(request.headers) >= MAX_PROXY_HOPS) {
      sendLocalReply(request, reply, LOOP_DETECTED);
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
  for (const plugin of options.plugins) await app.register(plugin.register);

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    request.log.error({ err: error, listener: listener.name }, 'request failed inside the proxy');
    if (reply.sent || reply.raw.headersSent) return reply;
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    return sendLocalReply(request, reply, { status, flag: status === 500 ? 'LR' : 'DPE', details: error.code ?? 'internal_error', message: status === 500 ? 'internal proxy error' : 'bad request' });
  });
  app.setNotFoundHandler(proxyHandler);
  if (listener.direction === 'outbound' && options.currentSnapshot().dapr !== null) {
    await registerDaprApi(app, proxyHandler, { requestShutdown: options.requestShutdown ?? (() => undefined) });
  }
  app.all('/*', proxyHandler);
  return app;
}
