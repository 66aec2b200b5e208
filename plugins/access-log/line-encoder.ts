/**
 * Writes access-log lines as UTF-8 bytes straight into the buffer that the file writer appends, on the
 * request path. Most of a line repeats the line before it (method, authority, route, cluster, upstream
 * host, local address, user agent...): a run of fields whose values did not change is copied from the
 * previous line's bytes in one move, and only the fields that changed are encoded. Encoding writes the
 * bytes `JSON.stringify` and UTF-8 would, without building the line as a string first: building and
 * then encoding a string, on a writer thread, measured 1.5 us a line here, this under 0.5 us.
 */
import { FieldKind, MAX_LAYOUT_FIELDS } from './layout.js';
import type { LayoutField, LineLayout } from './layout.js';
import { BOUNDED_FIELDS, NUMBER_FIELD_COUNT, STRING_FIELD_COUNT } from './record.js';
import type { RawRecord } from './record.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DASH = 0x2d;
const NULL_BYTES = Uint8Array.from([0x6e, 0x75, 0x6c, 0x6c]);
const HTTP_SLASH = Uint8Array.from([0x48, 0x54, 0x54, 0x50, 0x2f]);
const TRUNCATED_PREFIX = Uint8Array.from(Buffer.from(',"truncated_fields":[', 'latin1'));
const TRUNCATED_NAMES = BOUNDED_FIELDS.map(({ name }) => Uint8Array.from(Buffer.from(`"${name}"`, 'latin1')));
const HEX = Uint8Array.from(Buffer.from('0123456789abcdef', 'latin1'));
/** JSON's two-character escapes, by code unit (0 where there is none). */
const SHORT_ESCAPES = new Uint8Array(0x60);
for (const [code, letter] of [[0x08, 'b'], [0x09, 't'], [0x0a, 'n'], [0x0c, 'f'], [0x0d, 'r'], [QUOTE, '"'], [BACKSLASH, '\\']] as const) SHORT_ESCAPES[code] = letter.charCodeAt(0);

function sameNumber(a: number, b: number): boolean {
  return a === b || (a !== a && b !== b);
}

function writeBytes(out: Buffer, at: number, bytes: Uint8Array): number {
  out.set(bytes, at);
  return at + bytes.length;
}

function writeQuote(out: Buffer, at: number): number {
  out[at] = QUOTE;
  return at + 1;
}

/** An absent value: `null` in JSON, `-` in text. */
function writeAbsent(out: Buffer, at: number, json: boolean): number {
  if (json) return writeBytes(out, at, NULL_BYTES);
  out[at] = DASH;
  return at + 1;
}

function writeLatin1(out: Buffer, at: number, text: string): number {
  for (let index = 0; index < text.length; index++) out[at++] = text.charCodeAt(index);
  return at;
}

function writeNumber(out: Buffer, at: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) return writeLatin1(out, at, String(value));
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  const end = at + digits;
  for (let position = end - 1; position >= at; position--) {
    out[position] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return end;
}

/** UTF-8 of a code unit from U+0080 up that is not part of a surrogate pair (a lone surrogate is written as U+FFFD, as Buffer does). */
function writeUtf8Unit(out: Buffer, at: number, code: number): number {
  if (code < 0x800) {
    out[at] = 0xc0 | (code >> 6);
    out[at + 1] = 0x80 | (code & 0x3f);
    return at + 2;
  }
  const unit = code >= 0xd800 && code <= 0xdfff ? 0xfffd : code;
  out[at] = 0xe0 | (unit >> 12);
  out[at + 1] = 0x80 | ((unit >> 6) & 0x3f);
  out[at + 2] = 0x80 | (unit & 0x3f);
  return at + 3;
}

