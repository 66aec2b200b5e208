/**
 * A proxy with more than one worker (`--concurrency N`, concurrency.ts): the main thread supervises N
 * worker threads (worker-thread.ts) that each serve every proxy listener, and keeps what must exist
 * once — the admin, status and metrics ports, the config watch and the signals.
 *
 * Reloads go to every worker; one is reported done only when every live worker serves a snapshot of
 * the same content hash (a file saved again between two workers' reads makes them disagree: the
 * reload is then repeated). Drain and SIGHUP reach every worker. A worker that stops without being
 * asked is replaced (same index, so its connection series continues) and counted; when the config
 * changed meanwhile, the replacement's different hash brings every worker to the new content.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { createAdminServer } from '../admin/server.js';
import type { AdminSource, AdminView, ReloadOutcome } from '../admin/server.js';
import { closeServer, createMetricsServer, createStatusServer, listenOn, splitAddress } from '../admin/status-server.js';
import type { Readiness } from '../admin/status-server.js';
import { parseDuration } from '../config/duration.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { MetricsExposition, ProxyEvents } from '../pipeline/capabilities.js';
import type { MeshPlugin, ProxyMode } from '../pipeline/types.js';
import { MESHGATE_VERSION } from '../version.js';
import { FORWARDED_VIEWS } from './admin-views.js';
import type { OperatorAddresses } from './gateway-runtime.js';
import { metricsExpositionOf, proxyEventsOf } from './plugin-capabilities.js';
import { watchConfig } from './watch.js';
import type { ConfigWatcher } from './watch.js';
import { createWorkerMemory, releaseHeldBy } from './worker-memory.js';
import type { FromWorker, ToWorker, ViewAnswer, WorkerData } from './worker-protocol.js';

export interface SupervisorOptions {
  readonly configPath: string;
  readonly mode: ProxyMode;
  readonly workloadName?: string;
  /** The table the workers serve: here for its metrics (worker counts, the merged exposition). */
  readonly plugins: readonly MeshPlugin[];
  /** The workers' entry module: it hands the same table to worker-thread.ts (gateway/composition/worker-main.ts). */
  readonly workerEntry: URL;
  readonly logger: FastifyBaseLogger;
  /** Each worker builds its own logger at this level (a pino instance cannot cross threads). */
  readonly logLevel: string;
  readonly workers: number;
  /** MeshConfig as compiled at start: the operator ports are bound once, by the supervisor. */
  readonly mesh: MeshConfigSpec;
  readonly adminAddress?: string;
  readonly statusAddress?: string;
  readonly metricsAddress?: string;
  /** Watch the config directory (default true). */
  readonly watch?: boolean;
  readonly onExit?: (code: number) => void;
}

type Question = ToWorker extends infer M ? (M extends { readonly id: number } ? Omit<M, 'id'> : never) : never;
type Answer = Extract<FromWorker, { readonly id: number }>;

/** A reload whose workers still disagree after this many rounds is reported failed (the files keep changing). */
const RELOAD_ROUNDS = 3;
/** How long past the drain deadline a worker may take to exit before it is terminated. */
const STUCK_WORKER_GRACE_MS = 5000;

class WorkerSlot {
  hash = '';
  generation = 0;
  /** Read at start: once the thread has exited, `thread.threadId` is -1. */
  readonly threadId: number;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>();

  constructor(
    readonly index: number,
    readonly thread: Worker,
  ) {
    this.threadId = thread.threadId;
    thread.on('message', (message: FromWorker) => {
      if (!('id' in message)) return;
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      waiting?.resolve(message);
    });
    thread.once('exit', (code) => {
      for (const waiting of this.pending.values()) waiting.reject(new Error(`worker ${index} exited (code ${code}) before answering`));
      this.pending.clear();
    });
  }

  ask<T extends Answer['type']>(question: Question & { readonly type: T }): Promise<Extract<Answer, { readonly type: T }>> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (answer: Answer) => void, reject });
      this.thread.postMessage({ ...question, id } as ToWorker);
    });
  }
}

export class WorkerSupervisor {
  private readonly slots: (WorkerSlot | null)[];
  /** Every thread not yet exited, serving or still starting: drain must reach a starting one too. */
  private readonly alive = new Set<Worker>();
  private generation = 0;
  private draining = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  private readonly startedAt = new Date();
  private admin: FastifyInstance | null = null;
  private status: http.Server | null = null;
  private metrics: http.Server | null = null;
  private watcher: ConfigWatcher | null = null;
  private starting: Promise<void> | null = null;
  private readonly memory = createWorkerMemory();
  private readonly events: ProxyEvents;
  private readonly exposition: MetricsExposition;
  private readonly onSighup = (): void => void this.reload('SIGHUP');

