/**
 * The status port (GET /healthz/ready) and the metrics port (GET /stats/prometheus, with the app's
 * metrics merged) of a real in-process gateway: bound on every interface while the admin API stays on
 * loopback (read from the sockets and from /proc/net/tcp, never by connecting to another address),
 * nothing else served there, 503 while draining, and the MeshConfig / CLI settings that place them.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import t from 'tap';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { createStatusServer, listenOn, closeServer } from '../../gateway/admin/status-server.js';
import type { Readiness } from '../../gateway/admin/status-server.js';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { eventually, ingressYaml, request, runCli } from '../e2e-foundation/fixtures.js';

/** Listening TCP sockets (state 0A) from /proc/net/tcp as `ADDRESS:PORT` in the kernel's hex, e.g. `0100007F:3A98`. */
async function listeningSockets(): Promise<Set<string>> {
  const text = await readFile('/proc/net/tcp', 'utf8');
  const sockets = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] === '0A' && fields[1] !== undefined) sockets.add(fields[1].toUpperCase());
  }
  return sockets;
}

const hexPort = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');
const ANY_V4 = '00000000';
const LOOPBACK_V4 = '0100007F';

t.test('status and metrics listen on all interfaces, admin on loopback only; each serves only its path', async (t) => {
  let holdResponse: () => void = () => undefined;
  const upstream = await startUpstream((request, response) => {
    if (request.url === '/slow') holdResponse = () => response.end('late');
    else response.end('ok');
  });
  const appMetrics = await startUpstream((_request, response) => {
    response.setHeader('content-type', 'text/plain; version=0.0.4');
    response.end('# TYPE app_orders_total counter\napp_orders_total 42\n');
  });
  const [adminPort, gatewayPort, statusPort, metricsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const yaml = ingressYaml({ adminPort, gatewayPort, upstreamPort: upstream.port, drainDuration: '20s' }).replace(
    '  debugHeaders: true\n',
    `  debugHeaders: true\n  appMetricsUrl: http://127.0.0.1:${appMetrics.port}/metrics\n`,
  );
  const dir = await configDir(yaml);
  const gateway = await startGateway(dir.file, { statusAddress: `0.0.0.0:${statusPort}`, metricsAddress: `0.0.0.0:${metricsPort}` });
  let stopped = false;
  t.teardown(async () => {
    holdResponse();
    if (!stopped) await gateway.stop();
    await upstream.close();
    await appMetrics.close();
    await dir.remove();
  });

  const bound = gateway.runtime.operatorAddresses();
  t.equal(bound.status?.address, '0.0.0.0', 'status socket: every interface');
  t.equal(bound.status?.port, statusPort);
  t.equal(bound.metrics?.address, '0.0.0.0', 'metrics socket: every interface');
  t.equal(bound.admin?.address, '127.0.0.1', 'admin socket: loopback only');
  const sockets = await listeningSockets();
  t.ok(sockets.has(`${ANY_V4}:${hexPort(statusPort)}`), 'the kernel lists the status port on 0.0.0.0');
  t.ok(sockets.has(`${ANY_V4}:${hexPort(metricsPort)}`), 'the kernel lists the metrics port on 0.0.0.0');
  t.ok(sockets.has(`${LOOPBACK_V4}:${hexPort(adminPort)}`), 'the kernel lists the admin port on 127.0.0.1');
  t.notOk(sockets.has(`${ANY_V4}:${hexPort(adminPort)}`), 'and not on 0.0.0.0');

  const status = `http://127.0.0.1:${statusPort}`;
  const ready = await request(`${status}/healthz/ready`);
  t.equal(ready.status, 200);
  t.equal(ready.body, 'ready\n');
  for (const path of ['/ready', '/config_dump', '/stats/prometheus', '/explain', '/reload', '/']) {
    t.equal((await request(`${status}${path}`)).status, 404, `status port: ${path} is not served`);
  }
  t.equal((await request(`${status}/healthz/ready`, { method: 'POST' })).status, 405, 'POST is refused');

  const metrics = `http://127.0.0.1:${metricsPort}`;
  t.equal((await request(`http://127.0.0.1:${gatewayPort}/x`)).status, 200, 'one request through the proxy');
  const scraped = await request(`${metrics}/stats/prometheus`);
  t.equal(scraped.status, 200);
  t.match(scraped.headers['content-type'], /^text\/plain/);
  t.match(scraped.body, /meshgate_build_info/, "meshgate's own series");
  t.match(scraped.body, /istio_requests_total\{/, "Istio's request series");
  t.match(scraped.body, /\napp_orders_total 42\n/, "the application's metrics are merged");
  for (const path of ['/metrics', '/healthz/ready', '/config_dump', '/clusters', '/certs']) {
    t.equal((await request(`${metrics}${path}`)).status, 404, `metrics port: ${path} is not served`);
  }
  t.equal((await request(`${metrics}/stats/prometheus`, { method: 'POST' })).status, 405);

  await appMetrics.close();
  const appDown = await request(`${metrics}/stats/prometheus`);
  t.equal(appDown.status, 200, 'an unreachable app does not fail the scrape');
  t.match(appDown.body, /# meshgate: application metrics at http:\/\/127\.0\.0\.1:\d+\/metrics unavailable/);
  t.match(appDown.body, /meshgate_build_info/);

  // Drain with a request in flight: the status port turns 503 and stays up until the drain ends.
  const inFlight = request(`http://127.0.0.1:${gatewayPort}/slow`, { timeoutMs: 30_000 });
  t.ok(await eventually(() => upstream.received.some((r) => r.url === '/slow'), 15_000), 'the slow request reached the upstream');
  const stopping = gateway.stop();
  stopped = true;
  t.ok(
    await eventually(async () => (await request(`${status}/healthz/ready`)).status === 503, 15_000),
    'draining: /healthz/ready answers 503',
  );
  t.equal((await request(`${status}/healthz/ready`)).body, 'not ready: draining\n');
  holdResponse();
  t.equal((await inFlight).status, 200, 'the in-flight request finished');
  await stopping;
  const after = await listeningSockets();
  t.notOk(after.has(`${ANY_V4}:${hexPort(statusPort)}`), 'status port closed after the drain');
  t.notOk(after.has(`${ANY_V4}:${hexPort(metricsPort)}`), 'metrics port closed after the drain');
});

t.test('the status server says why it is not ready', async (t) => {
  let state: Readiness = { ready: false, reason: 'no active configuration' };
  const server = createStatusServer(() => state);
  const address = await listenOn(server, '127.0.0.1:0');
  t.teardown(() => closeServer(server));
  const url = `http://127.0.0.1:${address.port}/healthz/ready`;
  const before = await request(url);
  t.equal(before.status, 503);
  t.equal(before.body, 'not ready: no active configuration\n');
  state = { ready: true };
  t.equal((await request(url)).status, 200);
  t.equal((await request(`${url}?probe=kubelet`)).status, 200, 'a query string does not change the path');
});

t.test('a status port already taken fails the start loudly (exit 1, the address in the log)', async (t) => {
  const taken = http.createServer();
  const port = await freePort();
  await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
  const upstream = await startUpstream();
  const [adminPort, gatewayPort] = [await freePort(), await freePort()];
  const dir = await configDir(ingressYaml({ adminPort, gatewayPort, upstreamPort: upstream.port }));
  t.teardown(async () => {
    await closeServer(taken);
    await upstream.close();
    await dir.remove();
  });
  const result = await runCli(['run', '-c', dir.file, '--status-address', `127.0.0.1:${port}`]);
  t.equal(result.code, 1);
  t.match(result.stdout, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
});

t.test('an empty address turns the listener off (what parallel tests and extra proxies on one host use)', async (t) => {
  const upstream = await startUpstream();
  const [adminPort, gatewayPort] = [await freePort(), await freePort()];
  const dir = await configDir(ingressYaml({ adminPort, gatewayPort, upstreamPort: upstream.port }));
  const gateway = await startGateway(dir.file, { statusAddress: '', metricsAddress: '' });
  t.teardown(async () => {
    await gateway.stop();
    await upstream.close();
    await dir.remove();
  });
  const bound = gateway.runtime.operatorAddresses();
  t.equal(bound.status, null);
  t.equal(bound.metrics, null);
  t.equal(bound.admin?.port, adminPort, 'the admin API still serves');
});

t.test('MeshConfig: Istio defaults, a malformed address names its field and line', async (t) => {
  const upstream = { port: 9 };
  const base = ingressYaml({ adminPort: 15000, gatewayPort: 8080, upstreamPort: upstream.port });
  const defaults = await configDir(base);
  const bad = await configDir(base.replace('  debugHeaders: true\n', '  debugHeaders: true\n  statusAddress: "15021"\n  appMetricsUrl: https://app/metrics\n'));
  t.teardown(async () => {
    await defaults.remove();
    await bad.remove();
  });
  const compiled = await compileConfig(defaults.file, { mode: 'ingress', plugins: PIPELINE_PLUGINS });
  t.ok(compiled.ok);
  if (compiled.ok) {
    t.equal(compiled.config.mesh.statusAddress, '0.0.0.0:15021');
    t.equal(compiled.config.mesh.metricsAddress, '0.0.0.0:15020');
    t.equal(compiled.config.mesh.adminAddress, '127.0.0.1:15000');
  }
  const rejected = await compileConfig(bad.file, { mode: 'ingress', plugins: PIPELINE_PLUGINS });
  t.notOk(rejected.ok);
  if (!rejected.ok) {
    const fields = rejected.diagnostics.map((d) => `${d.code} ${d.field ?? ''} line ${d.position.line}`);
    t.ok(fields.some((f) => /^MG0108 spec\.statusAddress line 9$/.test(f)), `statusAddress named with its line: ${fields.join('; ')}`);
    t.ok(fields.some((f) => /^MG0108 spec\.appMetricsUrl line 10$/.test(f)), 'appMetricsUrl must be http://');
  }
});

t.test('CLI: --status-address / --metrics-address are checked before anything starts', async (t) => {
  const dir = await configDir(ingressYaml({ adminPort: 15000, gatewayPort: 8080, upstreamPort: 9 }));
  t.teardown(() => dir.remove());
  const result = await runCli(['run', '-c', dir.file, '--status-address', 'nowhere']);
  t.equal(result.code, 2, 'usage error');
  t.match(result.stderr, /--status-address must be HOST:PORT or empty \(off\), got "nowhere"/);
  const metrics = await runCli(['run', '-c', dir.file, '--metrics-address', '1.2.3.4']);
  t.equal(metrics.code, 2);
  t.match(metrics.stderr, /--metrics-address must be HOST:PORT/);
});
