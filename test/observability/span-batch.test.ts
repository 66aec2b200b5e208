import t from 'tap';
import { SpanBatch } from '../../plugins/tracing/span-batch.js';

t.test('a batch holds its spans as comma-separated UTF-8, across every growth of its buffer', async (t) => {
  const batch = new SpanBatch();
  const spans: { id: number; name: string }[] = [];
  // ~200 KiB of spans with one-, two-, three- and four-byte characters: the buffer (64 KiB at first) doubles twice.
  for (let id = 0; id < 600; id++) {
    const span = { id, name: `route-${id}-é-€-😀-${'x'.repeat(id % 700)}` };
    spans.push(span);
    batch.add(JSON.stringify(span));
  }
  t.equal(batch.spans, 600);
  t.same(JSON.parse(`[${Buffer.from(batch.json).toString('utf8')}]`), spans);
});

t.test('an empty batch has no bytes, and one span has no comma', async (t) => {
  const batch = new SpanBatch();
  t.equal(batch.json.length, 0);
  batch.add('{"a":1}');
  t.equal(Buffer.from(batch.json).toString('utf8'), '{"a":1}');
});
