/**
 * `--concurrency N`: N worker threads behind every proxy listener, over real sockets. Fresh
 * connections reach more than one worker (the merged /stats/prometheus counts them per worker); a
 * start or reload reads the config once in the supervisor (meshgate_config_compiles_total), which builds
 * no closures: what only the workers' build finds comes back placed at its field; a reload is reported
 * done only once no worker answers with the old content; a rejected config leaves every worker on the
 * last good one, and one the workers refuse at the start stops it; a killed worker is replaced, counted, and serves the generation
 * the others serve without reading the files; drain stops every worker.
 * Sharing a port between threads needs SO_REUSEPORT (Node.js >= 22.12): on older Node.js the proxy
 * must fall back to one worker, which the last test checks wherever it runs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import http from 'node:http';
import pino from 'pino';
import t from 'tap';
import type { Test } from 'tap';
import { PIPELINE_PLUGINS, WORKER_ENTRY } from '../../gateway/composition/plugin-table.js';
import { canShareListeners, coresFromCpuMax, workerCount } from '../../gateway/runtime/concurrency.js';
import { GatewayRuntime } from '../../gateway/runtime/gateway-runtime.js';
import { StartRefused, WorkerSupervisor } from '../../gateway/runtime/worker-supervisor.js';
import { meshRegistry } from '../../gateway/metrics/registry.js';
import { eventually } from '../helpers/eventually.js';
import { configDir, freePort } from '../helpers/gateway.js';
import type { ConfigDir } from '../helpers/gateway.js';

const WORKERS = 2;
/** Fresh connections per check: all on one worker of two by chance is 2^-39 with SO_REUSEPORT's hash. */
const CONNECTIONS = 40;

function meshYaml(proxyPort: number, adminPort: number, body: string, extra = ''): string {
  return `
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${adminPort}
  drainDuration: 2s
  accessLog: { enabled: false }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: ${proxyPort}, name: http, protocol: HTTP }
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: answer, namespace: istio-system }
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
    - directResponse: { status: 200, body: { string: "${body}" } }
${extra}`;
}

const LIMIT = 10;
const LOCAL_LIMIT = `---
apiVersion: meshgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-client, namespace: istio-system }
spec:
  backend: local
  rules:
    - key: [{ remoteIp: {} }]
      limits: [{ requests: ${LIMIT}, per: 60s }]
`;

/** One request on a connection of its own. */
function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

async function bodies(port: number, count = CONNECTIONS): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < count; i++) answers.push((await get(port)).body);
  return answers;
}

/** `name{labels} value` lines of the merged exposition, as a map from `name{labels}` to value. */
async function scrape(adminPort: number): Promise<Map<string, number>> {
  const { body } = await get(adminPort, '/stats/prometheus');
  const series = new Map<string, number>();
  for (const line of body.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match?.[1] !== undefined) series.set(match[1], Number(match[2]));
  }
  return series;
}

function connectionsOf(series: Map<string, number>, worker: number): number {
  return series.get(`meshgate_worker_connections_total{worker="${worker}"}`) ?? 0;
}

interface Running {
  readonly supervisor: WorkerSupervisor;
  readonly config: ConfigDir;
  readonly proxyPort: number;
  readonly adminPort: number;
}

/** As `meshgate run --concurrency N` does: the runtime compiles and hands off to a supervisor (not started yet). */
async function handOff(t: Test, body = 'v1', extra = ''): Promise<Running> {
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const config = await configDir(meshYaml(proxyPort, adminPort, body, extra));
  t.teardown(() => config.remove());
  const logger = pino({ level: 'silent' });
  const common = { configPath: config.file, mode: 'ingress' as const, plugins: PIPELINE_PLUGINS, logger, statusAddress: '', metricsAddress: '' };
  const started = await new GatewayRuntime({ ...common, concurrency: WORKERS }).start();
  if (!started.ok || started.handOff === undefined) throw new Error('expected a hand-off to worker threads');
  t.equal(started.handOff.workers, WORKERS);
  const supervisor = new WorkerSupervisor({ ...common, workerEntry: WORKER_ENTRY, logLevel: 'silent', watch: false, workers: started.handOff.workers, read: started.handOff.read, config: started.handOff.config });
  t.teardown(() => supervisor.shutdown('test end'));
  return { supervisor, config, proxyPort, adminPort };
}

async function startWorkers(t: Test, body = 'v1', extra = ''): Promise<Running> {
  const running = await handOff(t, body, extra);
  await running.supervisor.start();
  return running;
}

const sharing = canShareListeners();
const needsSharing = sharing ? {} : { skip: `Node.js ${process.versions.node} cannot share a listening port between threads` };

