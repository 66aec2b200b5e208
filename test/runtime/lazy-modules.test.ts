/**
 * Idle memory is a bar (a sidecar next to every service): modules only some proxies need stay unloaded
 * until used. undici's index drags in fetch, WebSocket and the cache stores (~5 MB of RSS), and of
 * OpenTelemetry only the API is needed (spans are written as OTLP/JSON by plugins/tracing itself;
 * @opentelemetry/core's TraceState loads on the first request that carries a `tracestate`).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const PIPELINE = fileURLToPath(new URL('../../gateway/composition/plugin-table.js', import.meta.url));
const TRACING_RUNTIME = fileURLToPath(new URL('../../plugins/tracing/runtime.js', import.meta.url));

/** CommonJS modules loaded in a fresh process after importing `modules` (and running `then`). */
function loadedAfter(modules: readonly string[], then = ''): string[] {
  const script = `
    import { createRequire } from 'node:module';
    for (const module of ${JSON.stringify(modules)}) await import(module);
    ${then}
    console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
}

const isUndiciIndex = (path: string) => /[\\/]undici[\\/]index\.js$/.test(path);
const isOtelBeyondApi = (path: string) => /@opentelemetry[\\/](?!api[\\/])/.test(path);

t.test('the request pipeline (every plugin) loads neither undici\'s index nor OpenTelemetry beyond its API', async (t) => {
  const loaded = loadedAfter([PIPELINE]);
  t.ok(loaded.some((path) => /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]pool\.js$/.test(path)), 'undici\'s pool is loaded (the check sees CommonJS modules)');
  t.same(loaded.filter(isUndiciIndex), []);
  t.same(loaded.filter(isOtelBeyondApi), []);
});

t.test('a tracing runtime that exported a batch still loads neither', async (t) => {
  const loaded = loadedAfter(
    [TRACING_RUNTIME],
    `const { TracingRuntime } = await import(${JSON.stringify(TRACING_RUNTIME)});
     const runtime = new TracingRuntime({ url: 'http://127.0.0.1:9/v1/traces', samplingRatio: 1, serviceName: 's', headers: {}, limits: { maxQueueSize: 1, maxExportBatchSize: 1, scheduledDelayMillis: 1000, exportTimeoutMillis: 1000 } });
     runtime.finish({ context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 }, parent: undefined, kind: 1, startEpochMs: Date.now(), attributes: {} }, 'hop', { code: 0 }, Date.now());
     await runtime.shutdown();`,
  );
  t.same(loaded.filter(isUndiciIndex), []);
  t.same(loaded.filter(isOtelBeyondApi), []);
});
