/**
 * The open listeners of the process, reconciled against each snapshot: new ones open, vanished ones
 * drain (in-flight requests finish, up to the drain deadline), unchanged ones are left alone — a
 * reload never drops a connection on a listener it did not remove.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyServerFactory } from 'fastify';
import type { CertificateStore } from '../identity/cert-store.js';
import { createTlsServerOptions } from '../listeners/tls-server.js';
import type { TlsListener } from '../listeners/tls-server.js';
import type { ClientConnections } from '../listeners/client-connections.js';
import type { MeshPlugin } from '../pipeline/types.js';
import { InboundServer } from '../proxy/inbound-server.js';
import type { ListenerSpec } from '../proxy/listener-spec.js';
import { createProxyServer } from '../proxy/server.js';
import type { Snapshot } from './snapshot.js';
import { recordAbusiveSession } from '../../plugins/metrics/meshgate-metrics.js';

/** Longer than the clients' own pool idle timeouts, so the client side decides when to close. */
const CLIENT_KEEP_ALIVE_MS = 65_000;

interface OpenListener {
  readonly spec: ListenerSpec;
  readonly app: FastifyInstance;
  readonly tls: TlsListener | null;
  readonly connections: ClientConnections | null;
}

export interface ListenerSetOptions {
  readonly currentSnapshot: () => Snapshot;
  readonly plugins: readonly MeshPlugin[];
  readonly logger: FastifyBaseLogger;
  readonly identity: CertificateStore;
  /** Drain and stop the process (the Dapr API's `POST /v1.0/shutdown`). */
  readonly requestShutdown: () => void;
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
    for (const spec of specs) {
      if (!this.open.has(spec.key)) this.open.set(spec.key, await this.start(spec));
    }
  }

  addresses(): { name: string; address: string }[] {
    return [...this.open.values()].map(({ spec, app }) => {
      const address = app.server.address();
      return { name: spec.name, address: typeof address === 'object' && address !== null ? `${address.address}:${address.port}` : String(address) };
    });
  }

  async closeAll(drainMs: number): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((listener) => this.drain(listener, drainMs)));
  }

  private async start(spec: ListenerSpec): Promise<OpenListener> {
    const { currentSnapshot, plugins, logger, identity } = this.options;
    const listenerLogger = logger.child({ listener: spec.name });
    const tls = spec.gatewayPlan === null ? null : await createTlsServerOptions(spec.gatewayPlan, listenerLogger);
    const serverFactory: FastifyServerFactory | undefined =
      spec.direction === 'inbound'
        ? (handler) =>
            new InboundServer(handler, {
              tlsOptions: () => identity.tlsOptions(),
              keepCurrent: (server) => identity.keepServerCurrent(server),
              mode: () => currentSnapshot().inboundMtls,
              trustDomain: () => currentSnapshot().mesh.trustDomain,
              keepAliveTimeoutMs: CLIENT_KEEP_ALIVE_MS,
              logger: listenerLogger,
            }) as unknown as ReturnType<FastifyServerFactory>
        : undefined;
    const { app, connections } = await createProxyServer({
      listener: spec,
      currentSnapshot,
      plugins,
      logger: listenerLogger,
      onAbusiveSession: (report) => {
        recordAbusiveSession(spec.name);
        listenerLogger.warn({ ...report }, 'HTTP/2 connection closed with GOAWAY ENHANCE_YOUR_CALM: too many streams reset before their response');
      },
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

  private async drain(listener: OpenListener, drainMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    listener.connections?.startDrain();
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        // Past the drain deadline the remaining connections are cut.
        listener.app.server.closeAllConnections?.();
        listener.connections?.closeAll();
        resolve();
      }, drainMs);
    });
    await Promise.race([listener.app.close(), deadline]);
    clearTimeout(timer);
    listener.tls?.close();
  }
}
