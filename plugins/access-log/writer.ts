/**
 * The request path's side of the writer thread (writer-thread.ts): hands chunks of records over,
 * takes written chunks back for reuse, and answers `flush` once the thread has written everything
 * handed over before it. The thread starts with the first chunk, so a proxy that never logs a request
 * never pays for it. Lines that cannot be written (the write failed, or the thread died) are counted
 * by path and reported once per path as a process warning; requests never fail because of the log.
 */
import { Worker } from 'node:worker_threads';
import { BoundedCounter } from '../../gateway/metrics/registry.js';
import { RecordChunk } from './record-codec.js';
import type { FromWriter, ToWriter } from './writer-thread.js';

/** Bytes of one chunk of raw records (several thousand requests: index.ts says why so many). */
const CHUNK_BYTES = 1024 * 1024;
/** Written chunks kept for reuse; more would only hold memory after a burst. */
const SPARE_CHUNKS = 2;

const unwrittenLines = new BoundedCounter({
  name: 'meshgate_access_log_write_failures_total',
  help: 'Access-log lines that could not be written (the file write failed or the writer thread stopped), by path.',
  labelNames: ['path'],
  maxSeries: 16,
});

interface ChunkInFlight {
  readonly path: string;
  readonly lines: number;
}

export class AccessLogWriter {
  private worker: Worker | null = null;
  private readonly spare: ArrayBuffer[] = [];
  private nextId = 0;
  private readonly chunks = new Map<number, ChunkInFlight>();
  private readonly flushes = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  private readonly warnedPaths = new Set<string>();
  private stopping: Promise<void> | null = null;

  /** An empty chunk with room for at least `bytes`. */
  chunk(bytes: number): RecordChunk {
    const buffer = bytes <= CHUNK_BYTES ? (this.spare.pop() ?? new ArrayBuffer(CHUNK_BYTES)) : new ArrayBuffer(bytes);
    return new RecordChunk(buffer);
  }

  /** Hands `chunk` (no longer usable here) to the thread, to be appended to `fd`. */
  write(fd: number, path: string, chunk: RecordChunk): void {
    const id = this.nextId++;
    this.chunks.set(id, { path, lines: chunk.records });
    this.post({ kind: 'chunk', id, fd, buffer: chunk.buffer, used: chunk.used }, [chunk.buffer]);
  }

  /** Resolves once every chunk handed over so far is written, or counted as unwritten. */
  flush(): Promise<void> {
    if (this.worker === null) return Promise.resolve();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.flushes.set(id, { resolve, reject });
      this.post({ kind: 'flush', id });
    });
  }

  /** Ends the thread once everything handed over is written; concurrent calls share one end. */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndEnd().finally(() => {
      this.stopping = null;
    });
    return this.stopping;
  }

  private async drainAndEnd(): Promise<void> {
    const worker = this.worker;
    if (worker === null) return;
    // Chunks handed over while a flush was in flight (requests still ending) are drained too.
    do await this.flush();
    while (this.worker === worker && this.chunks.size > 0);
    if (this.worker !== worker) return;
    this.worker = null;
    // Nothing is in flight any more, so flushes other callers posted after ours have nothing left to wait for.
    for (const { resolve } of this.flushes.values()) resolve();
    this.flushes.clear();
    await worker.terminate();
  }

  private post(message: ToWriter, transfer: ArrayBuffer[] = []): void {
    const worker = this.worker ?? this.start();
    // While chunks are in flight the thread keeps the process alive, as a pending file write would.
    worker.ref();
    worker.postMessage(message, transfer);
  }

  private start(): Worker {
    // No inherited `--import`/`--require` preloads (a test runner's hooks, an APM agent): the thread runs
    // only our encoder, and preloads made its start take seconds instead of ~0.1 s, holding back the log.
    const worker = new Worker(new URL('./writer-thread.js', import.meta.url), { execArgv: [] });
    worker.on('message', (message: FromWriter) => this.received(message));
    worker.on('error', (error) => this.stopped(worker, error));
    worker.on('exit', (code) => this.stopped(worker, new Error(`the access-log writer thread exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private received(message: FromWriter): void {
    if (message.kind === 'flushed') {
      this.flushes.get(message.id)?.resolve();
      this.flushes.delete(message.id);
    } else {
      const chunk = this.chunks.get(message.id);
      this.chunks.delete(message.id);
      if (message.buffer.byteLength === CHUNK_BYTES && this.spare.length < SPARE_CHUNKS) this.spare.push(message.buffer);
      if (chunk !== undefined && message.kind === 'failed') this.unwritten(chunk, message.lines, message.reason);
    }
    if (this.chunks.size === 0 && this.flushes.size === 0) this.worker?.unref();
  }

  /** The thread is gone (a crash, not stop()): what it held is counted, and the next chunk starts a new one. */
  private stopped(worker: Worker, error: Error): void {
    if (worker !== this.worker) return;
    this.worker = null;
    for (const chunk of this.chunks.values()) this.unwritten(chunk, chunk.lines, error.message);
    this.chunks.clear();
    for (const { reject } of this.flushes.values()) reject(error);
    this.flushes.clear();
  }

  private unwritten(chunk: ChunkInFlight, lines: number, reason: string): void {
    unwrittenLines.inc({ path: chunk.path }, lines);
    if (this.warnedPaths.has(chunk.path)) return;
    this.warnedPaths.add(chunk.path);
    process.emitWarning(`access log ${chunk.path}: ${lines} line(s) not written (${reason}); later failures are only counted in meshgate_access_log_write_failures_total`);
  }
}