t.test('fresh connections spread over every worker; the metrics of all workers come out as one exposition', needsSharing, async (t) => {
  const { proxyPort, adminPort } = await startWorkers(t);
  t.same(new Set(await bodies(proxyPort)), new Set(['v1']));
  const series = await scrape(adminPort);
  const perWorker = [0, 1].map((worker) => connectionsOf(series, worker));
  t.ok(perWorker.every((count) => count > 0), `both workers accepted connections: ${perWorker.join(' / ')}`);
  t.equal(perWorker[0]! + perWorker[1]!, CONNECTIONS, 'every connection counted once');
  const requests = [...series].filter(([name]) => name.startsWith('istio_requests_total{')).reduce((sum, [, value]) => sum + value, 0);
  t.equal(requests, CONNECTIONS, "istio_requests_total adds up the workers' requests");
  t.equal(series.get('meshgate_config_generation'), 1, 'a per-process gauge is not summed over workers');
  t.equal(series.get('meshgate_workers'), WORKERS);
});

/** Connections each worker accepted since `before` (a scrape taken earlier). */
function connectionsSince(before: Map<string, number>, after: Map<string, number>): number[] {
  return [0, 1].map((worker) => connectionsOf(after, worker) - connectionsOf(before, worker));
}

/** This thread's count (the supervisor's): tests before this one compiled too. */
async function compilesSoFar(): Promise<number> {
  const counter = await meshRegistry.getSingleMetric('meshgate_config_compiles_total')?.get();
  return counter?.values[0]?.value ?? 0;
}

async function configDump(adminPort: number): Promise<{ generation: number; hash: string; lastRejected: { code: string; at: string; field?: string }[] }> {
  return JSON.parse((await get(adminPort, '/config_dump')).body) as { generation: number; hash: string; lastRejected: { code: string; at: string; field?: string }[] };
}

t.test('a reload is compiled once, and done only when every worker serves it', needsSharing, async (t) => {
  const compiled = await compilesSoFar();
  const { supervisor, config, proxyPort, adminPort } = await startWorkers(t);
  const started = await scrape(adminPort);
  t.equal(started.get('meshgate_config_compiles_total'), compiled + 1, "the start compiled once for both workers (the hand-off's compile)");
  await config.write(meshYaml(proxyPort, adminPort, 'v2'));
  const outcome = await supervisor.reload('test');
  t.match(outcome, { ok: true, generation: 2, message: 'applied' });
  t.same(new Set(await bodies(proxyPort)), new Set(['v2']), 'every connection after the reload, on any worker, gets the new content');
  const series = await scrape(adminPort);
  const served = connectionsSince(started, series);
  t.ok(served.every((count) => count > 0), `those connections reached both workers: ${served.join(' / ')}`);
  t.equal(series.get('meshgate_config_generation'), 2, 'no worker is behind (the lowest generation of all)');
  t.equal(series.get('meshgate_config_compiles_total'), compiled + 2, 'the reload compiled once, not once per worker');
  t.equal(series.get('meshgate_config_reloads_total{result="applied"}'), 1, 'one reload counted, not one per worker');

  // A field-level error: its position and field come from the supervisor's compile.
  await config.write(meshYaml(proxyPort, adminPort, 'v3').replace('drainDuration: 2s', 'drainDuration: soon'));
  const rejected = await supervisor.reload('test');
  t.match(rejected, { ok: false, generation: 2, message: 'configuration rejected' }, 'an invalid config is rejected, the last good one keeps serving');
  const before = await scrape(adminPort);
  t.same(new Set(await bodies(proxyPort)), new Set(['v2']), 'on every worker');
  const after = await scrape(adminPort);
  t.ok(connectionsSince(before, after).every((count) => count > 0), 'both workers answered');
  t.equal(after.get('meshgate_config_generation'), 2);
  t.equal(after.get('meshgate_config_compiles_total'), compiled + 3);
  t.equal(after.get('meshgate_config_reloads_total{result="rejected"}'), 1);
  t.equal(after.get('meshgate_config_diagnostics{severity="error"}'), 1, "the rejected compile's diagnostics");
  const dump = await configDump(adminPort);
  t.equal(dump.generation, 2);
  t.match(dump.lastRejected, [{ at: new RegExp(`^${config.file}:7:\\d+$`), field: 'spec.drainDuration' }], 'the diagnostic says where: file, line and field');

  await config.write(meshYaml(proxyPort, adminPort, 'v2'));
  t.match(await supervisor.reload('test'), { ok: true, generation: 2, message: 'unchanged' }, 'back to the running content: compiled, nothing sent to the workers');
  t.same((await configDump(adminPort)).lastRejected, [], 'no longer rejected');

  // Found only by the compile after validation (a plugin module that cannot be loaded), while the workers build theirs.
  const missingPlugin = `---
apiVersion: meshgate.dev/v1alpha1
kind: Plugin
metadata: { name: missing, namespace: istio-system }
spec:
  url: "file://${config.dir}/no-such-plugin.mjs"
`;
  await config.write(meshYaml(proxyPort, adminPort, 'v4', missingPlugin));
  t.match(await supervisor.reload('test'), { ok: false, generation: 2, message: 'configuration rejected' });
  t.same(new Set(await bodies(proxyPort)), new Set(['v2']), 'what the workers had prepared was abandoned');
  t.match((await configDump(adminPort)).lastRejected, [{ code: 'MG1501', at: new RegExp(`^${config.file}:\\d+:\\d+$`) }]);
});

