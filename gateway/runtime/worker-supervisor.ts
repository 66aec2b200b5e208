/**
 * A proxy with more than one worker (`--concurrency N`, concurrency.ts): the main thread supervises N
 * worker threads (worker-thread.ts) that each serve every proxy listener, and keeps what must exist
 * once — the admin, status and metrics ports, the config watch and the signals.
 *
 * The supervisor reads and validates the config once per start and reload (file watch, SIGHUP,
 * POST /reload); a config that fails there never reaches a worker. A valid one goes to every worker
 * as plain data (portable-config.ts), from which each builds only its closures — the supervisor builds
 * none: what only that build finds (route-table and plugin-load errors, warnings) comes back with the
 * workers' answers, placed by the supervisor at the file, line and field, logged, counted and shown
 * once. Once every worker has built the new snapshot, all switch to it together (prepare, then
 * commit), and the reload is reported done once every live worker serves it; if one refused it, every
 * worker keeps the last good generation. Drain and SIGHUP reach every worker. A worker that stops
 * without being asked is replaced (same index, so its connection series continues) and counted; the
 * replacement starts from the current compile, between reloads, never from the files.
 */
import type { FastifyBaseLogger } from 'fastify';
import { Worker } from 'node:worker_threads';
import type { AdminSource, ReloadOutcome } from '../admin/server.js';
import type { Readiness } from '../admin/status-server.js';
import { parseDuration } from '../config/duration.js';
import type { Diagnostic } from '../config/resource.js';
import { watchConfig } from '../config/watch.js';
import type { ConfigWatcher } from '../config/watch.js';
import type { MetricsExposition, ProxyEvents } from '../pipeline/capabilities.js';
import type { MeshPlugin, ProxyMode } from '../pipeline/types.js';
import { MESHGATE_VERSION } from '../version.js';
import { workersViews } from './admin-views.js';
import { OperatorPorts } from './operator-ports.js';
import type { OperatorAddresses } from './operator-ports.js';
import { metricsExpositionOf, proxyEventsOf } from './plugin-capabilities.js';
import { placeDiagnostics, toPortable } from './portable-config.js';
import type { CompileSummary, PortableConfig } from './portable-config.js';
import { count, notApplied, rejectedReload } from './reload-outcome.js';
import { readConfig } from '../snapshot/snapshot.js';
import type { CompileOptions, ReadConfig } from '../snapshot/snapshot.js';
import { createWorkerMemory, releaseHeldBy } from './worker-memory.js';
import type { FromWorker, Preparation, ToWorker, WorkerData } from './worker-protocol.js';
import { WorkerSlot } from './worker-slot.js';

export interface SupervisorOptions {
  readonly configPath: string;
  readonly mode: ProxyMode;
  readonly workloadName?: string;
  /** The table the workers serve: the supervisor compiles with it (kinds, diagnostics, compile-time checks) and serves its metrics. */
  readonly plugins: readonly MeshPlugin[];
  /** The workers' entry module: it hands the same table to worker-thread.ts (gateway/composition/worker-main.ts). */
  readonly workerEntry: URL;
  readonly logger: FastifyBaseLogger;
  /** Each worker builds its own logger at this level (a pino instance cannot cross threads). */
  readonly logLevel: string;
  readonly workers: number;
  /** The start's read (the hand-off's): the workers' first snapshot; its MeshConfig's operator ports are bound once, by the supervisor. */
  readonly read: ReadConfig;
  readonly config: PortableConfig;
  readonly adminAddress?: string;
  readonly statusAddress?: string;
  readonly metricsAddress?: string;
  /** Watch the config directory (default true). */
  readonly watch?: boolean;
  readonly onExit?: (code: number) => void;
}

/** A reload whose workers still disagree with the compile after this many rounds is reported failed (plugin modules keep changing). */
const RELOAD_ROUNDS = 3;
/** How long past the drain deadline a worker may take to exit before it is terminated. */
const STUCK_WORKER_GRACE_MS = 5000;

/** A worker's compile refused the start's config: what it found, placed in the files (`run` prints them as `validate` would). */
export class StartRefused extends Error {
  constructor(
    message: string,
    readonly diagnostics: readonly Diagnostic[],
  ) {
    super(message);
  }
}

export class WorkerSupervisor {
  private readonly slots: (WorkerSlot | null)[];
  /** Every thread not yet exited, serving or still starting: drain must reach a starting one too. */
  private readonly alive = new Set<Worker>();
  /** The config every worker serves (or is being brought to), what their compile of it said, and its generation number. */
  private config: PortableConfig;
  /** Null until the first worker has compiled the start's config. */
  private summary: CompileSummary | null = null;
  private generation = 1;
  private lastRejected: readonly Diagnostic[] = [];
  private draining = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private readonly startedAt = new Date();
  private readonly operatorPorts = new OperatorPorts();
  private watcher: ConfigWatcher | null = null;
  private starting: Promise<void> | null = null;
  private readonly memory = createWorkerMemory();
  private readonly events: ProxyEvents;
  private readonly exposition: MetricsExposition;
  private readonly onSighup = (): void => void this.reload('SIGHUP');

