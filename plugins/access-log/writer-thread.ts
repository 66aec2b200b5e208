/**
 * The access log's writer thread (Envoy's access-log flush thread): it receives chunks of raw records
 * from the request path, formats them into lines and appends the lines to their file with blocking
 * writes, so neither the formatting nor the kernel's file write runs on the event loop. Each chunk is
 * sent back once written, for the request path to fill again. Chunks are processed in the order they
 * were posted, so a `flush` answered here means everything posted before it is in the file.
 */
import { writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { decodeRecords } from './record-codec.js';
import { formatJson, formatText, toAccessLogRecord } from './record.js';

export type ToWriter =
  | { readonly kind: 'chunk'; readonly id: number; readonly fd: number; readonly buffer: ArrayBuffer; readonly used: number }
  | { readonly kind: 'flush'; readonly id: number };

/** Every chunk comes back, as `written` or as `failed` with the lines its failed writes held. */
export type FromWriter =
  | { readonly kind: 'written'; readonly id: number; readonly buffer: ArrayBuffer }
  | { readonly kind: 'failed'; readonly id: number; readonly buffer: ArrayBuffer; readonly lines: number; readonly reason: string }
  | { readonly kind: 'flushed'; readonly id: number };

/** Lines are gathered up to this many bytes per write call. */
const OUTPUT_BYTES = 1024 * 1024;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
const MAX_BYTES_PER_CHAR = 3;
/** A full pipe (standard output read slowly) is retried this often, for at most WRITE_STALL_LIMIT_MS. */
const RETRY_PAUSE_MS = 5;
const WRITE_STALL_LIMIT_MS = 10_000;

const pause = new Int32Array(new SharedArrayBuffer(4));
/** Shared by every chunk: each chunk's writes complete before the next chunk is formatted. */
const output = Buffer.allocUnsafeSlow(OUTPUT_BYTES);

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

/**
 * One chunk's lines, gathered into the output buffer and written in as few calls as it allows. Lines
 * whose write fails are counted, not retried.
 */
class LineBatch {
  private used = 0;
  private lines = 0;
  unwritten = 0;
  failure = '';

  constructor(private readonly fd: number) {}

  append(line: string): void {
    const worstCase = line.length * MAX_BYTES_PER_CHAR;
    if (this.used + worstCase > OUTPUT_BYTES) this.write();
    if (worstCase > OUTPUT_BYTES) {
      const bytes = Buffer.from(line);
      this.writeOut(bytes, bytes.length, 1);
      return;
    }
    this.used += output.write(line, this.used, 'utf8');
    this.lines += 1;
  }

  write(): void {
    if (this.used > 0) this.writeOut(output, this.used, this.lines);
    this.used = 0;
    this.lines = 0;
  }

  private writeOut(bytes: Buffer, length: number, lines: number): void {
    try {
      writeAll(this.fd, bytes, length);
    } catch (error) {
      this.unwritten += lines;
      this.failure = (error as Error).message;
    }
  }
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
  const batch = new LineBatch(message.fd);
  decodeRecords(Buffer.from(buffer, 0, used), used, (raw) => {
    const record = toAccessLogRecord(raw);
    batch.append(raw.format === 'TEXT' ? formatText(record) : formatJson(record));
  });
  batch.write();
  const reply: FromWriter = batch.unwritten === 0 ? { kind: 'written', id, buffer } : { kind: 'failed', id, buffer, lines: batch.unwritten, reason: batch.failure };
  parent.postMessage(reply, [buffer]);
});
