/**
 * The access log's writer thread (Envoy's access-log flush thread): it receives chunks of raw records
 * from the request path, formats them into lines and appends the lines to their file with blocking
 * writes, so neither the formatting nor the kernel's file write runs on the event loop. Each chunk is
 * sent back once written, for the request path to fill again. Chunks are processed in the order they
 * were posted, so a `flush` answered here means everything posted before it is in the file.
 */
import { writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { MAX_UTF8_BYTES_PER_CHAR, RecordReader } from './record-codec.js';
import { formatJson, formatText, toAccessLogRecord } from './record.js';

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

/** Lines are encoded into this buffer as they are formatted, while still in the cache, and written when it fills. */
const OUTPUT_BYTES = 64 * 1024;
const output = Buffer.allocUnsafeSlow(OUTPUT_BYTES);

interface ChunkOutcome {
  /** Lines in writes that failed, and the last failure. */
  readonly unwritten: number;
  readonly reason: string;
}

/**
 * Formats a chunk's records and appends the lines to `fd`. Each line is encoded into `output` as soon
 * as it is formatted: joining a chunk's lines into one string first, or encoding them in one go, copied
 * a few hundred KB more than the CPU caches hold and measured twice as slow per line.
 */
function writeChunk(fd: number, chunk: Buffer, used: number): ChunkOutcome {
  const reader = new RecordReader(chunk, used);
  let pending = 0;
  let buffered = 0;
  let unwritten = 0;
  let reason = '';
  const flush = (bytes: Buffer, length: number, count: number): void => {
    try {
      writeAll(fd, bytes, length);
    } catch (error) {
      unwritten += count;
      reason = (error as Error).message;
    }
  };
  while (reader.next()) {
    const record = toAccessLogRecord(reader.record);
    const line = reader.record.format === 'TEXT' ? formatText(record) : formatJson(record);
    const worstCase = line.length * MAX_UTF8_BYTES_PER_CHAR;
    if (buffered + worstCase > OUTPUT_BYTES) {
      flush(output, buffered, pending);
      buffered = 0;
      pending = 0;
    }
    if (worstCase > OUTPUT_BYTES) {
      const bytes = Buffer.from(line);
      flush(bytes, bytes.length, 1);
      continue;
    }
    buffered += output.write(line, buffered, 'utf8');
    pending += 1;
  }
  if (buffered > 0) flush(output, buffered, pending);
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
