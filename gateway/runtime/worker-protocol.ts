/** The messages between the supervisor thread (worker-supervisor.ts) and its worker threads (worker-thread.ts), and the hand-off from the runtime that found it needs workers. */
import type { ReloadOutcome } from '../admin/server.js';
import type { Diagnostic } from '../config/resource.js';
import type { ProxyMode } from '../pipeline/types.js';
import type { CompileSummary, PortableConfig, PortableDiagnostic } from './portable-config.js';
import type { WorkerMemory } from './worker-memory.js';

export interface WorkerData {
  readonly index: number;
  readonly configPath: string;
  readonly mode: ProxyMode;
  readonly workloadName: string | null;
  readonly logLevel: string;
  /** The supervisor's compile this worker serves first, and that compile's generation number. */
  readonly config: PortableConfig;
  readonly diagnostics: CompileSummary['diagnostics'];
  readonly firstGeneration: number;
  /** The same buffers in every worker: the exact cross-worker state. */
  readonly memory: WorkerMemory;
}

export interface WorkerRole {
  /** The supervisor's compile of the config, this worker's first snapshot (worker-supervisor.ts): a worker never reads the files. */
  readonly config: PortableConfig;
  readonly diagnostics: CompileSummary['diagnostics'];
  /** The generation number the first snapshot takes: the supervisor's, which a replaced worker joins. */
  readonly firstGeneration: number;
  readonly onConnection: () => void;
  /** The Dapr API's `POST /v1.0/shutdown` stops the whole proxy, every worker, not this one. */
  readonly requestShutdown: () => void;
}

/** More than one worker was asked for: nothing was opened, the caller starts the workers from this compile. */
export interface HandOff {
  readonly workers: number;
  readonly config: PortableConfig;
  readonly summary: CompileSummary;
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
  | { readonly type: 'config-dump'; readonly id: number; readonly lastRejected: readonly Diagnostic[] }
  | { readonly type: 'view'; readonly id: number; readonly path: string; readonly method: 'GET' | 'POST'; readonly query: Readonly<Record<string, string>>; readonly body: unknown };

/** An answer carries its question's id and type. */
export type FromWorker =
  | { readonly type: 'shutdown-requested'; readonly trigger: string }
  | { readonly type: 'ready' }
  | { readonly type: 'refused'; readonly message: string }
  | { readonly type: 'prepare'; readonly id: number; readonly preparation: Preparation }
  | { readonly type: 'commit'; readonly id: number; readonly outcome: ReloadOutcome }
  /** The worker's series as its metrics exposition hands them over (MetricsExposition.workerSeries). */
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: unknown }
  | { readonly type: 'config-dump'; readonly id: number; readonly dump: unknown }
  | { readonly type: 'view'; readonly id: number; readonly answer: ViewAnswer };
