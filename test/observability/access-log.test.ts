import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { request } from 'undici';
import { MESH_CONFIG_API_VERSION } from '../../gateway/config/kinds/mesh-config.js';
import { ACCESS_LOG_UNWRITABLE, createAccessLogPlugin } from '../../plugins/access-log/index.js';
import type { AccessLogPluginOptions } from '../../plugins/access-log/index.js';
import { renderPrometheus } from '../../plugins/metrics/index.js';
import { createTracingPlugin } from '../../plugins/tracing/index.js';
import { eventually } from '../helpers/eventually.js';
import { readCompleteJsonLines } from '../helpers/json-lines.js';
import { buildPluginHarness } from '../helpers/plugin-harness.js';
import { makeResource } from '../helpers/resources.js';
import { OtlpReceiver } from './otlp-receiver.js';
import { findSamples, parseSamples } from './prom-text.js';
import { DETAILS_CLUSTER, DETAILS_HOST, scenarioPlugin } from './scenario-plugin.js';

const SECRET = 'sup3r-s3cret-value';

function meshConfig(accessLog: Record<string, unknown>) {
  return makeResource('MeshConfig', 'mesh', { accessLog }, { apiVersion: MESH_CONFIG_API_VERSION, namespace: 'istio-system' });
}

async function startHarness(t: Test, accessLog: Record<string, unknown>, options: AccessLogPluginOptions = {}) {
  const plugin = createAccessLogPlugin(options);
  const { app, diagnostics } = await buildPluginHarness({ plugins: [scenarioPlugin, plugin], resources: [meshConfig(accessLog)] });
  t.teardown(async () => {
    await app.close();
    await plugin.close();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  return { app, plugin, base, diagnostics };
}

async function readLines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((line) => line !== '');
}

/**
 * The file's lines once `count` are there. fastify runs onResponse when the response has been handed to
 * the socket, which can be after this process's client has read it, so one flush may come too early.
 */
async function flushedLines(plugin: { flush(): Promise<void> }, path: string, count: number): Promise<string[]> {
  return eventually(
    async () => {
      await plugin.flush();
      return existsSync(path) ? await readLines(path) : [];
    },
    (lines) => lines.length >= count,
  );
}

t.test('JSON lines with Envoy-like fields; secrets, query strings and other headers never written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'logs', 'access.jsonl');
  const { plugin, base } = await startHarness(t, { enabled: true, path });

  const routed = await request(`${base}/routed/items?access_token=${SECRET}&page=2`, {
    headers: {
      authorization: `Bearer ${SECRET}`,
      cookie: `session=${SECRET}`,
      'user-agent': 'curl/8.5.0',
      'x-forwarded-for': '203.0.113.9',
      'x-api-key': SECRET,
    },
  });
  const routedBody = await routed.body.text();
  await (await request(`${base}/no-route/x`)).body.text();
  const written = await flushedLines(plugin, path, 2);

  const text = await readFile(path, 'utf8');
  t.notOk(text.includes(SECRET), 'no secret anywhere in the log');
  const [first, second] = written.map((line) => JSON.parse(line) as Record<string, unknown>);
  t.match(first, {
    method: 'GET',
    authority: /^127\.0\.0\.1:\d+$/,
    path: '/routed/items',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    response_code_details: 'via_upstream',
    route_name: 'default/details.0',
    upstream_cluster: DETAILS_CLUSTER,
    upstream_host: DETAILS_HOST,
    upstream_service_time_ms: 7,
    request_id: 'req-1',
    trace_id: null,
    downstream_remote_address: /^127\.0\.0\.1:\d+$/,
    peer_principal: null,
    request_principal: null,
    user_agent: 'curl/8.5.0',
    x_forwarded_for: '203.0.113.9',
  });
  t.same(Object.keys(first ?? {}).sort(), [
    'authority', 'bytes_received', 'bytes_sent', 'downstream_local_address', 'downstream_remote_address', 'duration_ms', 'method',
    'path', 'peer_principal', 'protocol', 'request_id', 'request_principal', 'requested_server_name', 'response_code',
    'response_code_details', 'response_flags', 'route_name', 'start_time', 'trace_id', 'upstream_cluster', 'upstream_host',
    'upstream_service_time_ms', 'user_agent', 'x_forwarded_for',
  ], 'exactly the documented fields: no level, pid, hostname or headers');
  t.ok(Number(first?.['bytes_sent']) > Buffer.byteLength(routedBody), 'bytes_sent counts headers and body');
  t.ok(Number(first?.['bytes_received']) > 200, 'bytes_received counts the request headers');
  t.ok(Math.abs(Date.parse(String(first?.['start_time'])) - Date.now()) < 10000, 'start_time is an ISO timestamp of now');
  t.match(second, { path: '/no-route/x', response_code: 404, response_flags: 'NR', response_code_details: 'route_not_found', upstream_cluster: null });
});