  constructor(private readonly options: SupervisorOptions) {
    this.slots = Array.from({ length: options.workers }, () => null);
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
    try {
      await Promise.all(this.slots.map((_, index) => this.spawn(index, 1)));
    } catch (error) {
      await this.stopWorkers('start failure');
      throw error;
    }
    this.generation = Math.max(...this.live().map((slot) => slot.generation));
    // Two workers that read the config on either side of a save: bring them to one content now.
    if (new Set(this.live().map((slot) => slot.hash)).size > 1) await this.reload('workers started on different files');
    const mesh = options.mesh;
    const source: AdminSource = {
      mode: options.mode,
      version: MESHGATE_VERSION,
      startedAt: this.startedAt,
      generation: () => (this.generation === 0 ? null : this.generation),
      isDraining: () => this.draining,
      configDump: async () => (await this.first().ask({ type: 'config-dump' })).dump,
      reload: () => this.reload('admin'),
      shutdown: () => void this.shutdown('admin'),
    };
    this.admin = await createAdminServer(source, this.adminViews());
    const adminAddress = options.adminAddress ?? mesh.adminAddress;
    await this.admin.listen(splitAddress(adminAddress));
    const statusAddress = options.statusAddress ?? mesh.statusAddress;
    if (statusAddress !== '') {
      this.status = createStatusServer(() => this.readiness());
      await listenOn(this.status, statusAddress);
    }
    const metricsAddress = options.metricsAddress ?? mesh.metricsAddress;
    if (metricsAddress !== '') {
      const render = async () => this.exposition.mergedPrometheus(await this.workerMetrics());
      this.metrics = createMetricsServer({ render, ...(mesh.appMetricsUrl === undefined ? {} : { appMetricsUrl: mesh.appMetricsUrl }) });
      await listenOn(this.metrics, metricsAddress);
    }
    if (options.watch !== false) this.watcher = watchConfig(options.configPath, () => void this.reload('file change'));
    process.on('SIGHUP', this.onSighup);
    options.logger.info(
      { generation: this.generation, workers: options.workers, admin: adminAddress, status: statusAddress || 'off', metrics: metricsAddress || 'off' },
      'meshgate ready',
    );
  }

  /** Serialised like a single runtime's: a reload waits for the previous one. */
  reload(trigger: string): Promise<ReloadOutcome> {
    const next = this.reloadChain.then(() => this.reloadOnce(trigger));
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
    if (this.status !== null) await closeServer(this.status);
    if (this.metrics !== null) await closeServer(this.metrics);
    await this.admin?.close();
    this.options.logger.info('meshgate stopped');
    this.options.onExit?.(0);
  }

  readiness(): Readiness {
    if (this.draining) return { ready: false, reason: 'draining' };
    const missing = this.slots.filter((slot) => slot === null).length;
    return missing === 0 ? { ready: true } : { ready: false, reason: `${missing} worker(s) starting` };
  }

  /** The generation every worker serves; null before start. */
  servedGeneration(): number | null {
    return this.generation === 0 ? null : this.generation;
  }

  /** The live worker threads by index (a replaced one is a new thread at the same index). */
  threads(): readonly (Worker | null)[] {
    return this.slots.map((slot) => slot?.thread ?? null);
  }

  operatorAddresses(): OperatorAddresses {
    const bound = (server: http.Server | null): AddressInfo | null => (server?.listening === true ? (server.address() as AddressInfo) : null);
    return { admin: bound(this.admin?.server ?? null), status: bound(this.status), metrics: bound(this.metrics) };
  }

  private spawn(index: number, firstGeneration: number): Promise<void> {
    const { options } = this;
    const data: WorkerData = {
      index,
      configPath: options.configPath,
      mode: options.mode,
      workloadName: options.workloadName ?? null,
      logLevel: options.logLevel,
      firstGeneration,
      memory: this.memory,
    };
    const thread = new Worker(options.workerEntry, { workerData: data });
    const slot = new WorkerSlot(index, thread);
    this.alive.add(thread);
    thread.once('exit', () => this.alive.delete(thread));
    return new Promise<void>((resolve, reject) => {
      const notStarted = (code: number): void => reject(new Error(`worker ${index} exited with code ${code} before serving`));
      thread.once('exit', notStarted);
      thread.on('error', (error) => options.logger.error({ err: error, worker: index }, 'worker thread failed'));
      thread.on('message', (message: FromWorker) => {
        if (message.type === 'refused') reject(new Error(`worker ${index} did not start: ${message.message}`));
        if (message.type === 'shutdown-requested') void this.shutdown(message.trigger);
        if (message.type !== 'ready') return;
        slot.generation = message.generation;
        slot.hash = message.hash;
        this.slots[index] = slot;
        thread.off('exit', notStarted);
        thread.once('exit', (code) => this.onWorkerExit(slot, code));
        resolve();
      });
    });
  }

