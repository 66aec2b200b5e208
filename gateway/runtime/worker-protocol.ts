/** The messages between the supervisor thread (worker-supervisor.ts) and its worker threads (worker-thread.ts), and the hand-off from the runtime that found it needs workers. */
import type { ReloadOutcome } from '../admin/server.js';
import type { Diagnostic } from '../config/resource.js';
import type { ProxyMode } from '../pipeline/types.js';
import type { ReadConfig } from '../snapshot/snapshot.js';
import type { CompileSummary, PortableConfig, PortableDiagnostic } from './portable-config.js';
import type { WorkerMemory } from './worker-memory.js';

export interface WorkerData {
  readonly index: number;
  readonly configPath: string;
  readonly mode: ProxyMode;
  readonly workloadName: string | null;
  readonly logLevel: string;
  /** The supervisor's read this worker serves first, and its generation number. */
  readonly config: PortableConfig;
  readonly diagnostics: CompileSummary['diagnostics'] | null;
  readonly firstGeneration: number;
  /** The same buffers in every worker: the exact cross-worker state. */
  readonly memory: WorkerMemory;
}

export interface WorkerRole {
  /** The supervisor's read of the config, this worker's first snapshot (worker-supervisor.ts): a worker never reads the files. */
  readonly config: PortableConfig;
  /** A replacement's: the diagnostics of the config the others serve. null at the start: its own compile's (the supervisor places them). */
  readonly diagnostics: CompileSummary['diagnostics'] | null;
  /** The generation number the first snapshot takes: the supervisor's, which a replaced worker joins. */
  readonly firstGeneration: number;
  readonly onConnection: () => void;
  /** The Dapr API's `POST /v1.0/shutdown` stops the whole proxy, every worker, not this one. */
  readonly requestShutdown: () => void;
}

/** More than one worker was asked for: nothing was opened or built, the caller starts the workers from this read. */
export interface HandOff {
  readonly workers: number;
  /** The config read and validated, with the read's diagnostics: the supervisor places the workers' compile's in it. */
  readonly read: ReadConfig;
  readonly config: PortableConfig;
}

/**
 * A worker's answer to prepare: the hash of what it built and its compile's diagnostics, or why it
 * built nothing (a rejected config's diagnostics; none when it failed otherwise).
 */
export type Preparation =
  | { readonly ok: true; readonly hash: string; readonly diagnostics: readonly PortableDiagnostic[] }
  | { readonly ok: false; readonly outcome: ReloadOutcome; readonly diagnostics: readonly PortableDiagnostic[] };

/** An admin view answered by one worker (its clusters, certificates, compiled policies). */
export interface ViewAnswer {
  readonly status?: number;
  readonly contentType: string;
  readonly body: string;
}

export type ToWorker =
  | { readonly type: 'prepare'; readonly id: number; readonly trigger: string; readonly config: PortableConfig }
  | { readonly type: 'commit'; readonly id: number; readonly trigger: string; readonly generation: number; readonly diagnostics: CompileSummary['diagnostics'] }
  | { readonly type: 'abandon' }
  | { readonly type: 'drain'; readonly trigger: string }
  | { readonly type: 'metrics'; readonly id: number }
  | { readonly type: 'config-dump'; readonly id: number; readonly lastRejected: readonly Diagnostic[]; readonly diagnostics: readonly Diagnostic[] }
  | { readonly type: 'view'; readonly id: number; readonly path: string; readonly method: 'GET' | 'POST'; readonly query: Readonly<Record<string, string>>; readonly body: unknown };

/** An answer carries its question's id and type. */
export type FromWorker =
  | { readonly type: 'shutdown-requested'; readonly trigger: string }
  /** What the worker's compile said: the start's hash and diagnostics come from the first worker's. */
  | { readonly type: 'ready'; readonly hash: string; readonly diagnostics: readonly PortableDiagnostic[] }
  | { readonly type: 'refused'; readonly message: string; readonly diagnostics: readonly PortableDiagnostic[] }
  | { readonly type: 'prepare'; readonly id: number; readonly preparation: Preparation }
  | { readonly type: 'commit'; readonly id: number; readonly outcome: ReloadOutcome }
  /** The worker's series as its metrics exposition hands them over (MetricsExposition.workerSeries). */
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: unknown }
  | { readonly type: 'config-dump'; readonly id: number; readonly dump: unknown }
  | { readonly type: 'view'; readonly id: number; readonly answer: ViewAnswer };