t.test("a config only the workers' build refuses stops the start, with the diagnostic at its field", needsSharing, async (t) => {
  const missingPlugin = `---
apiVersion: meshgate.dev/v1alpha1
kind: Plugin
metadata: { name: missing, namespace: istio-system }
spec:
  url: "file:///no-such-dir/no-such-plugin.mjs"
`;
  const { supervisor, config } = await handOff(t, 'v1', missingPlugin);
  const error = await supervisor.start().then(
    () => null,
    (failure: unknown) => failure,
  );
  if (!(error instanceof StartRefused)) return t.fail(`expected a refusal, got ${String(error)}`);
  const urlLine = (await readFile(config.file, 'utf8')).split('\n').findIndex((line) => line.includes('no-such-plugin.mjs')) + 1;
  t.match(error.diagnostics, [{ code: 'MG1501', field: 'spec.url', position: { file: config.file, line: urlLine } }], "placed by the supervisor in the file, as `validate` would place it");
  t.same(supervisor.threads(), [null, null], 'no worker serves');
});

t.test('with a plugin module: the same files reload as unchanged, a changed module is applied by every worker', needsSharing, async (t) => {
  const plugin = `---
apiVersion: meshgate.dev/v1alpha1
kind: Plugin
metadata: { name: stamp, namespace: istio-system }
spec:
  url: "./stamp.mjs"
`;
  const stamp = (version: string): string => `export default { compile: () => '${version}', onRequest() {} };\n`;
  const { supervisor, config } = await handOff(t, 'v1', plugin);
  await writeFile(join(config.dir, 'stamp.mjs'), stamp('v1'));
  await supervisor.start();
  t.match(await supervisor.reload('test'), { ok: true, generation: 1, message: 'unchanged' }, 'a worker built it: the module read the same');
  await writeFile(join(config.dir, 'stamp.mjs'), stamp('v2'));
  t.match(await supervisor.reload('test'), { ok: true, generation: 2, message: 'applied' }, 'the same config files, another module');
  t.equal(supervisor.servedGeneration(), 2);
});

t.test('a replaced worker serves the current generation without reading the files; the next reload reaches it', needsSharing, async (t) => {
  const { supervisor, config, proxyPort, adminPort } = await startWorkers(t);
  const compiled = await compilesSoFar();
  const victim = supervisor.threads()[0];
  if (victim == null) throw new Error('worker 0 is not running');
  // Saved but not reloaded: a replacement that read the files would serve v3 beside worker 1's v1.
  await config.write(meshYaml(proxyPort, adminPort, 'v3'));
  const before = await scrape(adminPort);
  await victim.terminate();
  const replaced = await eventually(
    () => supervisor.threads()[0],
    (thread) => thread != null && thread !== victim,
  );
  t.not(replaced, victim, 'a new thread serves as worker 0');
  t.same(new Set(await bodies(proxyPort)), new Set(['v1']), 'the replacement serves the generation the other worker serves');
  const series = await scrape(adminPort);
  t.equal(series.get('meshgate_worker_restarts_total'), 1, 'the replacement is counted');
  t.ok(connectionsSince(before, series).every((count) => count > 0), 'the replacement takes its share of the connections');
  t.equal(series.get('meshgate_config_compiles_total'), compiled, 'the replacement compiled nothing from the files');
  t.equal(series.get('meshgate_config_generation'), 1);
  t.same(supervisor.readiness(), { ready: true });

  t.match(await supervisor.reload('test'), { ok: true, generation: 2, message: 'applied' });
  t.same(new Set(await bodies(proxyPort)), new Set(['v3']), 'the replacement took the reload like the others');
  t.equal(supervisor.servedGeneration(), 2);
});

