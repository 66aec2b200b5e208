/**
 * Starting, pinning and always stopping the benchmark's child processes. Every child goes into one
 * ProcessSet; the driver stops the set after each target and on error, SIGINT or SIGTERM, and a
 * synchronous SIGKILL on `exit` covers whatever is left, so no proxy outlives the run.
 *
 * Pinning follows bench/README.md#method: the load generator on CPU 0, the proxy and the upstream
 * sharing CPU 1 (a co-located sidecar and its app), so throughput ratios read as per-request CPU cost.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { parseReadyLine } from './contract.js';

export const LOAD_GENERATOR_CPU = 0;
export const SERVICE_CPU = 1;
/** Both CPUs: a proxy with two worker threads (its load generator and upstream still have theirs). */
export const BOTH_CPUS = '0,1';

export interface Pinning {
  readonly enabled: boolean;
  /** Why pinning is off, printed once at the start of the run. */
  readonly note: string | null;
}

export function detectPinning(): Pinning {
  if (spawnSync('taskset', ['-V'], { stdio: 'ignore' }).error !== undefined) {
    return { enabled: false, note: 'taskset not found: processes are NOT pinned to CPUs (results are noisier)' };
  }
  if (availableParallelism() < 2) {
    return { enabled: false, note: 'fewer than 2 CPUs: processes are NOT pinned (proxy, upstream and load generator share one CPU)' };
  }
  return { enabled: true, note: null };
}

/** The command line that runs `command args` on `cpu` (taskset execs, so the pid is the command's own). */
export function pinnedCommand(pinning: Pinning, cpu: number | typeof BOTH_CPUS, command: string, args: readonly string[]): [string, string[]] {
  return pinning.enabled ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, [...args]];
}

const OUTPUT_TAIL_BYTES = 4_096;
const STOP_GRACE_MS = 2_000;

export interface ChildService {
  readonly name: string;
  readonly pid: number;
  /** Last few KiB of stdout+stderr, for error messages. */
  outputTail(): string;
  /** Resolves with the ports of the child's ready line (contract.ts); rejects if it exits first or times out. */
  readyPorts(timeoutMs: number): Promise<number[]>;
  readonly exited: Promise<void>;
  isRunning(): boolean;
}

class TrackedChild implements ChildService {
  readonly pid: number;
  readonly exited: Promise<void>;
  private tail = '';
  private readonly portsPromise: Promise<number[]>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr?.on('data', (chunk: Buffer) => this.record(chunk.toString()));
    this.portsPromise = new Promise((resolve, reject) => {
      if (child.stdout === null) return reject(new Error(`${name}: no stdout`));
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        this.record(`${line}\n`);
        const ports = parseReadyLine(line);
        if (ports !== null) resolve(ports);
      });
      child.once('exit', (code, signal) => reject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${this.tail}`)));
      child.once('error', (error) => reject(new Error(`${name}: ${error.message}`)));
    });
    // Callers that never wait for a ready line must not see an unhandled rejection when the child stops.
    this.portsPromise.catch(() => undefined);
  }

  outputTail(): string {
    return this.tail;
  }

  async readyPorts(timeoutMs: number): Promise<number[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.tail}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.portsPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  isRunning(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.isRunning()) this.child.kill(signal);
  }

  private record(text: string): void {
    this.tail = (this.tail + text).slice(-OUTPUT_TAIL_BYTES);
  }
}

export class ProcessSet {
  private readonly children = new Set<TrackedChild>();

  constructor(private readonly pinning: Pinning) {}

  start(name: string, cpu: number | typeof BOTH_CPUS, command: string, args: readonly string[]): ChildService {
    const [file, argv] = pinnedCommand(this.pinning, cpu, command, args);
    const child = new TrackedChild(name, spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    return child;
  }

  /** SIGTERM, then SIGKILL whatever is still running after a grace period. */
  async stop(services: readonly ChildService[]): Promise<void> {
    const running = [...this.children].filter((child) => services.includes(child));
    for (const child of running) child.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_GRACE_MS);
    });
    await Promise.race([Promise.all(running.map((child) => child.exited)), grace]);
    clearTimeout(timer);
    for (const child of running) child.signal('SIGKILL');
    await Promise.all(running.map((child) => child.exited));
  }

  async stopAll(): Promise<void> {
    await this.stop([...this.children]);
  }

  /** Last resort from a synchronous `exit` handler. */
  killAllNow(): void {
    for (const child of this.children) child.signal('SIGKILL');
  }
}

/**
 * Runs a command to its end and resolves with its standard output (rejects on a non-zero exit, with
 * its output). The output is taken once the pipes close, not at exit: exit can come first, and one
 * side-by-side pair failed on an empty wrk report that way.
 */
export function runToCompletion(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  signal: AbortSignal,
  env: Readonly<Record<string, string>> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, signal, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, exitSignal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} failed (${exitSignal ?? code}):\n${stderr}${stdout}`));
    });
  });
}