t.test('lines cross chunk boundaries intact and in order, multi-byte text included', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const { plugin, base } = await startHarness(t, { enabled: true, path }, { limits: { maxHeaderValueLength: 4096 } });
  // A user agent of its own per request (latin-1 on the wire, 2 bytes a character in UTF-8): each record
  // carries ~3 KB of it, so 700 of them fill two 1 MiB chunks and then some, and each line (~6 KB)
  // fills a tenth of the writer's output buffer.
  const agentOf = (index: number): string => `${'é\u00ff'.repeat(1500)}${index}`;
  const count = 700;
  for (let index = 0; index < count; index++) {
    const response = await request(`${base}/routed/${index}`, { headers: { host: 'details.example.com', 'user-agent': agentOf(index) } });
    await response.body.dump();
  }
  const lines = (await flushedLines(plugin, path, count)).map((line) => JSON.parse(line) as Record<string, unknown>);
  t.equal(lines.length, count, 'one line per request');
  t.same(lines.map((line) => line.path), Array.from({ length: count }, (_, index) => `/routed/${index}`), 'in request order');
  t.ok(lines.every((line, index) => line.user_agent === agentOf(index)), 'multi-byte text intact at every chunk boundary');
});

t.test('a failing file write loses only its lines, counted and warned about once; requests are unaffected', async (t) => {
  // /dev/full accepts the open and fails every write with ENOSPC, as a full disk does.
  const { plugin, base } = await startHarness(t, { enabled: true, path: '/dev/full' });
  const unwritten = async () => findSamples(parseSamples((await renderPrometheus()).body), 'meshgate_access_log_write_failures_total', { path: '/dev/full' })[0]?.value ?? 0;
  const before = await unwritten();
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  for (let index = 0; index < 3; index++) {
    const response = await request(`${base}/routed/${index}`);
    t.equal(response.statusCode, 200);
    await response.body.dump();
    await plugin.flush();
  }
  const counted = await eventually(
    async () => {
      await plugin.flush();
      return (await unwritten()) - before;
    },
    (lines) => lines >= 3,
  );
  t.equal(counted, 3, 'every unwritten line counted');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(warnings.filter((message) => message.includes('/dev/full')).length, 1, 'one warning for the path');
  t.match(warnings.find((message) => message.includes('/dev/full')), /ENOSPC/);
});

t.test('without a flush, a line reaches the file within the flush interval', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const { base } = await startHarness(t, { enabled: true, path });
  await (await request(`${base}/routed/alone`)).body.dump();
  // Nothing but the flush timer hands the chunk over (the writer thread starts with it), so the line
  // showing up at all is the proof; how soon depends on the machine's load, not on the code.
  const lines = await eventually(() => readCompleteJsonLines(path), (written) => written.length > 0, { intervalMs: 50 });
  t.equal(lines.length, 1, 'the pending record is formatted and written by the timer');
  t.match(lines[0], { path: '/routed/alone' });
});

t.test('a reload that switches the format of a path keeps each line in the format of the snapshot that served it, in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  // One plugin, two snapshots of the same path (as before and after a reload), served by two apps.
  const plugin = createAccessLogPlugin();
  const json = await buildPluginHarness({ plugins: [scenarioPlugin, plugin], resources: [meshConfig({ enabled: true, path })] });
  const text = await buildPluginHarness({ plugins: [scenarioPlugin, plugin], resources: [meshConfig({ enabled: true, path, format: 'TEXT' })] });
  t.teardown(async () => {
    await json.app.close();
    await text.app.close();
    await plugin.close();
  });
  for (const { app } of [json, text]) await app.listen({ port: 0, host: '127.0.0.1' });
  for (const [{ app }, name] of [[json, 'one'], [text, 'two'], [json, 'three']] as const) {
    const port = (app.server.address() as { port: number }).port;
    await (await request(`http://127.0.0.1:${port}/routed/${name}`)).body.dump();
  }
  const lines = await flushedLines(plugin, path, 3);
  t.equal(lines.length, 3);
  t.match(JSON.parse(lines[0] ?? '{}'), { path: '/routed/one' });
  t.match(lines[1], /^\[[^\]]+\] "GET \/routed\/two HTTP\/1\.1" 200 /);
  t.match(JSON.parse(lines[2] ?? '{}'), { path: '/routed/three' });
});

