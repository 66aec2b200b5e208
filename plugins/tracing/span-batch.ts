/**
 * A batch of finished spans as the UTF-8 bytes of their OTLP/JSON texts, comma-separated: what goes
 * between the request body's head and tail (otlp-json.ts). Each span is encoded once, when it ends,
 * and the batch's buffer is then handed to the export thread without a copy. Queued as strings, the
 * spans waited seconds in the proxy's old generation for every major GC to trace, and posting a batch
 * cloned all of them on the event loop and again into the thread's heap.
 */

/** First buffer of a batch; it doubles as spans are added (a span text is ~1 KiB). */
const INITIAL_BYTES = 64 * 1024;
const COMMA = 0x2c;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
const MAX_UTF8_BYTES_PER_CHAR = 3;

export class SpanBatch {
  private bytes = Buffer.from(new ArrayBuffer(INITIAL_BYTES));
  private used = 0;
  spans = 0;

  add(spanJson: string): void {
    const needed = this.used + 1 + spanJson.length * MAX_UTF8_BYTES_PER_CHAR;
    if (needed > this.bytes.length) this.grow(needed);
    if (this.spans > 0) this.bytes[this.used++] = COMMA;
    this.used += this.bytes.write(spanJson, this.used, 'utf8');
    this.spans += 1;
  }

  /** The batch's bytes, as a view of an ArrayBuffer that may be transferred to another thread. */
  get json(): Uint8Array {
    return new Uint8Array(this.bytes.buffer, 0, this.used);
  }

  private grow(needed: number): void {
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const bytes = Buffer.from(new ArrayBuffer(size));
    this.bytes.copy(bytes, 0, 0, this.used);
    this.bytes = bytes;
  }
}
