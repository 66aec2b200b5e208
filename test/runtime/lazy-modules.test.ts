/**
 * Idle memory is a bar (a sidecar next to every service): modules only some proxies need stay unloaded
 * until used. undici's index drags in fetch, WebSocket and the cache stores (~5 MB of RSS); the
 * OpenTelemetry serializer and resources load only when a tracing runtime is built.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const PIPELINE = fileURLToPath(new URL('../../gateway/pipeline/table.js', import.meta.url));
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
const isOtelExportCode = (path: string) => /@opentelemetry[\\/](otlp-transformer|resources)[\\/]/.test(path);

t.test('the request pipeline (every plugin) loads neither undici\'s index nor OpenTelemetry\'s export code', async (t) => {
  const loaded = loadedAfter([PIPELINE]);
  t.ok(loaded.some((path) => /[\\/]undici[\\/]lib[\\/]dispatcher[\\/]pool\.js$/.test(path)), 'undici\'s pool is loaded (the check sees CommonJS modules)');
  t.same(loaded.filter(isUndiciIndex), []);
  t.same(loaded.filter(isOtelExportCode), []);
});

t.test('a tracing runtime loads the OTLP serializer, still without undici\'s index', async (t) => {
  const loaded = loadedAfter(
    [TRACING_RUNTIME],
    `const { TracingRuntime } = await import(${JSON.stringify(TRACING_RUNTIME)});
     const runtime = new TracingRuntime({ url: 'http://127.0.0.1:9/v1/traces', samplingRatio: 1, serviceName: 's', headers: {}, limits: { maxQueueSize: 1, maxExportBatchSize: 1, scheduledDelayMillis: 1000, exportTimeoutMillis: 1000 } });
     await runtime.shutdown();`,
  );
  t.ok(loaded.some((path) => /otlp-transformer/.test(path)));
  t.same(loaded.filter(isUndiciIndex), []);
});
