/**
 * The open listeners of the process, reconciled against each snapshot: new ones open, vanished ones
 * drain (in-flight requests finish, up to the drain deadline), unchanged ones are left alone — a
 * reload never drops a connection on a listener it did not remove.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyServerFactory } from 'fastify';
import type { CertificateStore } from '../identity/cert-store.js';
import { createTlsServerOptions } from '../listeners/tls-server.js';
import type { ServedCertificate, TlsListener } from '../listeners/tls-server.js';
import { ClientConnections } from '../listeners/client-connections.js';
import type { Http1Limits } from '../listeners/http1-limits.js';
import type { ListenerSpec } from '../listeners/listener-spec.js';
import type { ProxyEvents } from '../pipeline/capabilities.js';
import type { MeshPlugin } from '../pipeline/types.js';
import { InboundServer } from '../proxy/inbound-server.js';
import { TcpListener } from '../tcp/listener.js';
import { createProxyServer } from '../proxy/server.js';
import type { Snapshot } from '../snapshot/snapshot.js';

/** A passthrough client that sends no ClientHello within this (when MeshConfig sets no header timeout) is closed. */
const CLIENT_HELLO_TIMEOUT_MS = 15_000;

/** Longer than the clients' own pool idle timeouts, so the client side decides when to close. */
const CLIENT_KEEP_ALIVE_MS = 65_000;

interface OpenHttpListener {
  readonly spec: ListenerSpec;
  readonly app: FastifyInstance;
  readonly tls: TlsListener | null;
  readonly connections: ClientConnections;
}

interface OpenTcpListener {
  readonly spec: ListenerSpec;
  readonly server: TcpListener;
  /** Gateway TLS ports that terminate. */
  readonly tls: TlsListener | null;
}

type OpenListener = OpenHttpListener | OpenTcpListener;

export interface ListenerSetOptions {
  readonly currentSnapshot: () => Snapshot;
  readonly plugins: readonly MeshPlugin[];
  /** The plugins' proxy event hooks (plugin-capabilities.ts), gathered once by the runtime. */
  readonly events: ProxyEvents;
  readonly logger: FastifyBaseLogger;
  readonly identity: CertificateStore;
  /** Drain and stop the process (the Dapr API's `POST /v1.0/shutdown`). */
  readonly requestShutdown: () => void;
  /** Called when the certificates the listeners serve change: a TLS listener opened or closed, or its files were reloaded. */
  readonly onServedCertificatesChanged: () => void;
  /** A worker thread (worker-thread.ts): binds its own socket to ports other workers bind too, and counts what it accepts. */
  readonly sharedPorts?: { readonly onConnection: () => void };
}

export class ListenerSet {
  private readonly open = new Map<string, OpenListener>();

  constructor(private readonly options: ListenerSetOptions) {}

  /** Opens what `specs` adds, drains what it removes. Throws (naming the listener) when a port cannot be bound. */
  async reconcile(specs: readonly ListenerSpec[], drainMs: number): Promise<void> {
    const wanted = new Map(specs.map((spec) => [spec.key, spec]));
    const closing: Promise<void>[] = [];
    for (const [key, listener] of this.open) {
      const next = wanted.get(key);
      if (next === undefined || next.fingerprint !== listener.spec.fingerprint) {
        this.open.delete(key);
        closing.push(this.drain(listener, drainMs));
      }
    }
    await Promise.all(closing);
    let openedTls = false;
    for (const spec of specs) {
      if (this.open.has(spec.key)) continue;
      const listener = await this.start(spec);
      this.open.set(spec.key, listener);
      openedTls ||= 'tls' in listener && listener.tls !== null;
    }
    if (openedTls || closing.length > 0) this.options.onServedCertificatesChanged();
  }

  /** The Gateway certificates of every open TLS listener. */
  servedCertificates(): ServedCertificate[] {
    return [...this.open.values()].flatMap((listener) => ('tls' in listener ? (listener.tls?.certificates() ?? []) : []));
  }

  addresses(): { name: string; address: string }[] {
    return [...this.open.values()].map((listener) => {
      const spec = listener.spec;
      const address = 'server' in listener ? listener.server.address() : listener.app.server.address();
      return { name: spec.name, address: typeof address === 'object' && address !== null ? `${address.address}:${address.port}` : String(address) };
    });
  }

