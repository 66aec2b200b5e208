/**
 * The binary form of an access-log record, as it travels from the request path to the writer thread.
 * The request path only copies raw values into a chunk (numbers as float64, strings as their bytes);
 * the writer decodes them and does all the formatting. A string field that has the same value as in the
 * chunk's previous record is written as one byte, so the values most requests share (method, authority,
 * route, cluster, upstream host, client address, user agent) cost a comparison, not a copy.
 *
 * A record: one byte of format, the numbers, one byte of truncated-field bits, then each string field
 * as a tag byte (null, same as before, Latin-1 bytes, UTF-8 bytes) with a uint32 byte length when it
 * has bytes. Node decodes request lines and headers as Latin-1, so client-controlled values always take
 * the one-byte path; UTF-8 is for config values such as route names.
 */

/** The string fields of a record, by their index in `RawRecord.strings` (the encoding order). */
export const StringField = {
  method: 0,
  authority: 1,
  path: 2,
  httpVersion: 3,
  responseFlags: 4,
  details: 5,
  routeName: 6,
  upstreamCluster: 7,
  upstreamHost: 8,
  requestId: 9,
  traceId: 10,
  remoteIp: 11,
  localIp: 12,
  serverName: 13,
  peerPrincipal: 14,
  requestPrincipal: 15,
  userAgent: 16,
  forwardedFor: 17,
} as const;
export const STRING_FIELD_COUNT = Object.keys(StringField).length;

/** The client-controlled fields with a bound, in the order `truncated_fields` lists them (bit i of RawRecord.truncated). */
export const BOUNDED_FIELDS = [
  { name: 'authority', field: StringField.authority },
  { name: 'path', field: StringField.path },
  { name: 'user_agent', field: StringField.userAgent },
  { name: 'x_forwarded_for', field: StringField.forwardedFor },
] as const;

export type RecordFormat = 'JSON' | 'TEXT';
const FORMAT_CODES: Readonly<Record<RecordFormat, number>> = { JSON: 0, TEXT: 1 };

/** The raw values of one request's line; `null` numbers are encoded as NaN. */
export interface RawRecord {
  format: RecordFormat;
  startEpochMs: number;
  durationMs: number;
  upstreamServiceTimeMs: number | null;
  bytesReceived: number;
  bytesSent: number;
  responseCode: number;
  /** The client's port, or null when the client address is written without one (it came from a proxy header). */
  remotePort: number | null;
  localPort: number | null;
  /** One bit per bounded field cut to its bound (bit i = BOUNDED_FIELDS[i]). */
  truncated: number;
  readonly strings: (string | null)[];
}

export function emptyRawRecord(): RawRecord {
  return {
    format: 'JSON',
    startEpochMs: 0,
    durationMs: 0,
    upstreamServiceTimeMs: null,
    bytesReceived: 0,
    bytesSent: 0,
    responseCode: 0,
    remotePort: null,
    localPort: null,
    truncated: 0,
    strings: new Array<string | null>(STRING_FIELD_COUNT).fill(null),
  };
}

const TAG_NULL = 0;
const TAG_SAME = 1;
const TAG_LATIN1 = 2;
const TAG_UTF8 = 3;

const NUMBER_COUNT = 8;
const FIXED_BYTES = 1 + NUMBER_COUNT * 8 + 1;
/** Tag and length. */
const STRING_HEADER_BYTES = 5;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
export const MAX_UTF8_BYTES_PER_CHAR = 3;

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

  /** Appends `record`; the caller has checked that boundOf(record) bytes are free. */
  append(record: RawRecord): void {
    const view = this.view;
    let at = this.used;
    view.setUint8(at, FORMAT_CODES[record.format]);
    view.setFloat64(at + 1, record.startEpochMs, true);
    view.setFloat64(at + 9, record.durationMs, true);
    view.setFloat64(at + 17, record.upstreamServiceTimeMs ?? NaN, true);
    view.setFloat64(at + 25, record.bytesReceived, true);
    view.setFloat64(at + 33, record.bytesSent, true);
    view.setFloat64(at + 41, record.responseCode, true);
    view.setFloat64(at + 49, record.remotePort ?? NaN, true);
    view.setFloat64(at + 57, record.localPort ?? NaN, true);
    view.setUint8(at + 65, record.truncated);
    at += FIXED_BYTES;
    const strings = record.strings;
    const previous = this.previous;
    for (let field = 0; field < STRING_FIELD_COUNT; field++) {
      const value = strings[field] as string | null;
      if (value === previous[field]) {
        view.setUint8(at, TAG_SAME);
        at += 1;
      } else {
        previous[field] = value;
        at = value === null ? this.writeNull(at) : this.writeString(at, value);
      }
    }
    this.used = at;
    this.records += 1;
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
      const code = value.charCodeAt(index);
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

/** Reads back the records of a chunk's bytes, one at a time, into one reused RawRecord. */
export class RecordReader {
  private readonly view: DataView;
  private at = 0;
  readonly record = emptyRawRecord();

  constructor(
    private readonly bytes: Buffer,
    private readonly used: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Decodes the next record into `record`; false past the last one. */
  next(): boolean {
    if (this.at >= this.used) return false;
    const view = this.view;
    const record = this.record;
    let at = this.at;
    record.format = view.getUint8(at) === FORMAT_CODES.TEXT ? 'TEXT' : 'JSON';
    record.startEpochMs = view.getFloat64(at + 1, true);
    record.durationMs = view.getFloat64(at + 9, true);
    record.upstreamServiceTimeMs = nullable(view.getFloat64(at + 17, true));
    record.bytesReceived = view.getFloat64(at + 25, true);
    record.bytesSent = view.getFloat64(at + 33, true);
    record.responseCode = view.getFloat64(at + 41, true);
    record.remotePort = nullable(view.getFloat64(at + 49, true));
    record.localPort = nullable(view.getFloat64(at + 57, true));
    record.truncated = view.getUint8(at + 65);
    at += FIXED_BYTES;
    const strings = record.strings;
    for (let field = 0; field < STRING_FIELD_COUNT; field++) {
      const tag = view.getUint8(at);
      at += 1;
      if (tag === TAG_SAME) continue;
      if (tag === TAG_NULL) {
        strings[field] = null;
        continue;
      }
      const length = view.getUint32(at, true);
      at += 4;
      strings[field] = this.bytes.toString(tag === TAG_LATIN1 ? 'latin1' : 'utf8', at, at + length);
      at += length;
    }
    this.at = at;
    return true;
  }
}

function nullable(value: number): number | null {
  return Number.isNaN(value) ? null : value;
}