/** UTF-8 of the surrogate pair starting at `index`, or -1 when there is none there. */
function writeSurrogatePair(out: Buffer, at: number, value: string, index: number): number {
  const high = value.charCodeAt(index);
  const low = index + 1 < value.length ? value.charCodeAt(index + 1) : 0;
  if (high > 0xdbff || low < 0xdc00 || low > 0xdfff) return -1;
  const point = ((high - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
  out[at] = 0xf0 | (point >> 18);
  out[at + 1] = 0x80 | ((point >> 12) & 0x3f);
  out[at + 2] = 0x80 | ((point >> 6) & 0x3f);
  out[at + 3] = 0x80 | (point & 0x3f);
  return at + 4;
}

/** `\uXXXX`, lowercase, as JSON.stringify writes control characters and lone surrogates. */
function writeUnicodeEscape(out: Buffer, at: number, code: number): number {
  out[at] = BACKSLASH;
  out[at + 1] = 0x75;
  out[at + 2] = HEX[(code >> 12) & 0xf] as number;
  out[at + 3] = HEX[(code >> 8) & 0xf] as number;
  out[at + 4] = HEX[(code >> 4) & 0xf] as number;
  out[at + 5] = HEX[code & 0xf] as number;
  return at + 6;
}

/** `value` as JSON.stringify writes it, in UTF-8. */
function writeJsonString(out: Buffer, at: number, value: string | null): number {
  if (value === null) return writeBytes(out, at, NULL_BYTES);
  out[at++] = QUOTE;
  const length = value.length;
  for (let index = 0; index < length; index++) {
    const code = value.charCodeAt(index);
    if (code >= 0x20 && code < 0x80 && code !== QUOTE && code !== BACKSLASH) {
      out[at++] = code;
    } else if (code < 0x20 || code === QUOTE || code === BACKSLASH) {
      const letter = SHORT_ESCAPES[code] as number;
      if (letter === 0) {
        at = writeUnicodeEscape(out, at, code);
      } else {
        out[at] = BACKSLASH;
        out[at + 1] = letter;
        at += 2;
      }
    } else if (code >= 0xd800 && code <= 0xdfff) {
      const paired = writeSurrogatePair(out, at, value, index);
      if (paired === -1) {
        at = writeUnicodeEscape(out, at, code);
      } else {
        at = paired;
        index++;
      }
    } else {
      at = writeUtf8Unit(out, at, code);
    }
  }
  out[at++] = QUOTE;
  return at;
}

/** `value` in UTF-8 as it is, `-` when absent or empty (Envoy's text format). */
function writeText(out: Buffer, at: number, value: string | null): number {
  if (value === null || value === '') {
    out[at] = DASH;
    return at + 1;
  }
  const length = value.length;
  for (let index = 0; index < length; index++) {
    const code = value.charCodeAt(index);
    if (code < 0x80) {
      out[at++] = code;
      continue;
    }
    const paired = code >= 0xd800 && code <= 0xdbff ? writeSurrogatePair(out, at, value, index) : -1;
    if (paired === -1) {
      at = writeUtf8Unit(out, at, code);
    } else {
      at = paired;
      index++;
    }
  }
  return at;
}

let isoSecondStart = NaN;
let isoSecondPrefix = new Uint8Array(0);

/** `Date#toISOString()` of `epochMs`, the date and time formatted once per second rather than once per line. */
function writeTimestamp(out: Buffer, at: number, epochMs: number): number {
  const millis = epochMs % 1000;
  const secondStart = epochMs - millis;
  if (secondStart !== isoSecondStart) {
    isoSecondStart = secondStart;
    isoSecondPrefix = Uint8Array.from(Buffer.from(new Date(secondStart).toISOString().slice(0, -4), 'latin1'));
  }
  at = writeBytes(out, at, isoSecondPrefix);
  out[at] = 0x30 + Math.floor(millis / 100);
  out[at + 1] = 0x30 + (Math.floor(millis / 10) % 10);
  out[at + 2] = 0x30 + (millis % 10);
  out[at + 3] = 0x5a;
  return at + 4;
}

export class LineEncoder {
  used = 0;
  lines = 0;
  /** The layout of the buffer's last line; null when there is no line to copy from. */
  private previousLayout: LineLayout | null = null;
  /** Where each field of the last line starts and, after the last field, where its suffix starts. */
  private readonly offsets = new Int32Array(MAX_LAYOUT_FIELDS + 1);
  /** The values the last line was written from. */
  private readonly previousStrings = new Array<string | null>(STRING_FIELD_COUNT).fill(null);
  private readonly previousNumbers = new Float64Array(NUMBER_FIELD_COUNT);
  private previousTruncated = 0;

  constructor(private bytes: Buffer) {}

  get buffer(): Buffer {
    return this.bytes;
  }

  get capacity(): number {
    return this.bytes.length;
  }

  /** Starts over on an empty buffer, whose first line is written in full. */
  reset(bytes: Buffer): void {
    this.bytes = bytes;
    this.used = 0;
    this.lines = 0;
    this.previousLayout = null;
  }

  /** Appends `raw` as a line of `layout`; the caller has checked that `layout.boundOf(raw)` bytes are free. */
  append(raw: RawRecord, layout: LineLayout): void {
    const out = this.bytes;
    const fields = layout.fields;
    const count = fields.length;
    const offsets = this.offsets;
    const copying = this.previousLayout === layout;
    let at = this.used;
    // Start, in the last line, of the unchanged fields not yet copied (-1: none pending).
    let runStart = -1;
    for (let index = 0; index < count; index++) {
      const field = fields[index] as LayoutField;
      const previousOffset = offsets[index] as number;
      if (copying && this.unchanged(field, raw)) {
        if (runStart === -1) runStart = previousOffset;
        offsets[index] = at + (previousOffset - runStart);
        continue;
      }
      if (runStart !== -1) {
        out.copyWithin(at, runStart, previousOffset);
        at += previousOffset - runStart;
        runStart = -1;
      }
      offsets[index] = at;
      at = this.writeField(out, writeBytes(out, at, field.prefix), field, raw, layout.json);
    }
    if (runStart !== -1) {
      const previousEnd = offsets[count] as number;
      out.copyWithin(at, runStart, previousEnd);
      at += previousEnd - runStart;
    }
    offsets[count] = at;
    this.used = writeBytes(out, at, layout.suffix);
    this.lines += 1;
    this.previousLayout = layout;
  }

  private unchanged(field: LayoutField, raw: RawRecord): boolean {
    switch (field.kind) {
      case FieldKind.string:
      case FieldKind.protocol:
        return raw.strings[field.source] === this.previousStrings[field.source];
      case FieldKind.number:
      case FieldKind.timestamp:
        return sameNumber(raw.numbers[field.source] as number, this.previousNumbers[field.source] as number);
      case FieldKind.address:
        return raw.strings[field.source] === this.previousStrings[field.source] && sameNumber(raw.numbers[field.port] as number, this.previousNumbers[field.port] as number);
      case FieldKind.truncated:
        return raw.truncated === this.previousTruncated;
    }
  }

  /** Writes the value of `field` and remembers what it was written from. */
  private writeField(out: Buffer, at: number, field: LayoutField, raw: RawRecord, json: boolean): number {
    switch (field.kind) {
      case FieldKind.string: {
        const value = raw.strings[field.source] ?? null;
        this.previousStrings[field.source] = value;
        return json ? writeJsonString(out, at, value) : writeText(out, at, value);
      }
      case FieldKind.number: {
        const value = raw.numbers[field.source] as number;
        this.previousNumbers[field.source] = value;
        if (value === value) return writeNumber(out, at, value);
        return writeAbsent(out, at, json);
      }
      case FieldKind.timestamp: {
        const value = raw.numbers[field.source] as number;
        this.previousNumbers[field.source] = value;
        if (value !== value) return writeAbsent(out, at, json);
        return json ? writeQuote(out, writeTimestamp(out, writeQuote(out, at), value)) : writeTimestamp(out, at, value);
      }
      case FieldKind.protocol: {
        const version = raw.strings[field.source] ?? null;
        this.previousStrings[field.source] = version;
        const start = json ? writeQuote(out, at) : at;
        // Node's parser gives the version as digits and a dot.
        const end = writeLatin1(out, writeBytes(out, start, HTTP_SLASH), version ?? '');
        return json ? writeQuote(out, end) : end;
      }
      case FieldKind.address:
        return this.writeAddress(out, at, field, raw, json);
      case FieldKind.truncated: {
        const truncated = raw.truncated;
        this.previousTruncated = truncated;
        if (truncated === 0) return at;
        at = writeBytes(out, at, TRUNCATED_PREFIX);
        let first = true;
        for (let index = 0; index < TRUNCATED_NAMES.length; index++) {
          if ((truncated & (1 << index)) === 0) continue;
          if (!first) out[at++] = 0x2c;
          first = false;
          at = writeBytes(out, at, TRUNCATED_NAMES[index] as Uint8Array);
        }
        out[at] = 0x5d;
        return at + 1;
      }
    }
  }

  /** `ip:port`, `[ipv6]:port`, or the IP alone when there is no port; quoted and escaped in JSON. */
  private writeAddress(out: Buffer, at: number, field: LayoutField, raw: RawRecord, json: boolean): number {
    const ip = raw.strings[field.source] ?? null;
    const port = raw.numbers[field.port] as number;
    this.previousStrings[field.source] = ip;
    this.previousNumbers[field.port] = port;
    if (ip === null) return writeAbsent(out, at, json);
    if (port !== port || ip === '') return json ? writeJsonString(out, at, ip) : writeText(out, at, ip);
    const bracketed = ip.includes(':');
    // The IP is written as a JSON string and its closing quote then moved past the port.
    let end = json ? writeJsonString(out, at, ip) - 1 : writeText(out, at, ip);
    if (bracketed) {
      const ipStart = json ? at + 1 : at;
      out.copyWithin(ipStart + 1, ipStart, end);
      out[ipStart] = 0x5b;
      end += 1;
      out[end++] = 0x5d;
    }
    out[end++] = 0x3a;
    end = writeNumber(out, end, port);
    return json ? writeQuote(out, end) : end;
  }
}
