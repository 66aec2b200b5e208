import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import t from 'tap';
import { SpanExporter } from '../../plugins/tracing/exporter.js';
import { otlpSpanJson } from '../../plugins/tracing/otlp-json.js';
import { SpanBatch } from '../../plugins/tracing/span-batch.js';
import { OtlpReceiver } from './otlp-receiver.js';

/** The bytes of a batch of one span per id. */
function batchOf(...spanIds: string[]): Uint8Array {
  const batch = new SpanBatch();
  for (const spanId of spanIds) {
    batch.add(
      otlpSpanJson(
        { context: { traceId: 'a'.repeat(32), spanId, traceFlags: TraceFlags.SAMPLED }, parent: undefined, kind: SpanKind.SERVER, startEpochMs: Date.now() - 5, attributes: { 'http.request.method': 'GET' } },
        'route',
        { code: SpanStatusCode.UNSET },
        Date.now(),
      ),
    );
  }
  return batch.json;
}

t.test('batches go out from the export thread, and a stopped thread is started again by the next batch', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const exporter = new SpanExporter({ url: receiver.url, serviceName: 'app.default', timeoutMs: 2000, headers: { 'x-tenant': 'blue' } });
  t.teardown(() => exporter.shutdown());
  t.equal(await exporter.export(batchOf('1'.repeat(16), '2'.repeat(16))), true, 'accepted');
  t.same(receiver.spans.map((span) => [span.spanId, span.serviceName]), [['1'.repeat(16), 'app.default'], ['2'.repeat(16), 'app.default']]);
  t.equal(receiver.requestHeaders[0]?.['x-tenant'], 'blue', 'the configured headers go along');
  receiver.status = 503;
  t.equal(await exporter.export(batchOf('3'.repeat(16))), false, 'a refused batch is reported as not accepted');
  receiver.status = 200;
  await exporter.shutdown();
  t.equal(await exporter.export(batchOf('4'.repeat(16))), true, 'after a stop, the next batch starts a new thread');
  t.same(receiver.spans.map((span) => span.spanId).at(-1), '4'.repeat(16));
});

t.test('an idle export thread does not keep the process alive', async (t) => {
  const exporterModule = fileURLToPath(new URL('../../plugins/tracing/exporter.js', import.meta.url));
  const script = `import(${JSON.stringify(exporterModule)}).then(({ SpanExporter }) => { new SpanExporter({ url: 'http://127.0.0.1:9/v1/traces', serviceName: 's', timeoutMs: 1000, headers: {} }); })`;
  const started = Date.now();
  await promisify(execFile)(process.execPath, ['-e', script], { timeout: 60_000 });
  t.ok(Date.now() - started < 60_000, 'the process exited by itself');
});

t.test('two shutdowns at once both end', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const exporter = new SpanExporter({ url: receiver.url, serviceName: 'app.default', timeoutMs: 2000, headers: {} });
  t.equal(await exporter.export(batchOf('5'.repeat(16))), true);
  await Promise.all([exporter.shutdown(), exporter.shutdown()]);
  t.pass('both shutdowns resolved');
  t.equal(await exporter.export(batchOf('6'.repeat(16))), true, 'and a later batch still goes out, from a new thread');
  await exporter.shutdown();
});