  constructor(private readonly options: SupervisorOptions) {
    this.slots = Array.from({ length: options.workers }, () => null);
    this.config = options.config;
    this.events = proxyEventsOf(options.plugins);
    this.exposition = metricsExpositionOf(options.plugins);
  }

  /** Resolves once every worker serves; rejects (after stopping the others) when one cannot. */
  start(): Promise<void> {
    this.starting = this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    const { options } = this;
    this.events.workersRunning(options.workers);
    this.events.configGeneration(this.generation);
    try {
      const [first] = await Promise.all(this.slots.map((_, index) => this.spawn(index, options.read)));
      const placed = placeDiagnostics(first?.diagnostics ?? [], options.read.resources);
      this.summary = { hash: first?.hash ?? options.read.contentHash, diagnostics: [...options.read.diagnostics, ...placed] };
    } catch (error) {
      await this.stopWorkers('start failure');
      throw error;
    }
    this.events.configDiagnostics(this.summary.diagnostics);
    const source: AdminSource = {
      mode: options.mode,
      version: MESHGATE_VERSION,
      startedAt: this.startedAt,
      generation: () => this.generation,
      isDraining: () => this.draining,
      configDump: async () => (await this.first().ask({ type: 'config-dump', lastRejected: this.lastRejected, diagnostics: this.running().diagnostics })).dump,
      reload: () => this.reload('admin'),
      shutdown: () => void this.shutdown('admin'),
    };
    const bindings = await this.operatorPorts.open({
      ...options,
      source,
      views: workersViews({
        exposition: this.exposition,
        workerMetrics: () => this.workerMetrics(),
        askOne: async (view) => (await this.first().ask({ type: 'view', ...view })).answer,
      }),
      mesh: this.config.mesh,
      readiness: () => this.readiness(),
      renderMetrics: async () => this.exposition.mergedPrometheus(await this.workerMetrics()),
    });
    if (options.watch !== false) this.watcher = watchConfig(options.configPath, () => void this.reload('file change'));
    process.on('SIGHUP', this.onSighup);
    options.logger.info({ generation: this.generation, workers: options.workers, ...bindings }, 'meshgate ready');
  }

  /** Serialised like a single runtime's: a reload waits for the previous one, and for a replacement worker's start. */
  reload(trigger: string): Promise<ReloadOutcome> {
    return this.serialised(() => this.reloadOnce(trigger));
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.reloadChain.then(work);
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  async shutdown(trigger: string): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // A signal that lands while start() is still spawning workers waits for it: the admin, status and
    // metrics ports start opens after them must not outlive the shutdown (they would keep the process up).
    await this.starting?.catch(() => undefined);
    this.options.logger.info({ trigger }, 'draining every worker: /ready is 503, listeners stop accepting, in-flight requests finish');
    process.off('SIGHUP', this.onSighup);
    this.watcher?.close();
    await this.stopWorkers(trigger);
    await this.operatorPorts.close();
    this.options.logger.info('meshgate stopped');
    this.options.onExit?.(0);
  }

  readiness(): Readiness {
    if (this.draining) return { ready: false, reason: 'draining' };
    const missing = this.slots.filter((slot) => slot === null).length;
    return missing === 0 ? { ready: true } : { ready: false, reason: `${missing} worker(s) starting` };
  }

  /** The generation every worker serves. */
  servedGeneration(): number {
    return this.generation;
  }

  /** The live worker threads by index (a replaced one is a new thread at the same index). */
  threads(): readonly (Worker | null)[] {
    return this.slots.map((slot) => slot?.thread ?? null);
  }

  operatorAddresses(): OperatorAddresses {
    return this.operatorPorts.addresses();
  }

