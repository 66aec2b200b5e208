import t from 'tap';
import { hopIds } from '../../plugins/tracing/propagation.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

t.test('a new trace: the traceparent names the hop ids, which are hex slices of it and never all zero', async (t) => {
  const seen = new Set<string>();
  let malformed = 0;
  for (let index = 0; index < 5000; index++) {
    const sampled = index % 2 === 0;
    const { traceId, spanId, traceparent } = hopIds(null, sampled);
    const match = TRACEPARENT.exec(traceparent);
    if (match === null || match[1] !== traceId || match[2] !== spanId || match[3] !== (sampled ? '01' : '00') || /^0+$/.test(traceId) || /^0+$/.test(spanId)) malformed++;
    seen.add(traceId).add(spanId);
  }
  t.equal(malformed, 0);
  t.equal(seen.size, 10_000, 'every id drawn is new');
});

t.test('a continued trace keeps the incoming trace id and gets a span id of its own', async (t) => {
  const incoming = '4bf92f3577b34da6a3ce929d0e0e4736';
  const first = hopIds(incoming, true);
  const second = hopIds(incoming, false);
  t.equal(first.traceId, incoming);
  t.equal(first.traceparent, `00-${incoming}-${first.spanId}-01`);
  t.equal(second.traceparent, `00-${incoming}-${second.spanId}-00`);
  t.not(first.spanId, second.spanId);
  const fresh = hopIds(null, false);
  t.not(fresh.traceId, incoming, 'the next new trace does not inherit the previous one');
  t.equal(first.traceparent, `00-${incoming}-${first.spanId}-01`, 'an earlier hop keeps its header when the next is built');
});