t.test('drain reaches every worker: the shared port closes and every thread exits', needsSharing, async (t) => {
  const { supervisor, proxyPort } = await startWorkers(t);
  const threads = supervisor.threads().filter((thread) => thread !== null);
  t.equal(threads.length, WORKERS);
  const exits = threads.map((thread) => new Promise<number>((resolve) => thread.once('exit', resolve)));
  await supervisor.shutdown('test');
  t.same(await Promise.all(exits), [0, 0], 'every worker drained and exited on its own');
  await t.rejects(get(proxyPort), { code: 'ECONNREFUSED' }, 'no worker still holds the port');
});

t.test('a shutdown asked while the workers start waits for the start, then closes all it opened', needsSharing, async (t) => {
  const { supervisor, proxyPort, adminPort } = await handOff(t);
  const starting = supervisor.start();
  // As SIGTERM once the first worker serves: start() still waits for the other, then opens the admin port.
  await eventually(() => supervisor.threads().some((thread) => thread !== null), (serving) => serving, { intervalMs: 1 });
  await supervisor.shutdown('SIGTERM while starting');
  await t.resolves(starting, 'the start completed');
  await t.rejects(get(adminPort), { code: 'ECONNREFUSED' }, 'the admin port start opened is closed');
  await t.rejects(get(proxyPort), { code: 'ECONNREFUSED' }, 'no worker holds the proxy port');
});

t.test('a local rate limit admits exactly as many requests with two workers as with one', needsSharing, async (t) => {
  const { proxyPort, adminPort } = await startWorkers(t, 'limited', LOCAL_LIMIT);
  const statuses: number[] = [];
  for (let i = 0; i < 3 * LIMIT; i++) statuses.push((await get(proxyPort)).status);
  t.equal(statuses.filter((status) => status === 200).length, LIMIT, `${LIMIT} admitted in all, not ${LIMIT} per worker`);
  t.equal(statuses.filter((status) => status === 429).length, 2 * LIMIT, 'every other request refused');
  t.same(statuses.slice(0, LIMIT), Array<number>(LIMIT).fill(200), 'the first ones, in order, as one process would');
  const series = await scrape(adminPort);
  t.ok(connectionsOf(series, 0) > 0 && connectionsOf(series, 1) > 0, 'the requests went through both workers');
});

t.test('how many workers', async (t) => {
  t.equal(coresFromCpuMax('max 100000\n'), null, 'no quota');
  t.equal(coresFromCpuMax('200000 100000\n'), 2);
  t.equal(coresFromCpuMax('150000 100000'), 2, 'a fraction of a core rounds up');
  t.equal(coresFromCpuMax('50000 100000'), 1);
  t.equal(workerCount(undefined, undefined, 'sidecar', true).workers, 1, 'a sidecar defaults to one worker');
  t.equal(workerCount(undefined, 3, 'sidecar', true).workers, 3, 'MeshConfig asks for more');
  t.equal(workerCount(2, 3, 'ingress', true).workers, 2, 'the flag wins over MeshConfig');
  t.same(workerCount(undefined, undefined, 'ingress', false), { workers: 1, limitedBy: null }, 'without SO_REUSEPORT the default quietly stays at one');
  const explicit = workerCount(4, undefined, 'ingress', false);
  t.equal(explicit.workers, 1);
  t.match(explicit.limitedBy, /SO_REUSEPORT/, 'an explicit number that cannot be honoured says why');
  t.equal(canShareListeners('20.19.0', 'linux'), false);
  t.equal(canShareListeners('22.11.0', 'linux'), false);
  t.equal(canShareListeners('22.12.0', 'linux'), true);
  t.equal(canShareListeners('24.0.0', 'darwin'), false);
});

t.test('without SO_REUSEPORT, --concurrency 2 serves with one worker in this thread', { skip: sharing ? 'this Node.js can share ports' : false }, async (t) => {
  const proxyPort = await freePort();
  const adminPort = await freePort();
  const config = await configDir(meshYaml(proxyPort, adminPort, 'alone'));
  t.teardown(() => config.remove());
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const runtime = new GatewayRuntime({ configPath: config.file, mode: 'ingress', plugins: PIPELINE_PLUGINS, logger, statusAddress: '', metricsAddress: '', watch: false, concurrency: 2 });
  const started = await runtime.start();
  t.teardown(() => runtime.shutdown('test end'));
  t.same(started, { ok: true }, 'no hand-off');
  t.equal((await get(proxyPort)).body, 'alone');
  t.match(lines.join(''), /running one worker: .*SO_REUSEPORT/);
});
