/**
 * The runtime's side of the span export thread (exporter-thread.ts). The collector's requests go out
 * from a thread of their own because an isolate shares its optimised code and type feedback among all
 * its callers: sent from the proxy's own thread, every export (undici's pool, request and parser, the
 * stream functions) met code optimised for the data path's objects and deoptimised it, and V8 recompiled
 * it all over again. Measured side by side at 1 % sampling with one export every few seconds, that cost
 * the proxy ~12 us per request (8 on its event loop, 4 recompiling on V8's helper threads), about a tenth
 * of its CPU. The thread starts with the exporter, not with the first batch: starting it (an isolate,
 * undici's modules) takes tens of milliseconds of CPU, which at the first export fell in the middle of
 * serving. If the thread dies, its batches count as not accepted and the next batch starts a new one.
 */
import { Worker } from 'node:worker_threads';
import type { ExporterThreadOptions, FromExporterThread, ToExporterThread } from './exporter-thread.js';

export class SpanExporter {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly waiting = new Map<number, (accepted: boolean) => void>();
  private closing: Promise<void> | null = null;

  constructor(private readonly options: ExporterThreadOptions) {
    // Idle, the thread does not keep the process alive.
    this.start().unref();
  }

  /** Hands one batch's span bytes (and their buffer) to the thread; resolves whether the collector accepted them (never rejects). */
  export(spansJson: Uint8Array): Promise<boolean> {
    return this.ask({ kind: 'export', id: this.nextId++, spansJson }, [spansJson.buffer as ArrayBuffer]);
  }

  /** Lets the thread finish its requests, then stops it; calls while it stops share its end. */
  shutdown(): Promise<void> {
    this.closing ??= this.close().finally(() => {
      this.closing = null;
    });
    return this.closing;
  }

  private async close(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    await this.ask({ kind: 'shutdown', id: this.nextId++ });
    this.worker = null;
    await worker.terminate();
  }

  private ask(message: ToExporterThread, transfer: ArrayBuffer[] = []): Promise<boolean> {
    const worker = this.worker ?? this.start();
    // While a batch is out the thread keeps the process alive, as a pending request would.
    worker.ref();
    return new Promise((resolve) => {
      this.waiting.set(message.id, resolve);
      worker.postMessage(message, transfer);
    });
  }

  private start(): Worker {
    // No inherited `--import`/`--require` preloads: an APM agent there would trace the exports themselves,
    // and any preload delays the thread's start (seconds under a test runner's hooks).
    const worker = new Worker(new URL('./exporter-thread.js', import.meta.url), { workerData: this.options, execArgv: [] });
    worker.on('message', (message: FromExporterThread) => this.answered(message.id, message.kind === 'exported' ? message.accepted : true));
    worker.on('error', () => this.stopped(worker));
    worker.on('exit', () => this.stopped(worker));
    this.worker = worker;
    return worker;
  }

  private answered(id: number, accepted: boolean): void {
    this.waiting.get(id)?.(accepted);
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.worker?.unref();
  }

  /** The thread is gone: what it held was not delivered. */
  private stopped(worker: Worker): void {
    if (worker !== this.worker) return;
    this.worker = null;
    for (const resolve of this.waiting.values()) resolve(false);
    this.waiting.clear();
  }
}