  async closeAll(drainMs: number): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((listener) => this.drain(listener, drainMs)));
  }

  private async start(spec: ListenerSpec): Promise<OpenListener> {
    if (spec.protocol === 'tcp' || spec.protocol === 'passthrough' || spec.protocol === 'tls') return this.startTcp(spec);
    const { currentSnapshot, plugins, events, logger, identity } = this.options;
    const listenerLogger = logger.child({ listener: spec.name });
    const tls =
      spec.gatewayPlan === null ? null : await createTlsServerOptions(spec.gatewayPlan, { logger: listenerLogger, onCertificatesChanged: this.options.onServedCertificatesChanged });
    const http1Limits: Http1Limits = { requestHeadersTimeoutMs: spec.connections.requestHeadersTimeoutMs, maxHeaderBytes: currentSnapshot().mesh.maxRequestHeadersKb * 1024 };
    const connections = new ClientConnections(spec.connections, (report) => {
      events.abusiveSession(spec.name);
      listenerLogger.warn({ ...report }, 'HTTP/2 connection closed with GOAWAY ENHANCE_YOUR_CALM: too many streams reset before their response');
    });
    const serverFactory: FastifyServerFactory | undefined =
      spec.direction === 'inbound'
        ? (handler) =>
            new InboundServer(handler, {
              tlsOptions: () => identity.tlsOptions(),
              keepCurrent: (server) => identity.keepServerCurrent(server),
              mode: () => currentSnapshot().inboundMtls[spec.port] ?? 'PERMISSIVE',
              trustDomain: () => currentSnapshot().mesh.trustDomain,
              keepAliveTimeoutMs: CLIENT_KEEP_ALIVE_MS,
              http2MaxConcurrentStreams: spec.connections.http2MaxConcurrentStreams,
              http1Limits,
              connections,
              logger: listenerLogger,
            }) as unknown as ReturnType<FastifyServerFactory>
        : undefined;
    const app = await createProxyServer({
      listener: spec,
      currentSnapshot,
      plugins,
      events,
      logger: listenerLogger,
      connections,
      http1Limits,
      requestShutdown: this.options.requestShutdown,
      ...(tls === null ? {} : { tls }),
      ...(serverFactory === undefined ? {} : { serverFactory }),
    });
    const { sharedPorts } = this.options;
    if (sharedPorts !== undefined) app.server.on('connection', sharedPorts.onConnection);
    try {
      await app.listen({
        host: spec.bind,
        port: spec.port,
        // fastify only knows the scheme of servers it created itself: an mTLS inbound listener is https too.
        listenTextResolver: (address) => `Server listening at ${address.replace(/^https?:/, `${spec.protocol}:`)}`,
        // Node.js >= 22.12 (concurrency.ts checks before any worker starts); @types/node 20 does not know the option.
        ...(sharedPorts === undefined ? {} : ({ reusePort: true } as object)),
      });
    } catch (error) {
      tls?.close();
      await app.close();
      throw new Error(`cannot open listener ${spec.name}: ${(error as Error).message}`, { cause: error });
    }
    listenerLogger.info({ address: `${spec.bind}:${spec.port}`, protocol: spec.protocol }, 'listener open');
    return { spec, app, tls, connections };
  }

  private async startTcp(spec: ListenerSpec): Promise<OpenTcpListener> {
    const { currentSnapshot, plugins, logger, identity } = this.options;
    const listenerLogger = logger.child({ listener: spec.name });
    const tls =
      spec.protocol === 'tls' && spec.gatewayPlan !== null
        ? await createTlsServerOptions(spec.gatewayPlan, { logger: listenerLogger, onCertificatesChanged: this.options.onServedCertificatesChanged })
        : null;
    const server = new TcpListener({
      proxy: {
        spec,
        currentSnapshot,
        plugins: plugins.filter((plugin) => plugin.connections !== undefined && (plugin.inboundOnly !== true || spec.direction !== 'outbound')),
        logger: listenerLogger,
        random: Math.random,
      },
      logger: listenerLogger,
      meshTls:
        spec.direction === 'inbound'
          ? {
              tlsOptions: () => identity.tlsOptions(),
              keepCurrent: (tlsServer) => identity.keepServerCurrent(tlsServer),
              mode: () => currentSnapshot().inboundMtls[spec.port] ?? 'PERMISSIVE',
              trustDomain: () => currentSnapshot().mesh.trustDomain,
            }
          : null,
      peekSni: spec.protocol === 'passthrough',
      terminate: tls,
      clientHelloTimeoutMs: spec.connections.requestHeadersTimeoutMs || CLIENT_HELLO_TIMEOUT_MS,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error) => reject(new Error(`cannot open listener ${spec.name}: ${error.message}`, { cause: error })));
        server.listen({ host: spec.bind, port: spec.port }, resolve);
      });
    } catch (error) {
      tls?.close();
      throw error;
    }
    listenerLogger.info({ address: `${spec.bind}:${spec.port}`, protocol: spec.protocol }, 'listener open');
    return { spec, server, tls };
  }

  private async drain(listener: OpenListener, drainMs: number): Promise<void> {
    if ('server' in listener) return this.drainTcp(listener, drainMs);
    let timer: NodeJS.Timeout | undefined;
    listener.connections.startDrain();
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        // Past the drain deadline the remaining connections are cut (every one is tracked there, whichever server accepted it).
        listener.connections.closeAll();
        resolve();
      }, drainMs);
    });
    await Promise.race([listener.app.close(), deadline]);
    clearTimeout(timer);
    listener.tls?.close();
  }

  /** Stops accepting; open connections run until they close or the drain deadline cuts them. */
  private async drainTcp(listener: OpenTcpListener, drainMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        listener.server.closeAllConnections();
        resolve();
      }, drainMs);
    });
    await Promise.race([closed, deadline]);
    clearTimeout(timer);
    listener.tls?.close();
  }
}