  /** Resolves with the worker's word on its first compile; `read`, the start's, places what a refusal found. */
  private spawn(index: number, read: ReadConfig | null): Promise<Extract<FromWorker, { readonly type: 'ready' }>> {
    const { options } = this;
    const data: WorkerData = {
      index,
      configPath: options.configPath,
      mode: options.mode,
      workloadName: options.workloadName ?? null,
      logLevel: options.logLevel,
      config: this.config,
      diagnostics: this.summary?.diagnostics ?? null,
      firstGeneration: this.generation,
      memory: this.memory,
    };
    const thread = new Worker(options.workerEntry, { workerData: data });
    const slot = new WorkerSlot(index, thread);
    this.alive.add(thread);
    thread.once('exit', () => this.alive.delete(thread));
    return new Promise((resolve, reject) => {
      const notStarted = (code: number): void => reject(new Error(`worker ${index} exited with code ${code} before serving`));
      thread.once('exit', notStarted);
      thread.on('error', (error) => options.logger.error({ err: error, worker: index }, 'worker thread failed'));
      thread.on('message', (message: FromWorker) => {
        if (message.type === 'refused') reject(new StartRefused(`worker ${index} did not start: ${message.message}`, read === null ? [] : placeDiagnostics(message.diagnostics, read.resources)));
        if (message.type === 'shutdown-requested') void this.shutdown(message.trigger);
        if (message.type !== 'ready') return;
        this.slots[index] = slot;
        thread.off('exit', notStarted);
        thread.once('exit', (code) => this.onWorkerExit(slot, code));
        resolve(message);
      });
    });
  }

  private onWorkerExit(slot: WorkerSlot, code: number): void {
    releaseHeldBy(this.memory, slot.threadId);
    if (this.slots[slot.index] === slot) this.slots[slot.index] = null;
    if (this.draining) return;
    this.events.workerRestarted();
    this.options.logger.error({ worker: slot.index, code }, 'worker stopped unexpectedly; starting a replacement');
    // Between reloads: the replacement starts from the compile the others serve, and no reload is reported done before it serves that one too.
    this.serialised(async () => (this.draining ? undefined : await this.spawn(slot.index, null))).catch((error: unknown) =>
      this.options.logger.error({ err: error, worker: slot.index }, 'replacement worker did not start; serving with fewer workers'),
    );
  }

  private async reloadOnce(trigger: string): Promise<ReloadOutcome> {
    if (this.draining) return notApplied(this.generation, 'draining');
    for (let round = 1; round <= RELOAD_ROUNDS; round++) {
      let read;
      try {
        read = await readConfig(this.options.configPath, this.compileOptions());
        this.events.configCompiled();
      } catch (error) {
        return this.failed(trigger, error);
      }
      if (!read.ok) return this.rejected(trigger, read.diagnostics);
      const sameFiles = read.read.contentHash === this.config.contentHash;
      // No plugin read anything beside the files (the hash is theirs alone): the same files compile to the same snapshot.
      if (sameFiles && this.running().hash === this.config.contentHash) return this.unchanged(trigger);
      const config = sameFiles ? this.config : await toPortable(read.read);
      const [lead, ...others] = this.live();
      if (lead === undefined) return this.failed(trigger, new Error('no worker is running'));
      // Same files: one worker's compile tells whether a plugin module changed (its hash); the others build only if one did.
      const preparations = await this.prepare(sameFiles ? [lead] : [lead, ...others], config, trigger);
      const verdict = this.verdict(preparations, read.read);
      if (!('summary' in verdict)) {
        this.abandon(preparations);
        if (verdict.outcome !== undefined) return this.draining ? notApplied(this.generation, 'draining') : verdict.outcome(trigger);
        continue;
      }
      const { summary } = verdict;
      if (summary.hash === this.running().hash) {
        this.abandon(preparations);
        return this.unchanged(trigger);
      }
      if (sameFiles) preparations.push(...(await this.prepare(others, config, trigger)));
      if (this.draining) return notApplied(this.generation, 'draining');
      const behind = preparations.filter(({ preparation }) => !(preparation.ok && preparation.hash === summary.hash));
      if (behind.length === 0) return this.commit(preparations, config, summary, trigger);
      this.abandon(preparations);
      this.options.logger.warn(
        { trigger, round, outcomes: behind.map(({ preparation }) => (preparation.ok ? 'a different hash' : preparation.outcome.message)) },
        'workers compiled different things (a plugin module saved meanwhile?); posting again',
      );
    }
    this.events.reload('failed');
    return notApplied(this.generation, 'workers kept compiling different things', 1);
  }

  /**
   * What the first answer says: the reload's hash and diagnostics (the read's, then the workers'
   * compile's, placed in the files), or how to answer a refusal, or nothing (no worker answered:
   * post again to the live ones).
   */
  private verdict(
    preparations: readonly { preparation: Preparation }[],
    read: ReadConfig,
  ): { readonly summary: CompileSummary } | { readonly outcome?: (trigger: string) => ReloadOutcome } {
    const refused = preparations.find(({ preparation }) => !preparation.ok)?.preparation;
    // The worker found what it serves: the same files, and its plugins read the same modules.
    if (refused?.ok === false && refused.outcome.ok) return { outcome: (trigger) => this.unchanged(trigger) };
    if (refused !== undefined && !refused.ok) {
      const diagnostics = [...read.diagnostics, ...placeDiagnostics(refused.diagnostics, read.resources)];
      if (count(diagnostics, 'error') > 0) return { outcome: (trigger) => this.rejected(trigger, diagnostics) };
      return { outcome: (trigger) => this.failed(trigger, new Error(refused.outcome.message)) };
    }
    const first = preparations[0]?.preparation;
    if (first === undefined || !first.ok) return {};
    return { summary: { hash: first.hash, diagnostics: [...read.diagnostics, ...placeDiagnostics(first.diagnostics, read.resources)] } };
  }

