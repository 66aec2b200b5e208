import t from 'tap';
import { RecordChunk, RecordReader } from '../../plugins/access-log/record-codec.js';
import type { RecordView } from '../../plugins/access-log/record-codec.js';
import { NumberField, STRING_FIELD_COUNT, StringField, emptyRawRecord } from '../../plugins/access-log/record.js';
import type { RawRecord, RecordFormat } from '../../plugins/access-log/record.js';

interface Decoded {
  readonly format: RecordFormat;
  readonly strings: (string | null)[];
  readonly numbers: number[];
  readonly truncated: number;
}

function plain(record: RawRecord, format: RecordFormat): Decoded {
  return { format, strings: [...record.strings], numbers: [...record.numbers], truncated: record.truncated };
}

/** The strings a view's bytes stand for (the writer never decodes them; the test does, to compare). */
function viewed(view: RecordView): Decoded {
  const strings = Array.from({ length: STRING_FIELD_COUNT }, (_, field) => {
    const start = view.starts[field] as number;
    return start === -1 ? null : view.bytes.toString(view.utf8[field] === 1 ? 'utf8' : 'latin1', start, start + (view.lengths[field] as number));
  });
  return { format: view.format, strings, numbers: [...view.numbers], truncated: view.truncated };
}

const formatOf = (index: number): RecordFormat => (index % 3 === 0 ? 'TEXT' : 'JSON');

function roundTrip(records: readonly RawRecord[], chunkBytes = 1 << 20): Decoded[] {
  const chunk = new RecordChunk(new ArrayBuffer(chunkBytes));
  records.forEach((record, index) => {
    if (chunk.used + RecordChunk.boundOf(record) > chunk.capacity) throw new Error('test chunk too small');
    chunk.append(record, formatOf(index));
  });
  return decodedRecords(chunk);
}

function decodedRecords(chunk: RecordChunk): Decoded[] {
  const reader = new RecordReader(chunk.bytes, chunk.used);
  const decoded: Decoded[] = [];
  while (reader.next()) decoded.push(viewed(reader.record));
  return decoded;
}

/** Values for one string field, in an order that exercises "same as the previous record" and every encoding. */
const SEQUENCE: readonly (string | null)[] = [
  'plain',
  'plain',
  null,
  null,
  '',
  'quote"back\\slash\nline\u0000ctl',
  'latin-1 é\u00ff',
  'latin-1 é\u00ff',
  'beyond latin-1: ✓ \ud83d\ude00 and a lone \ud800',
  'plain',
];

t.test('every field of a record sequence decodes to what was captured, whatever its characters', async (t) => {
  const records: RawRecord[] = [];
  for (let index = 0; index < SEQUENCE.length * STRING_FIELD_COUNT; index++) {
    const record = emptyRawRecord();
    const numbers = record.numbers;
    numbers[NumberField.startEpochMs] = 1_790_000_000_000 + index;
    numbers[NumberField.durationMs] = index % 7;
    numbers[NumberField.upstreamServiceTimeMs] = index % 4 === 0 ? NaN : index / 2;
    numbers[NumberField.bytesReceived] = 100 + index;
    numbers[NumberField.bytesSent] = 2 ** 40 + index;
    numbers[NumberField.responseCode] = index % 5 === 0 ? 503 : 200;
    numbers[NumberField.remotePort] = index % 2 === 0 ? NaN : 50_000 + index;
    numbers[NumberField.localPort] = index % 6 === 0 ? NaN : 8080;
    record.truncated = index % 16;
    // Each field walks the sequence at its own offset, so neighbouring fields change on different records.
    for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = SEQUENCE[(index + field) % SEQUENCE.length] ?? null;
    records.push(record);
  }
  const decoded = roundTrip(records);
  t.equal(decoded.length, records.length);
  let mismatches = 0;
  records.forEach((record, index) => {
    const captured = plain(record, formatOf(index));
    const lost = JSON.stringify(decoded[index]) !== JSON.stringify(captured);
    // The lone surrogate has no UTF-8 form: it is the one value that comes back as U+FFFD.
    const expected = JSON.stringify({ ...captured, strings: captured.strings.map((value) => value?.replace('\ud800', '\ufffd') ?? null) });
    if (lost && JSON.stringify(decoded[index]) !== expected) mismatches++;
  });
  t.equal(mismatches, 0, 'no field differs');
});

t.test('a repeated value costs one byte, and a new chunk starts with every value in full', async (t) => {
  const record = emptyRawRecord();
  for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = `value of field ${field}`;
  const chunk = new RecordChunk(new ArrayBuffer(64 * 1024));
  chunk.append(record, 'JSON');
  const first = chunk.used;
  chunk.append(record, 'JSON');
  const stringBytes = record.strings.reduce((sum, value) => sum + 1 + 4 + (value?.length ?? 0), 0);
  t.equal(chunk.used - first, first - stringBytes + STRING_FIELD_COUNT, 'the second record holds one tag byte per string, no string bytes');
  const next = new RecordChunk(new ArrayBuffer(64 * 1024));
  next.append(record, 'JSON');
  t.equal(next.used, first, 'nothing is assumed from another chunk');
  t.same(decodedRecords(next)[0]?.strings, record.strings);
});

t.test('the bound of a record covers its worst case', async (t) => {
  const record = emptyRawRecord();
  record.strings[StringField.path] = '\u0800'.repeat(1000);
  record.strings[StringField.userAgent] = '\u00ff'.repeat(1000);
  const bound = RecordChunk.boundOf(record);
  const chunk = new RecordChunk(new ArrayBuffer(bound));
  chunk.append(record, 'JSON');
  t.ok(chunk.used <= bound);
  const [decoded] = roundTrip([record]);
  t.equal(decoded?.strings[StringField.path], record.strings[StringField.path]);
  t.equal(decoded?.strings[StringField.userAgent], record.strings[StringField.userAgent]);
});

t.test('a record that does not fit is refused whole, and the chunk keeps its records', async (t) => {
  const record = emptyRawRecord();
  for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = `value of field ${field}`;
  const chunk = new RecordChunk(new ArrayBuffer(RecordChunk.boundOf(record) + 40));
  t.ok(chunk.append(record, 'JSON'), 'the first record fits');
  const used = chunk.used;
  const changed = { ...record, strings: record.strings.map((value) => `${value} changed`) };
  t.notOk(chunk.append(changed, 'JSON'), 'the second one does not');
  t.equal(chunk.used, used);
  t.equal(chunk.records, 1);
  t.same(decodedRecords(chunk).map((decoded) => decoded.strings), [record.strings], 'the chunk decodes to the first record alone');
  const next = new RecordChunk(new ArrayBuffer(RecordChunk.boundOf(changed)));
  t.ok(next.append(changed, 'JSON'), 'a chunk of its bound takes it');
  t.same(decodedRecords(next)[0]?.strings, changed.strings);
});