t.test('hostile header values and paths are truncated and counted', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.jsonl');
  const { plugin, base } = await startHarness(t, { enabled: true, path });
  const before = findSamples(parseSamples((await renderPrometheus()).body), 'meshgate_access_log_truncated_fields_total', { field: 'user_agent' })[0]?.value ?? 0;
  await (await request(`${base}/routed/${'p'.repeat(3000)}`, { headers: { 'user-agent': 'u'.repeat(10000), 'x-forwarded-for': '10.0.0.1' } })).body.text();
  const [line] = (await flushedLines(plugin, path, 1)).map((entry) => JSON.parse(entry) as Record<string, unknown>);
  t.equal(String(line?.['user_agent']).length, 256);
  t.equal(String(line?.['path']).length, 1024);
  t.same(line?.['truncated_fields'], ['path', 'user_agent']);
  t.equal(line?.['x_forwarded_for'], '10.0.0.1', 'short values untouched');
  const after = findSamples(parseSamples((await renderPrometheus()).body), 'meshgate_access_log_truncated_fields_total', { field: 'user_agent' })[0]?.value ?? 0;
  t.equal(after - before, 1);
});

t.test('Istio text format', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const { plugin, base } = await startHarness(t, { enabled: true, path, format: 'TEXT' });
  await (await request(`${base}/no-route/x?q=${SECRET}`, { headers: { 'user-agent': 'ua/1' } })).body.text();
  const [line] = await flushedLines(plugin, path, 1);
  t.match(
    line,
    /^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] "GET \/no-route\/x HTTP\/1\.1" 404 NR route_not_found - "-" \d+ \d+ \d+ - "-" "ua\/1" "req-1" "127\.0\.0\.1:\d+" "-" - - 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+ - -$/,
  );
});

t.test('disabled: no file is opened and nothing is written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'never.jsonl');
  const { plugin, base } = await startHarness(t, { enabled: false, path });
  const response = await request(`${base}/routed/a`);
  t.equal(response.statusCode, 200);
  await response.body.text();
  await plugin.flush();
  t.notOk(existsSync(path));
});

t.test('an unwritable path is a load-time error diagnostic, not a request failure', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { diagnostics } = await startHarness(t, { enabled: true, path: dir });
  t.equal(diagnostics.length, 1);
  t.match(diagnostics[0], { code: ACCESS_LOG_UNWRITABLE, severity: 'error', field: 'spec.accessLog.path' });
});

t.test('trace_id is the id of the hop span when tracing is on', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.jsonl');
  const otlp = await OtlpReceiver.start();
  t.teardown(() => otlp.close());
  const tracing = createTracingPlugin({ env: {} });
  const accessLog = createAccessLogPlugin();
  const mesh = makeResource(
    'MeshConfig',
    'mesh',
    { accessLog: { enabled: true, path }, tracing: { samplingPercent: 100, otlpEndpoint: otlp.url } },
    { apiVersion: MESH_CONFIG_API_VERSION, namespace: 'istio-system' },
  );
  const { app } = await buildPluginHarness({ plugins: [tracing, scenarioPlugin, accessLog], resources: [mesh] });
  t.teardown(async () => {
    await app.close();
    await tracing.shutdown();
    await accessLog.close();
  });
  const response = await app.inject({ method: 'GET', url: '/routed/t', headers: { host: 'shop.example.com' } });
  const forwarded = (response.json() as { headers: Record<string, string> }).headers['traceparent'] ?? '';
  const [line] = (await flushedLines(accessLog, path, 1)).map((entry) => JSON.parse(entry) as Record<string, unknown>);
  t.match(forwarded, /^00-[0-9a-f]{32}-/);
  t.equal(line?.['trace_id'], forwarded.split('-')[1]);
});

t.test('two closes at once both end, with every line written once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const { plugin, base } = await startHarness(t, { enabled: true, path });
  await (await request(`${base}/routed/closing`)).body.dump();
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 30 s'), 30_000).unref());
  t.equal(await Promise.race([Promise.all([plugin.close(), plugin.close()]).then(() => 'closed'), timeout]), 'closed');
  t.match(await readLines(path), [/\/routed\/closing/]);
});

t.test('a connection the client closes with its request still logs its port and its bytes (after-response batch)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-access-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'access.log');
  const { plugin, base } = await startHarness(t, { enabled: true, path });
  const requestText = 'GET /routed/closing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';
  const socket = connect(Number(new URL(base).port), '127.0.0.1');
  await once(socket, 'connect');
  const clientPort = socket.localPort;
  socket.end(requestText);
  let response = '';
  for await (const chunk of socket) response += String(chunk);
  t.match(response, /^HTTP\/1\.1 200/);
  const [line] = (await flushedLines(plugin, path, 1)).map((entry) => JSON.parse(entry) as Record<string, unknown>);
  t.equal(line?.['downstream_remote_address'], `127.0.0.1:${clientPort}`);
  t.equal(line?.['bytes_received'], Buffer.byteLength(requestText));
  t.equal(line?.['bytes_sent'], Buffer.byteLength(response));
});