  /** Every worker has built the new snapshot: they switch together, within a message's time. */
  private async commit(preparations: readonly { slot: WorkerSlot }[], config: PortableConfig, summary: CompileSummary, trigger: string): Promise<ReloadOutcome> {
    const generation = this.generation + 1;
    await Promise.allSettled(preparations.map(({ slot }) => slot.ask({ type: 'commit', trigger, generation, diagnostics: summary.diagnostics })));
    this.config = config;
    this.summary = summary;
    this.generation = generation;
    this.lastRejected = [];
    this.events.reload('applied');
    this.events.configGeneration(generation);
    this.events.configDiagnostics(summary.diagnostics);
    this.options.logger.info({ trigger, generation, hash: summary.hash.slice(0, 12), workers: preparations.length }, 'configuration reloaded in every worker');
    return { ok: true, generation, errors: 0, warnings: count(summary.diagnostics, 'warning'), message: 'applied' };
  }

  /** The running content again: nothing to switch to, but after a rejection the state must stop saying "rejected". */
  private unchanged(trigger: string): ReloadOutcome {
    if (this.lastRejected.length > 0) {
      this.lastRejected = [];
      this.events.configDiagnostics(this.running().diagnostics);
      this.options.logger.info({ trigger, generation: this.generation }, 'configuration is valid again and equals the running one; nothing to reload');
    }
    return { ok: true, generation: this.generation, errors: 0, warnings: count(this.running().diagnostics, 'warning'), message: 'unchanged' };
  }

  /** What the workers' compile of the served config said; start() has set it before anything asks. */
  private running(): CompileSummary {
    if (this.summary === null) throw new Error('the workers have not compiled the first config yet');
    return this.summary;
  }

  /** The workers that answered; one that died meanwhile is replaced after this reload, from whichever compile it leaves current. */
  private async prepare(slots: readonly WorkerSlot[], config: PortableConfig, trigger: string): Promise<{ slot: WorkerSlot; preparation: Preparation }[]> {
    const settled = await Promise.allSettled(slots.map(async (slot) => ({ slot, preparation: (await slot.ask({ type: 'prepare', trigger, config })).preparation })));
    return settled.flatMap((answer) => (answer.status === 'fulfilled' ? [answer.value] : []));
  }

  private abandon(preparations: readonly { slot: WorkerSlot }[]): void {
    for (const { slot } of preparations) slot.tell({ type: 'abandon' });
  }

  private failed(trigger: string, error: unknown): ReloadOutcome {
    this.events.reload('failed');
    this.options.logger.error({ err: error, trigger }, 'reload failed; the current configuration keeps serving');
    return notApplied(this.generation, (error as Error).message, 1);
  }

  private rejected(trigger: string, diagnostics: readonly Diagnostic[]): ReloadOutcome {
    this.lastRejected = diagnostics;
    this.events.reload('rejected');
    this.events.configDiagnostics(diagnostics);
    return rejectedReload(this.options.logger, diagnostics, trigger, this.generation);
  }

  private compileOptions(): CompileOptions {
    const { mode, workloadName, plugins, logger } = this.options;
    return workloadName === undefined ? { mode, plugins, logger } : { mode, workloadName, plugins, logger };
  }

  private async stopWorkers(trigger: string): Promise<void> {
    const threads = [...this.alive];
    const exited = threads.map((thread) => new Promise<void>((resolve) => thread.once('exit', () => resolve())));
    const drain: ToWorker = { type: 'drain', trigger };
    for (const thread of threads) thread.postMessage(drain);
    // Each worker cuts what is left at its drain deadline; one that still has not exited a while later is stopped.
    const deadline = setTimeout(() => {
      for (const thread of threads) void thread.terminate();
    }, parseDuration(this.config.mesh.drainDuration) + STUCK_WORKER_GRACE_MS);
    await Promise.all(exited);
    clearTimeout(deadline);
  }

  private live(): WorkerSlot[] {
    return this.slots.filter((slot): slot is WorkerSlot => slot !== null);
  }

  private first(): WorkerSlot {
    const [slot] = this.live();
    if (slot === undefined) throw new Error('no worker is running');
    return slot;
  }

  private async workerMetrics(): Promise<unknown[]> {
    const answers = await Promise.allSettled(this.live().map((slot) => slot.ask({ type: 'metrics' })));
    return answers.flatMap((settled) => (settled.status === 'fulfilled' ? [settled.value.metrics] : []));
  }

}