  private onWorkerExit(slot: WorkerSlot, code: number): void {
    releaseHeldBy(this.memory, slot.threadId);
    if (this.slots[slot.index] === slot) this.slots[slot.index] = null;
    if (this.draining) return;
    this.events.workerRestarted();
    this.options.logger.error({ worker: slot.index, code }, 'worker stopped unexpectedly; starting a replacement');
    this.spawn(slot.index, this.generation).then(
      () => {
        const others = this.live().filter((other) => other !== this.slots[slot.index]);
        if (others.length > 0 && others.some((other) => other.hash !== this.slots[slot.index]?.hash)) void this.reload('worker replaced');
      },
      (error: unknown) => this.options.logger.error({ err: error, worker: slot.index }, 'replacement worker did not start; serving with fewer workers'),
    );
  }

  private async reloadOnce(trigger: string): Promise<ReloadOutcome> {
    if (this.draining) return { ok: false, generation: this.generation, errors: 0, warnings: 0, message: 'draining' };
    for (let round = 1; round <= RELOAD_ROUNDS; round++) {
      const answers = await Promise.allSettled(this.live().map(async (slot) => ({ slot, answer: await slot.ask({ type: 'reload', trigger }) })));
      // A worker that died meanwhile is replaced from the files as they are then, and checked against the others.
      const served = answers.flatMap((settled) => (settled.status === 'fulfilled' ? [settled.value] : []));
      for (const { slot, answer } of served) {
        slot.hash = answer.hash;
        slot.generation = answer.outcome.generation;
      }
      const refused = served.find(({ answer }) => !answer.outcome.ok);
      if (refused !== undefined && served.every(({ answer }) => !answer.outcome.ok)) return refused.answer.outcome;
      if (refused === undefined && new Set(served.map(({ slot }) => slot.hash)).size <= 1) {
        this.generation = Math.max(this.generation, ...served.map(({ slot }) => slot.generation));
        const applied = served.find(({ answer }) => answer.outcome.message === 'applied') ?? served[0];
        const outcome = applied?.answer.outcome ?? { ok: true, generation: this.generation, errors: 0, warnings: 0, message: 'unchanged' };
        return { ...outcome, generation: this.generation };
      }
      this.options.logger.warn({ trigger, round }, 'workers read different config contents (saved again meanwhile); reloading them all again');
    }
    return { ok: false, generation: this.generation, errors: 1, warnings: 0, message: 'workers kept reading different config contents' };
  }

  private async stopWorkers(trigger: string): Promise<void> {
    const threads = [...this.alive];
    const exited = threads.map((thread) => new Promise<void>((resolve) => thread.once('exit', () => resolve())));
    const drain: ToWorker = { type: 'drain', trigger };
    for (const thread of threads) thread.postMessage(drain);
    // Each worker cuts what is left at its drain deadline; one that still has not exited a while later is stopped.
    const deadline = setTimeout(() => {
      for (const thread of threads) void thread.terminate();
    }, parseDuration(this.options.mesh.drainDuration) + STUCK_WORKER_GRACE_MS);
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

  /** Metrics merge every worker's; the other views show one worker's state (each has its own pools and snapshot). */
  private adminViews(): AdminView[] {
    const prometheus: AdminView['handle'] = async () => this.exposition.mergedPrometheus(await this.workerMetrics());
    const forwarded = FORWARDED_VIEWS.map(
      ({ path, method }): AdminView => ({
        path,
        method,
        handle: async (query, body): Promise<ViewAnswer> => (await this.first().ask({ type: 'view', path, method, query, body })).answer,
      }),
    );
    return [
      { path: '/stats/prometheus', handle: prometheus },
      { path: '/metrics', handle: prometheus },
      { path: '/stats', handle: async () => ({ contentType: 'text/plain; charset=utf-8', body: await this.exposition.mergedStatsText(await this.workerMetrics()) }) },
      ...forwarded,
    ];
  }
}
