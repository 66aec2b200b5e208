/**
 * One running proxy: the current snapshot, the long-lived parts that survive reloads (cluster pools,
 * identity, listeners), the admin listener, and the lifecycle — start, reload (file watch, SIGHUP,
 * POST /reload), drain and exit. Reloads are serialised and build the new snapshot off the request
 * path; an invalid config is logged and counted, and the last good snapshot keeps serving.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AdminSource, AdminView, ReloadOutcome } from '../admin/server.js';
import type { Readiness } from '../admin/status-server.js';
import { parseDuration } from '../config/duration.js';
import type { Diagnostic } from '../config/resource.js';
import { watchConfig } from '../config/watch.js';
import type { ConfigWatcher } from '../config/watch.js';
import type { CertificateStore } from '../identity/cert-store.js';
import { meshIdentityProvider } from '../identity/mesh-identity.js';
import type { MetricsExposition, ProxyEvents, ReloadResult } from '../pipeline/capabilities.js';
import type { MeshPlugin, ProxyMode } from '../pipeline/types.js';
import { ClusterManager } from '../upstream/cluster-manager.js';
import { MESHGATE_VERSION } from '../version.js';
import { pluginDeliveryObserver } from '../dapr/pubsub/delivery.js';
import { activateDapr, shutdownDapr } from '../dapr/snapshot.js';
import { adminViews } from './admin-views.js';
import { workerCount } from './concurrency.js';
import { configDump } from './config-dump.js';
import { openCertificateStore, presentsMeshIdentity } from './identity.js';
import { ListenerSet } from './listener-set.js';
import { listenerSpecs } from './listener-specs.js';
import { OperatorPorts } from './operator-ports.js';
import type { OperatorAddresses } from './operator-ports.js';
import { compilePortable, portableDiagnostics, toPortable } from './portable-config.js';
import type { CompileSummary, PortableConfig } from './portable-config.js';
import { explainerOf, metricsExpositionOf, proxyEventsOf } from './plugin-capabilities.js';
import { count, notApplied, rejectedReload, restartOnlyChanges } from './reload-outcome.js';
import { activate, compileConfig, compileRead, discardCompiled, readConfig } from '../snapshot/snapshot.js';
import type { CompileOptions, CompileResult, CompiledConfig, Snapshot } from '../snapshot/snapshot.js';
import type { HandOff, Preparation, WorkerRole } from './worker-protocol.js';

export interface RuntimeOptions {
  readonly configPath: string;
  readonly mode: ProxyMode;
  readonly workloadName?: string;
  readonly plugins: readonly MeshPlugin[];
  readonly logger: FastifyBaseLogger;
  /** Overrides MeshConfig.adminAddress (several proxies on one host need one admin port each). */
  readonly adminAddress?: string;
  /** Override MeshConfig.statusAddress / metricsAddress; '' turns that listener off. */
  readonly statusAddress?: string;
  readonly metricsAddress?: string;
  /** Watch the config directory (default true). */
  readonly watch?: boolean;
  /** Called once the process should exit (after drain). */
  readonly onExit?: (code: number) => void;
  /** Clock of upstream outlier ejections (default Date.now); tests advance their own instead of sleeping. */
  readonly now?: () => number;
  /**
   * `meshgate run`'s `--concurrency` (a number) or 'default' (MeshConfig, else the mode's default): when
   * that comes to more than one worker, start() opens nothing and hands off (worker-supervisor.ts).
   * Unset: this runtime serves alone.
   */
  readonly concurrency?: number | 'default';
  /** Set in a worker thread (worker-thread.ts): the supervisor owns the operator listeners, the config watch and the signals. */
  readonly worker?: WorkerRole;
}

export type StartResult =
  | { readonly ok: true; readonly handOff?: HandOff }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

export class GatewayRuntime {
  private snapshot: Snapshot | null = null;
  private generation = 0;
  private draining = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private readonly startedAt = new Date();
  private clusters: ClusterManager | null = null;
  private identity: CertificateStore | null = null;
  private listeners: ListenerSet | null = null;
  private readonly operatorPorts = new OperatorPorts();
  private watcher: ConfigWatcher | null = null;
  private lastRejected: readonly Diagnostic[] = [];
  private servedCertificateSeries = new Set<string>();
  private stopObservingUpstreams: (() => void) | null = null;
  private starting: Promise<StartResult> | null = null;
  /** A worker's next config, built by prepare and waiting for the supervisor's commit. */
  private prepared: CompiledConfig | null = null;
  private adminViews: AdminView[] = [];
  private readonly events: ProxyEvents;
  private readonly exposition: MetricsExposition;
  private readonly onSighup = (): void => void this.reload('SIGHUP');

