/**
 * The slice of ASN.1 DER (X.690) that X.509 certificates need, read and written by hand: the proxy
 * parses every peer certificate and issues its own, and a general ASN.1 library (@peculiar/x509 and
 * its asn1 stack) held ~5 MB of every sidecar's memory for these few shapes. The reader is strict:
 * definite lengths only, every element inside its parent, no trailing bytes where a single element is
 * expected; anything else throws.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One element: its tag byte and where its header and contents sit in `bytes`. */
export interface Element {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export function readElement(bytes: Uint8Array, offset: number, limit = bytes.length): Element {
  if (offset + 2 > limit) throw new Error('DER: truncated element');
  const tag = bytes[offset] as number;
  // Multi-byte tags (low bits 0x1f) do not occur in the structures read here.
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tag');
  let length = bytes[offset + 1] as number;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4) throw new Error('DER: unsupported length form');
    if (contentStart + octets > limit) throw new Error('DER: truncated length');
    length = 0;
    for (let index = 0; index < octets; index += 1) length = length * 256 + (bytes[contentStart + index] as number);
    contentStart += octets;
  }
  const end = contentStart + length;
  if (end > limit) throw new Error('DER: element overruns its parent');
  return { tag, start: offset, contentStart, end };
}

/** The single element that makes up `bytes` (no trailing data). */
export function readSingle(bytes: Uint8Array): Element {
  const element = readElement(bytes, 0);
  if (element.end !== bytes.length) throw new Error('DER: trailing data');
  return element;
}

export function children(bytes: Uint8Array, parent: Element): Element[] {
  const found: Element[] = [];
  for (let offset = parent.contentStart; offset < parent.end; ) {
    const child = readElement(bytes, offset, parent.end);
    found.push(child);
    offset = child.end;
  }
  return found;
}

export function expectTag(element: Element | undefined, tag: number, what: string): Element {
  if (element === undefined || element.tag !== tag) throw new Error(`DER: ${what} expected`);
  return element;
}

export function contents(bytes: Uint8Array, element: Element): Uint8Array {
  return bytes.subarray(element.contentStart, element.end);
}

export function encoded(bytes: Uint8Array, element: Element): Uint8Array {
  return bytes.subarray(element.start, element.end);
}

export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new Error('DER: empty OID');
  const arcs: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
    }
  }
  if (((bytes[bytes.length - 1] as number) & 0x80) !== 0) throw new Error('DER: truncated OID');
  return arcs.join('.');
}

const TIME_FORMATS: Readonly<Record<number, RegExp>> = {
  [TAG.UTC_TIME]: /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/,
  [TAG.GENERALIZED_TIME]: /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/,
};

/** UTCTime / GeneralizedTime, as RFC 5280 §4.1.2.5 allows them (UTC, seconds; UTCTime years 50–99 are 19xx). */
export function decodeTime(bytes: Uint8Array, element: Element): Date {
  const format = TIME_FORMATS[element.tag];
  const match = format === undefined ? null : format.exec(Buffer.from(contents(bytes, element)).toString('latin1'));
  if (match === null) throw new Error('DER: malformed time');
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  const fullYear = element.tag === TAG.UTC_TIME ? ((year as number) < 50 ? 2000 : 1900) + (year as number) : (year as number);
  return new Date(Date.UTC(fullYear, (month as number) - 1, day, hour, minute, second));
}

/** The text of a string element (DirectoryString choices and IA5String); null for any other type. */
export function decodeString(bytes: Uint8Array, element: Element): string | null {
  const raw = Buffer.from(contents(bytes, element));
  switch (element.tag) {
    case TAG.UTF8_STRING:
      return raw.toString('utf8');
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.TELETEX_STRING:
      return raw.toString('latin1');
    case TAG.BMP_STRING:
      return raw.swap16().toString('utf16le');
    case TAG.UNIVERSAL_STRING: {
      let text = '';
      for (let index = 0; index + 3 < raw.length; index += 4) text += String.fromCodePoint(raw.readUInt32BE(index));
      return text;
    }
    default:
      return null;
  }
}

// --- writing ---------------------------------------------------------------------------------------

function lengthBytes(length: number): number[] {
  if (length < 0x80) return [length];
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return [0x80 | octets.length, ...octets];
}

export function element(tag: number, ...parts: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag, ...lengthBytes(body.length)]), body]);
}

export const sequence = (...parts: readonly Uint8Array[]): Buffer => element(TAG.SEQUENCE, ...parts);
export const set = (...parts: readonly Uint8Array[]): Buffer => element(TAG.SET, ...parts);
export const octetString = (value: Uint8Array): Buffer => element(TAG.OCTET_STRING, value);
export const nullValue = (): Buffer => element(TAG.NULL);
export const booleanTrue = (): Buffer => element(TAG.BOOLEAN, Buffer.from([0xff]));
export const utf8String = (text: string): Buffer => element(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
/** An EXPLICIT context-specific wrapper `[n]`. */
export const explicit = (number: number, inner: Uint8Array): Buffer => element(0xa0 | number, inner);

/** An INTEGER from unsigned big-endian bytes (a leading 0x00 keeps it positive). */
export function unsignedInteger(value: Uint8Array): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start += 1;
  const trimmed = value.subarray(start);
  return element(TAG.INTEGER, (trimmed[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export const smallInteger = (value: number): Buffer => unsignedInteger(Buffer.from([value]));

export function bitString(value: Uint8Array, unusedBits = 0): Buffer {
  return element(TAG.BIT_STRING, Buffer.from([unusedBits]), value);
}

/** A named-bit BIT STRING (KeyUsage): bit 0 is the most significant bit of the first byte; trailing zero bits are dropped (X.690 §11.2.2). */
export function namedBits(bits: readonly number[]): Buffer {
  const highest = Math.max(...bits);
  const value = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) value[bit >> 3] = (value[bit >> 3] as number) | (0x80 >> (bit & 7));
  return bitString(value, 7 - (highest & 7));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0)) throw new Error(`invalid OID "${dotted}"`);
  const bytes: number[] = [];
  for (const arc of [(arcs[0] as number) * 40 + (arcs[1] as number), ...arcs.slice(2)]) {
    const groups = [arc % 128];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) groups.unshift(0x80 | (rest % 128));
    bytes.push(...groups);
  }
  return element(TAG.OID, Buffer.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, UTC. */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return date.getUTCFullYear() < 2050 ? element(TAG.UTC_TIME, Buffer.from(digits.slice(2), 'latin1')) : element(TAG.GENERALIZED_TIME, Buffer.from(digits, 'latin1'));
}
