/**
 * The binary form of an access-log record, as it travels from the request path to the writer thread.
 * The request path only copies raw values into a chunk (numbers as float64, strings as their bytes);
 * the writer does all the formatting, from the bytes. A string field that has the same value as in the
 * chunk's previous record is written as one byte, so the values most requests share (method, authority,
 * route, cluster, upstream host, client address, user agent) cost a comparison, not a copy.
 *
 * A record: one byte of format, the numbers, one byte of truncated-field bits, then each string field
 * as a tag byte (null, same as before, Latin-1 bytes, UTF-8 bytes) with a uint32 byte length when it
 * has bytes. Node decodes request lines and headers as Latin-1, so client-controlled values always take
 * the one-byte path; UTF-8 is for config values such as route names.
 */

import { NUMBER_FIELD_COUNT, STRING_FIELD_COUNT } from './record.js';
import type { RawRecord, RecordFormat } from './record.js';

const FORMAT_CODES: Readonly<Record<RecordFormat, number>> = { JSON: 0, TEXT: 1 };

/**
 * Called through `call` rather than as `value.charCodeAt`: the request's strings come in every
 * representation V8 has, so the property load of the method went megamorphic, once per character.
 */
const charCodeAt = String.prototype.charCodeAt;

const TAG_NULL = 0;
const TAG_SAME = 1;
const TAG_LATIN1 = 2;
const TAG_UTF8 = 3;

const FIXED_BYTES = 1 + NUMBER_FIELD_COUNT * 8 + 1;
/** Tag and length. */
const STRING_HEADER_BYTES = 5;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
const MAX_UTF8_BYTES_PER_CHAR = 3;

/** A chunk of encoded records; the request path fills it, the writer thread formats it. */
export class RecordChunk {
  readonly bytes: Buffer;
  private readonly view: DataView;
  used = 0;
  records = 0;
  /** Each string field's value in the previous record of this chunk (undefined: no record yet). */
  private readonly previous: (string | null | undefined)[] = new Array<string | null | undefined>(STRING_FIELD_COUNT).fill(undefined);

  constructor(readonly buffer: ArrayBuffer) {
    this.bytes = Buffer.from(buffer);
    this.view = new DataView(buffer);
  }

  get capacity(): number {
    return this.buffer.byteLength;
  }

  /** Bytes `record` may take at most, whatever its strings hold. */
  static boundOf(record: RawRecord): number {
    let bound = FIXED_BYTES;
    for (const value of record.strings) bound += STRING_HEADER_BYTES + (value === null ? 0 : value.length * MAX_UTF8_BYTES_PER_CHAR);
    return bound;
  }

  /**
   * Appends `record`, to be written in `format`, and says true; or says false when it does not fit,
   * leaving the chunk's records as they were (the chunk is then full: the record goes into a new one,
   * where it fits whenever the chunk is at least boundOf(record)). Only the strings that changed since the
   * previous record have their length read: on the request path, 18 reads of `length` on strings of
   * every representation (sliced, cons, internalized...) were a megamorphic property load each.
   */
  append(record: RawRecord, format: RecordFormat): boolean {
    const view = this.view;
    const capacity = this.capacity;
    let at = this.used;
    if (at + FIXED_BYTES + STRING_FIELD_COUNT > capacity) return false;
    view.setUint8(at, FORMAT_CODES[format]);
    const numbers = record.numbers;
    for (let field = 0; field < NUMBER_FIELD_COUNT; field++) view.setFloat64(at + 1 + field * 8, numbers[field] as number, true);
    view.setUint8(at + FIXED_BYTES - 1, record.truncated);
    at += FIXED_BYTES;
    const strings = record.strings;
    const previous = this.previous;
    for (let field = 0; field < STRING_FIELD_COUNT; field++) {
      const value = strings[field] as string | null;
      if (value === previous[field]) {
        view.setUint8(at, TAG_SAME);
        at += 1;
      } else if (value === null) {
        previous[field] = value;
        at = this.writeNull(at);
      } else {
        // Room for this string and a tag byte for each field after it.
        if (at + STRING_HEADER_BYTES + value.length * MAX_UTF8_BYTES_PER_CHAR + (STRING_FIELD_COUNT - field - 1) > capacity) return false;
        previous[field] = value;
        at = this.writeString(at, value);
      }
    }
    this.used = at;
    this.records += 1;
    return true;
  }

  private writeNull(at: number): number {
    this.view.setUint8(at, TAG_NULL);
    return at + 1;
  }

  private writeString(at: number, value: string): number {
    const bytes = this.bytes;
    const start = at + STRING_HEADER_BYTES;
    const length = value.length;
    let index = 0;
    for (; index < length; index++) {
      const code = charCodeAt.call(value, index);
      if (code > 0xff) break;
      bytes[start + index] = code;
    }
    if (index === length) {
      this.view.setUint8(at, TAG_LATIN1);
      this.view.setUint32(at + 1, length, true);
      return start + length;
    }
    const written = bytes.write(value, start, 'utf8');
    this.view.setUint8(at, TAG_UTF8);
    this.view.setUint32(at + 1, written, true);
    return start + written;
  }
}

/**
 * One record of a chunk as the writer reads it: its numbers, and where each string field's bytes are
 * in the chunk. The bytes are never decoded into strings: the line encoder copies them into the line.
 */
export class RecordView {
  format: RecordFormat = 'JSON';
  readonly numbers = new Float64Array(NUMBER_FIELD_COUNT);
  truncated = 0;
  /** Per string field: where its bytes start (in the record that last wrote it), -1 for null. */
  readonly starts = new Int32Array(STRING_FIELD_COUNT).fill(-1);
  readonly lengths = new Int32Array(STRING_FIELD_COUNT);
  /** Per string field: 1 when its bytes are UTF-8, 0 when Latin-1. */
  readonly utf8 = new Uint8Array(STRING_FIELD_COUNT);
  /** Per string field: 1 when this record wrote its value, 0 when it is the previous record's. */
  readonly changed = new Uint8Array(STRING_FIELD_COUNT);

  constructor(readonly bytes: Buffer) {}
}

/** Reads the records of a chunk's bytes, one at a time, into one reused RecordView. */
export class RecordReader {
  private readonly view: DataView;
  private at = 0;
  readonly record: RecordView;

  constructor(
    bytes: Buffer,
    private readonly used: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.record = new RecordView(bytes);
  }

  /** Reads the next record into `record`; false past the last one. */
  next(): boolean {
    if (this.at >= this.used) return false;
    const view = this.view;
    const record = this.record;
    let at = this.at;
    record.format = view.getUint8(at) === FORMAT_CODES.TEXT ? 'TEXT' : 'JSON';
    const numbers = record.numbers;
    for (let field = 0; field < NUMBER_FIELD_COUNT; field++) numbers[field] = view.getFloat64(at + 1 + field * 8, true);
    record.truncated = view.getUint8(at + FIXED_BYTES - 1);
    at += FIXED_BYTES;
    const { starts, lengths, utf8, changed } = record;
    for (let field = 0; field < STRING_FIELD_COUNT; field++) {
      const tag = view.getUint8(at);
      at += 1;
      changed[field] = tag === TAG_SAME ? 0 : 1;
      if (tag === TAG_SAME) continue;
      if (tag === TAG_NULL) {
        starts[field] = -1;
        lengths[field] = 0;
        continue;
      }
      const length = view.getUint32(at, true);
      at += 4;
      starts[field] = at;
      lengths[field] = length;
      utf8[field] = tag === TAG_UTF8 ? 1 : 0;
      at += length;
    }
    this.at = at;
    return true;
  }
}
