/**
 * The access log's writer thread (Envoy's access-log flush thread): it receives chunks of raw records
 * from the request path, encodes them into lines (line-encoder.ts) and appends the lines to their file
 * with blocking writes, so neither the encoding nor the kernel's file write runs on the event loop.
 * Each chunk is sent back once written, for the request path to fill again. Chunks are processed in
 * the order they were posted, so a `flush` answered here means everything posted before it is in the
 * file.
 */
import { writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { LAYOUTS } from './layout.js';
import { LineEncoder } from './line-encoder.js';
import { RecordReader } from './record-codec.js';

export type ToWriter =
  | { readonly kind: 'chunk'; readonly id: number; readonly fd: number; readonly buffer: ArrayBuffer; readonly used: number }
  | { readonly kind: 'flush'; readonly id: number };

/** Every chunk comes back, as `written` or as `failed` with the lines its failed writes held. */
export type FromWriter =
  | { readonly kind: 'written'; readonly id: number; readonly buffer: ArrayBuffer }
  | { readonly kind: 'failed'; readonly id: number; readonly buffer: ArrayBuffer; readonly lines: number; readonly reason: string }
  | { readonly kind: 'flushed'; readonly id: number };

/** A full pipe (standard output read slowly) is retried this often, for at most WRITE_STALL_LIMIT_MS. */
const RETRY_PAUSE_MS = 5;
const WRITE_STALL_LIMIT_MS = 10_000;

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd: number, bytes: Buffer, length: number): void {
  let offset = 0;
  let stalledSince = 0;
  while (offset < length) {
    try {
      offset += writeSync(fd, bytes, offset, length - offset);
      stalledSince = 0;
    } catch (error) {
      // Standard output can be a non-blocking pipe: wait for its reader rather than lose the lines.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      stalledSince ||= Date.now();
      if (Date.now() - stalledSince > WRITE_STALL_LIMIT_MS) throw error;
      Atomics.wait(pause, 0, 0, RETRY_PAUSE_MS);
    }
  }
}

/** Lines are encoded into this buffer, and written when it fills. */
const OUTPUT_BYTES = 64 * 1024;
const output = new LineEncoder(Buffer.allocUnsafeSlow(OUTPUT_BYTES));

interface ChunkOutcome {
  /** Lines in writes that failed, and the last failure. */
  readonly unwritten: number;
  readonly reason: string;
}

/** Encodes a chunk's records and appends the lines to `fd`. */
function writeChunk(fd: number, chunk: Buffer, used: number): ChunkOutcome {
  const reader = new RecordReader(chunk, used);
  let unwritten = 0;
  let reason = '';
  const flush = (): void => {
    try {
      writeAll(fd, output.buffer, output.used);
    } catch (error) {
      unwritten += output.lines;
      reason = (error as Error).message;
    }
    output.reset(output.buffer.length === OUTPUT_BYTES ? output.buffer : Buffer.allocUnsafeSlow(OUTPUT_BYTES));
  };
  while (reader.next()) {
    const layout = LAYOUTS[reader.record.format];
    const bound = layout.boundOf(reader.record);
    if (output.used + bound > output.capacity) {
      if (output.used > 0) flush();
      // A line longer than the buffer (long config values) gets a buffer of its own.
      if (bound > output.capacity) output.reset(Buffer.allocUnsafeSlow(bound));
    }
    output.append(reader.record, layout);
  }
  if (output.used > 0) flush();
  return { unwritten, reason };
}

const port = parentPort;
if (port === null) throw new Error('writer-thread.js runs as a worker thread');
const parent = port;

parent.on('message', (message: ToWriter) => {
  if (message.kind === 'flush') {
    parent.postMessage({ kind: 'flushed', id: message.id } satisfies FromWriter);
    return;
  }
  const { id, buffer, used } = message;
  const outcome = writeChunk(message.fd, Buffer.from(buffer, 0, used), used);
  const reply: FromWriter = outcome.unwritten === 0 ? { kind: 'written', id, buffer } : { kind: 'failed', id, buffer, lines: outcome.unwritten, reason: outcome.reason };
  parent.postMessage(reply, [buffer]);
});
