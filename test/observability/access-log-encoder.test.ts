import t from 'tap';
import { FieldKind, JSON_LAYOUT, LAYOUTS, LineLayout, MAX_LAYOUT_FIELDS, TEXT_LAYOUT } from '../../plugins/access-log/layout.js';
import type { LayoutField } from '../../plugins/access-log/layout.js';
import { LineEncoder } from '../../plugins/access-log/line-encoder.js';
import { RecordChunk, RecordReader } from '../../plugins/access-log/record-codec.js';
import { NUMBER_FIELD_COUNT, NumberField, STRING_FIELD_COUNT, StringField, emptyRawRecord } from '../../plugins/access-log/record.js';
import type { RawRecord } from '../../plugins/access-log/record.js';
import { referenceJsonLine, referenceTextLine } from '../helpers/access-log-reference.js';

/** Values for one string field, in an order that exercises unchanged runs and every escape and encoding. */
const STRINGS: readonly (string | null)[] = [
  'plain',
  'plain',
  null,
  null,
  '',
  'quote"back\\slash\nline\u0000ctl\u001f\b\f\r\t\u007f',
  'latin-1 é\u00ff',
  'latin-1 é\u00ff',
  'beyond latin-1: ✓ \ud83d\ude00, lone \ud800 and \udc00, pair at the end \ud83d\ude00',
  'evil\n{"forged":true}',
  '2001:db8::1',
  'plain',
];
const NUMBERS: readonly number[] = [0, 0, 7, 200, 200, NaN, 65_535, 2 ** 40, 1.5, NaN, 1e21, 9];
const VERSIONS = ['1.1', '1.1', '1.0', '2.0'];

function recordAt(index: number): RawRecord {
  const record = emptyRawRecord();
  // Each field walks the sequence at its own pace, so neighbouring fields change on different lines.
  for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = STRINGS[Math.floor(index / (1 + (field % 3))) % STRINGS.length] ?? null;
  record.strings[StringField.httpVersion] = VERSIONS[Math.floor(index / 5) % VERSIONS.length] ?? '1.1';
  for (let field = 0; field < NUMBER_FIELD_COUNT; field++) record.numbers[field] = NUMBERS[Math.floor(index / (1 + (field % 4))) % NUMBERS.length] ?? 0;
  record.numbers[NumberField.startEpochMs] = 1_790_000_000_000 + Math.floor(index / 2) * 337;
  record.truncated = Math.floor(index / 3) % 16;
  return record;
}

/**
 * Encodes `records` as the writer thread does, from the records' bytes in chunks of `chunkRecords`;
 * the output buffer starts over every `resetEvery` lines, and otherwise runs on across chunks.
 */
function encodeAll(records: readonly RawRecord[], layoutOf: (index: number) => LineLayout, resetEvery = Infinity, chunkRecords = 97): Buffer[] {
  const buffers: Buffer[] = [];
  let encoder = new LineEncoder(Buffer.alloc(1 << 20));
  let line = 0;
  for (let first = 0; first < records.length; first += chunkRecords) {
    const chunk = new RecordChunk(new ArrayBuffer(1 << 20));
    records.slice(first, first + chunkRecords).forEach((record, offset) => {
      if (!chunk.append(record, layoutOf(first + offset).format)) throw new Error('test chunk too small');
    });
    const reader = new RecordReader(chunk.bytes, chunk.used);
    while (reader.next()) {
      if (line > 0 && line % resetEvery === 0) {
        buffers.push(encoder.buffer.subarray(0, encoder.used));
        encoder = new LineEncoder(Buffer.alloc(1 << 20));
      }
      encoder.append(reader.record, LAYOUTS[reader.record.format]);
      line++;
    }
  }
  buffers.push(encoder.buffer.subarray(0, encoder.used));
  return buffers;
}

function mismatches(records: readonly RawRecord[], layoutOf: (index: number) => LineLayout, resetEvery?: number): string[] {
  const written = Buffer.concat(encodeAll(records, layoutOf, resetEvery));
  const expected = Buffer.from(records.map((record, index) => (layoutOf(index) === JSON_LAYOUT ? referenceJsonLine(record) : referenceTextLine(record))).join(''));
  if (written.equals(expected)) return [];
  const writtenLines = written.toString().split('\n');
  const expectedLines = expected.toString().split('\n');
  return expectedLines.flatMap((line, index) => (writtenLines[index] === line ? [] : [`line ${index}:\n  wrote    ${writtenLines[index]}\n  expected ${line}`])).slice(0, 3);
}

const RECORDS = Array.from({ length: 600 }, (_, index) => recordAt(index));

t.test('JSON lines are the bytes JSON.stringify and UTF-8 give, line after line, whatever changes between them', async (t) => {
  t.same(mismatches(RECORDS, () => JSON_LAYOUT), []);
});

t.test('text lines are Istio\'s default format, `-` for absent values', async (t) => {
  t.same(mismatches(RECORDS, () => TEXT_LAYOUT), []);
});

t.test('switching layouts and starting new buffers never copies from the wrong line', async (t) => {
  t.same(mismatches(RECORDS, (index) => (Math.floor(index / 7) % 2 === 0 ? JSON_LAYOUT : TEXT_LAYOUT), 13), []);
});

t.test('JSON lines parse back to every value, one line each, hostile values included', async (t) => {
  const [written] = encodeAll(RECORDS, () => JSON_LAYOUT);
  const lines = (written ?? Buffer.alloc(0)).toString().split('\n');
  t.equal(lines.pop(), '', 'the buffer ends with a line break');
  t.equal(lines.length, RECORDS.length, 'no line break inside a record');
  t.ok(lines.every((line) => typeof JSON.parse(line) === 'object'));
});

t.test('a line stays within the bound of its layout, in the worst case', async (t) => {
  const record = emptyRawRecord();
  for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = field % 2 === 0 ? '\u0001'.repeat(300) : '\ud800'.repeat(300);
  record.strings[StringField.httpVersion] = '1.1';
  record.strings[StringField.remoteIp] = '\u0800'.repeat(300);
  record.numbers.fill(-Number.MAX_VALUE);
  record.numbers[NumberField.startEpochMs] = 8.64e15;
  record.truncated = 0b1111;
  for (const layout of [JSON_LAYOUT, TEXT_LAYOUT]) {
    const chunk = new RecordChunk(new ArrayBuffer(RecordChunk.boundOf(record)));
    t.ok(chunk.append(record, layout.format));
    const reader = new RecordReader(chunk.bytes, chunk.used);
    t.ok(reader.next());
    const bound = layout.boundOf(reader.record);
    const encoder = new LineEncoder(Buffer.alloc(bound));
    encoder.append(reader.record, layout);
    t.ok(encoder.used <= bound, `${layout.format}: ${encoder.used} <= ${bound}`);
    t.equal(encoder.buffer.subarray(0, encoder.used).toString(), layout === JSON_LAYOUT ? referenceJsonLine(record) : Buffer.from(referenceTextLine(record)).toString());
  }
});

t.test('a layout that writes one value twice, or has too many fields, is refused', async (t) => {
  const method: LayoutField = { prefix: new Uint8Array(0), kind: FieldKind.string, source: StringField.method, port: -1 };
  t.throws(() => new LineLayout('JSON', [method, method], new Uint8Array(0)), /written by two fields/);
  t.throws(() => new LineLayout('JSON', Array.from({ length: MAX_LAYOUT_FIELDS + 1 }, () => method), new Uint8Array(0)), /more than 64 fields/);
});
