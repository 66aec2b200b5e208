import t from 'tap';
import { RecordChunk, RecordReader, STRING_FIELD_COUNT, StringField, emptyRawRecord } from '../../plugins/access-log/record-codec.js';
import type { RawRecord } from '../../plugins/access-log/record-codec.js';

function copyOf(record: RawRecord): RawRecord {
  return { ...record, strings: [...record.strings] };
}

function roundTrip(records: readonly RawRecord[], chunkBytes = 1 << 20): RawRecord[] {
  const chunk = new RecordChunk(new ArrayBuffer(chunkBytes));
  for (const record of records) {
    if (chunk.used + RecordChunk.boundOf(record) > chunk.capacity) throw new Error('test chunk too small');
    chunk.append(record);
  }
  return decodedRecords(chunk);
}

function decodedRecords(chunk: RecordChunk): RawRecord[] {
  const reader = new RecordReader(chunk.bytes, chunk.used);
  const decoded: RawRecord[] = [];
  while (reader.next()) decoded.push(copyOf(reader.record));
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
    record.format = index % 3 === 0 ? 'TEXT' : 'JSON';
    record.startEpochMs = 1_790_000_000_000 + index;
    record.durationMs = index % 7;
    record.upstreamServiceTimeMs = index % 4 === 0 ? null : index / 2;
    record.bytesReceived = 100 + index;
    record.bytesSent = 2 ** 40 + index;
    record.responseCode = index % 5 === 0 ? 503 : 200;
    record.remotePort = index % 2 === 0 ? null : 50_000 + index;
    record.localPort = index % 6 === 0 ? null : 8080;
    record.truncated = index % 16;
    // Each field walks the sequence at its own offset, so neighbouring fields change on different records.
    for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = SEQUENCE[(index + field) % SEQUENCE.length] ?? null;
    records.push(record);
  }
  const decoded = roundTrip(records);
  t.equal(decoded.length, records.length);
  let mismatches = 0;
  records.forEach((record, index) => {
    const lost = JSON.stringify(decoded[index]) !== JSON.stringify(record);
    // The lone surrogate has no UTF-8 form: it is the one value that comes back as U+FFFD.
    const expected = JSON.stringify({ ...record, strings: record.strings.map((value) => value?.replace('\ud800', '\ufffd') ?? null) });
    if (lost && JSON.stringify(decoded[index]) !== expected) mismatches++;
  });
  t.equal(mismatches, 0, 'no field differs');
});

t.test('a repeated value costs one byte, and a new chunk starts with every value in full', async (t) => {
  const record = emptyRawRecord();
  for (let field = 0; field < STRING_FIELD_COUNT; field++) record.strings[field] = `value of field ${field}`;
  const chunk = new RecordChunk(new ArrayBuffer(64 * 1024));
  chunk.append(record);
  const first = chunk.used;
  chunk.append(record);
  const stringBytes = record.strings.reduce((sum, value) => sum + 1 + 4 + (value?.length ?? 0), 0);
  t.equal(chunk.used - first, first - stringBytes + STRING_FIELD_COUNT, 'the second record holds one tag byte per string, no string bytes');
  const next = new RecordChunk(new ArrayBuffer(64 * 1024));
  next.append(record);
  t.equal(next.used, first, 'nothing is assumed from another chunk');
  t.same(decodedRecords(next)[0]?.strings, record.strings);
});

t.test('the bound of a record covers its worst case', async (t) => {
  const record = emptyRawRecord();
  record.strings[StringField.path] = '\u0800'.repeat(1000);
  record.strings[StringField.userAgent] = '\u00ff'.repeat(1000);
  const bound = RecordChunk.boundOf(record);
  const chunk = new RecordChunk(new ArrayBuffer(bound));
  chunk.append(record);
  t.ok(chunk.used <= bound);
  const [decoded] = roundTrip([record]);
  t.equal(decoded?.strings[StringField.path], record.strings[StringField.path]);
  t.equal(decoded?.strings[StringField.userAgent], record.strings[StringField.userAgent]);
});