  constructor(private readonly options: RuntimeOptions) {
    this.generation = (options.worker?.firstGeneration ?? 1) - 1;
    this.events = proxyEventsOf(options.plugins);
    this.exposition = metricsExpositionOf(options.plugins);
  }

  current(): Snapshot {
    if (this.snapshot === null) throw new Error('no active snapshot');
    return this.snapshot;
  }

  start(): Promise<StartResult> {
    this.starting = this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<StartResult> {
    const { options } = this;
    this.events.buildInfo(MESHGATE_VERSION);
    const compiled = await this.compileFirst();
    if ('handOff' in compiled) return { ok: true, handOff: compiled.handOff };
    if (!compiled.ok) return { ok: false, diagnostics: compiled.diagnostics };
    const { config } = compiled;
    this.identity = await openCertificateStore(options.configPath, config.mesh, config.workload, options.logger, presentsMeshIdentity(config));
    this.identity.on('rotated', () => this.recordCertificate());
    this.recordCertificate();
    this.clusters = new ClusterManager({
      identity: meshIdentityProvider(this.identity, config.mesh.trustDomain),
      trustDomain: config.mesh.trustDomain,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const clusters = this.clusters;
    this.stopObservingUpstreams = this.events.observeUpstreams(() => clusters.stats());
    this.snapshot = activate(config, options.mode, ++this.generation, this.clusters);
    await this.clusters.dnsSettled();
    this.publish(this.snapshot);
    this.listeners = new ListenerSet({
      currentSnapshot: () => this.current(),
      plugins: options.plugins,
      events: this.events,
      logger: options.logger,
      identity: this.identity,
      requestShutdown: options.worker?.requestShutdown ?? (() => void this.shutdown('dapr shutdown API')),
      ...(options.worker === undefined ? {} : { sharedPorts: { onConnection: options.worker.onConnection } }),
      onServedCertificatesChanged: () => this.recordServedCertificates(),
    });
    await this.listeners.reconcile(listenerSpecs(this.snapshot), this.drainMs());
    this.adminViews = adminViews({
      clusters: this.clusters,
      identity: this.identity,
      servedCertificates: () => this.listeners?.servedCertificates() ?? [],
      snapshot: () => this.snapshot,
      exposition: this.exposition,
      explainer: explainerOf(options.plugins),
    });
    if (options.worker !== undefined) {
      options.logger.info({ generation: this.generation, listeners: this.listeners.addresses() }, 'worker ready');
      return { ok: true };
    }
    const source: AdminSource = {
      mode: options.mode,
      version: MESHGATE_VERSION,
      startedAt: this.startedAt,
      generation: () => this.snapshot?.generation ?? null,
      isDraining: () => this.draining,
      configDump: () => this.configDump(),
      reload: () => this.reload('admin'),
      shutdown: () => void this.shutdown('admin'),
    };
    const bindings = await this.operatorPorts.open({
      ...options,
      source,
      views: this.adminViews,
      mesh: this.snapshot.mesh,
      readiness: () => this.readiness(),
      renderMetrics: () => this.exposition.prometheus(),
    });
    if (options.watch !== false) this.watcher = watchConfig(options.configPath, () => void this.reload('file change'));
    process.on('SIGHUP', this.onSighup);
    options.logger.info({ generation: this.generation, listeners: this.listeners.addresses(), ...bindings }, 'meshgate ready');
    return { ok: true };
  }

  /**
   * A worker is told the diagnostics by its supervisor: the rejected ones, which it alone sees, and the
   * running config's, placed in the files.
   */
  configDump(lastRejected: readonly Diagnostic[] = this.lastRejected, diagnostics?: readonly Diagnostic[]): unknown {
    const { snapshot } = this;
    return configDump(snapshot === null || diagnostics === undefined ? snapshot : { ...snapshot, diagnostics }, lastRejected, this.options.plugins);
  }

  /** The admin API's feature views over this runtime's clusters, certificates and snapshot (empty until started). */
  views(): readonly AdminView[] {
    return this.adminViews;
  }

  operatorAddresses(): OperatorAddresses {
    return this.operatorPorts.addresses();
  }

  /** What the status port says: ready once a snapshot serves, not ready again while draining. */
  readiness(): Readiness {
    if (this.draining) return { ready: false, reason: 'draining' };
    if (this.snapshot === null) return { ready: false, reason: 'no active configuration' };
    return { ready: true };
  }

  /** Serialised: a reload waits for the previous one, so snapshots are applied in order. */
  reload(trigger: string): Promise<ReloadOutcome> {
    if (this.options.worker !== undefined) return Promise.reject(new Error('a worker reloads only what its supervisor compiled (prepare, commit)'));
    return this.serialised(async () => {
      const next = await this.compileNext(trigger, undefined);
      return 'outcome' in next ? next.outcome : this.swap(next.config, this.generation + 1, trigger);
    });
  }

  /**
   * A worker's reload, first half: its closures from the supervisor's read, built but not serving; the
   * answer carries its compile's hash and diagnostics, the reload's. The supervisor commits once every
   * worker has prepared, so that they all switch within the time a message takes, not a compile's.
   */
  prepare(config: PortableConfig, trigger: string): Promise<Preparation> {
    return this.serialised(async () => {
      this.abandon();
      const next = await this.compileNext(trigger, config);
      if ('outcome' in next) return { ok: false, outcome: next.outcome, diagnostics: portableDiagnostics(next.rejected ?? []) };
      this.prepared = next.config;
      return { ok: true, hash: next.config.hash, diagnostics: portableDiagnostics(next.config.diagnostics) };
    });
  }

  /** Second half: what prepare built serves from now on, under the supervisor's generation number and with the diagnostics it placed. */
  commit(generation: number, diagnostics: CompileSummary['diagnostics'], trigger: string): Promise<ReloadOutcome> {
    return this.serialised(async () => {
      const { prepared } = this;
      this.prepared = null;
      if (prepared === null) return notApplied(this.generation, 'nothing prepared', 1);
      return this.swap({ ...prepared, diagnostics }, generation, trigger);
    });
  }

  /** Another worker could not prepare: what this one prepared will never serve. */
  abandon(): void {
    if (this.prepared !== null) discardCompiled(this.prepared.pluginStates, this.options.plugins);
    this.prepared = null;
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.reloadChain.then(work);
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  async shutdown(trigger: string): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // A signal that lands while start() is still opening sockets waits for it: nothing start opens may outlive the shutdown.
    await this.starting?.catch(() => undefined);
    const { logger } = this.options;
    logger.info({ trigger, drainMs: this.drainMs() }, 'draining: /ready is 503, listeners stop accepting, in-flight requests finish');
    process.off('SIGHUP', this.onSighup);
    this.watcher?.close();
    await this.listeners?.closeAll(this.drainMs());
    for (const plugin of this.options.plugins) await plugin.shutdown?.();
    await shutdownDapr(this.snapshot?.dapr ?? null);
    await this.clusters?.close();
    this.stopObservingUpstreams?.();
    this.identity?.close();
    await this.operatorPorts.close();
    logger.info('meshgate stopped');
    this.options.onExit?.(0);
  }

  /** The next config compiled, or why there is nothing to swap to (with a rejected config's diagnostics). */
  private async compileNext(
    trigger: string,
    posted: PortableConfig | undefined,
  ): Promise<{ readonly config: CompiledConfig } | { readonly outcome: ReloadOutcome; readonly rejected?: readonly Diagnostic[] }> {
    const { logger } = this.options;
    const previous = this.current();
    if (this.draining) return { outcome: notApplied(previous.generation, 'draining') };
    let compiled;
    try {
      compiled = await this.compile(posted);
    } catch (error) {
      this.recordReload('failed');
      logger.error({ err: error, trigger }, 'reload failed; the current configuration keeps serving');
      return { outcome: notApplied(previous.generation, (error as Error).message, 1) };
    }
    // A worker's rejection is the supervisor's to log and count: it places the fields the diagnostics name.
    if (!compiled.ok && this.options.worker !== undefined) {
      return { outcome: { ...notApplied(previous.generation, 'configuration rejected'), errors: count(compiled.diagnostics, 'error') }, rejected: compiled.diagnostics };
    }
    if (!compiled.ok) {
      this.lastRejected = compiled.diagnostics;
      this.recordReload('rejected');
      this.setConfigDiagnostics(compiled.diagnostics);
      return { outcome: rejectedReload(logger, compiled.diagnostics, trigger, previous.generation) };
    }
    if (compiled.config.hash === previous.hash) {
      discardCompiled(compiled.config.pluginStates, this.options.plugins);
      // Back to the running content after a rejection: nothing to swap, but the state must stop saying "rejected".
      if (this.lastRejected.length > 0) {
        this.lastRejected = [];
        this.setConfigDiagnostics(compiled.config.diagnostics);
        logger.info({ trigger, generation: previous.generation }, 'configuration is valid again and equals the running one; nothing to reload');
      }
      return { outcome: { ok: true, generation: previous.generation, errors: 0, warnings: count(compiled.config.diagnostics, 'warning'), message: 'unchanged' } };
    }
    return { config: compiled.config };
  }

  private async swap(config: CompiledConfig, generation: number, trigger: string): Promise<ReloadOutcome> {
    const { logger } = this.options;
    const previous = this.current();
    const restartOnly = restartOnlyChanges(previous.mesh, config.mesh, this.options);
    if (restartOnly.length > 0) {
      logger.warn({ trigger, fields: restartOnly }, 'these MeshConfig fields take effect only after a restart; the running values are kept');
    }
    this.generation = generation;
    const snapshot = activate(config, this.options.mode, generation, this.clusters as ClusterManager);
    await (this.clusters as ClusterManager).dnsSettled();
    this.snapshot = snapshot;
    this.lastRejected = [];
    this.publish(snapshot);
    try {
      await this.listeners?.reconcile(listenerSpecs(snapshot), this.drainMs());
    } catch (error) {
      logger.error({ err: error }, 'a listener of the new configuration could not be opened');
    }
    this.recordReload('applied');
    logger.info({ trigger, generation: snapshot.generation, hash: snapshot.hash.slice(0, 12) }, 'configuration reloaded');
    return { ok: true, generation: snapshot.generation, errors: 0, warnings: count(snapshot.diagnostics, 'warning'), message: 'applied' };
  }

  /**
   * The first snapshot's compile, or, when more than one worker is to serve, only the read they build
   * from (the hand-off): the closures are the workers' to build.
   */
  private async compileFirst(): Promise<CompileResult | { readonly handOff: HandOff }> {
    const { options } = this;
    if (options.worker !== undefined) {
      const compiled = await this.compile(options.worker.config);
      // A replacement worker: the supervisor's diagnostics of the config the others serve.
      const { diagnostics } = options.worker;
      return compiled.ok && diagnostics !== null ? { ok: true, config: { ...compiled.config, diagnostics } } : compiled;
    }
    if (options.concurrency === undefined) return this.compile(undefined);
    const read = await readConfig(options.configPath, this.compileOptions());
    this.events.configCompiled();
    if (!read.ok) return read;
    const { mesh } = read.read;
    const { workers, limitedBy } = workerCount(options.concurrency === 'default' ? undefined : options.concurrency, mesh.concurrency, options.mode);
    if (limitedBy !== null) options.logger.warn({ concurrency: options.concurrency === 'default' ? mesh.concurrency : options.concurrency }, `running one worker: ${limitedBy}`);
    if (workers > 1) return { handOff: { workers, read: read.read, config: await toPortable(read.read) } };
    return compileRead(read.read, options.configPath, this.compileOptions(), [...read.read.diagnostics]);
  }

  /** A worker builds its closures from the supervisor's read (portable-config.ts); a proxy on its own reads the files. */
  private async compile(posted: PortableConfig | undefined): Promise<CompileResult> {
    if (posted !== undefined) return compilePortable(posted, this.options.configPath, this.compileOptions());
    const compiled = await compileConfig(this.options.configPath, this.compileOptions());
    this.events.configCompiled();
    return compiled;
  }

  /** With workers, the supervisor counts reloads and shows the diagnostics: it alone compiles, and sees the rejected ones. */
  private recordReload(result: ReloadResult): void {
    if (this.options.worker === undefined) this.events.reload(result);
  }

  private setConfigDiagnostics(diagnostics: readonly Diagnostic[]): void {
    if (this.options.worker === undefined) this.events.configDiagnostics(diagnostics);
  }

  private compileOptions(): CompileOptions {
    const { mode, workloadName, plugins, logger } = this.options;
    return workloadName === undefined ? { mode, plugins, logger } : { mode, workloadName, plugins, logger };
  }

  private publish(snapshot: Snapshot): void {
    this.events.configGeneration(snapshot.generation);
    this.setConfigDiagnostics(snapshot.diagnostics);
    for (const plugin of this.options.plugins) plugin.activated?.(snapshot.pluginStates.get(plugin.name));
    activateDapr(snapshot.dapr, { deliveries: pluginDeliveryObserver(this.options.plugins, snapshot.pluginStates) });
  }

  private recordCertificate(): void {
    if (this.identity !== null) this.events.certificateExpiry(this.identity.identity.principal, this.identity.expiresAt);
  }

  /** One expiry series per Gateway server certificate being served; servers that went away lose theirs. */
  private recordServedCertificates(): void {
    const served = this.listeners?.servedCertificates() ?? [];
    const current = new Set(served.map((certificate) => certificate.server));
    for (const server of this.servedCertificateSeries) if (!current.has(server)) this.events.certificateGone(server);
    for (const certificate of served) this.events.certificateExpiry(certificate.server, certificate.validTo);
    this.servedCertificateSeries = current;
  }

  private drainMs(): number {
    return this.snapshot === null ? 5000 : parseDuration(this.snapshot.mesh.drainDuration);
  }
}
