/**
 * Istio's TCP metrics and one access-log line per connection, from both sidecars of a TCP mesh (they run
 * in this process and share the metrics registry and the access-log file).
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { accessLogPlugin } from '../../plugins/access-log/index.js';
import { eventually } from '../helpers/eventually.js';
import { rawExchange, startTcpMesh } from './tcp-fixture.js';
import type { TcpMesh } from './tcp-fixture.js';

/** Short, so a test sees an open connection's bytes reported without waiting Istio's 15 s. */
const REPORTING_INTERVAL = '100ms';
let mesh: TcpMesh;
let logDir: string;
let logPath: string;
t.before(async () => {
  logDir = await mkdtemp(join(tmpdir(), 'meshgate-tcp-log-'));
  logPath = join(logDir, 'access.log');
  mesh = await startTcpMesh({ accessLogPath: logPath, tcpReportingInterval: REPORTING_INTERVAL });
});
t.teardown(async () => {
  await mesh.close();
  await rm(logDir, { recursive: true, force: true });
});

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/stats/prometheus', agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** The value of the one series of `metric` whose labels include all of `labels`. */
function seriesValue(exposition: string, metric: string, labels: Readonly<Record<string, string>>): number | null {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    if (Object.entries(labels).every(([name, value]) => line.includes(`${name}="${value}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

async function logLines(): Promise<Record<string, unknown>[]> {
  await accessLogPlugin.flush();
  const text = await readFile(logPath, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const SERVICE = 'redis.my-app.svc.cluster.local';

t.test('a proxied connection: istio_tcp_* from the source and the destination reporter, and an access-log line from each', async (t) => {
  t.equal((await rawExchange(mesh.ports.egress, 'PING\r\nQUIT\r\n')).received, '+PONG\r\n+OK\r\n');
  const source = { reporter: 'source', destination_service: SERVICE, destination_workload: 'cache', source_workload: 'client', request_protocol: 'tcp', response_flags: '-', connection_security_policy: 'unknown' };
  const destination = {
    reporter: 'destination',
    source_principal: 'spiffe://cluster.local/ns/my-app/sa/client',
    source_workload: 'client',
    destination_workload: 'cache',
    connection_security_policy: 'mutual_tls',
    request_protocol: 'tcp',
  };
  const exposition = await eventually(
    () => scrape(mesh.ports.admins[1]),
    (text) => seriesValue(text, 'istio_tcp_connections_closed_total', source) !== null && seriesValue(text, 'istio_tcp_connections_closed_total', destination) !== null,
  );
  t.equal(seriesValue(exposition, 'istio_tcp_connections_opened_total', source), 1);
  t.equal(seriesValue(exposition, 'istio_tcp_connections_closed_total', source), 1);
  t.equal(seriesValue(exposition, 'istio_tcp_received_bytes_total', source), 12, 'PING + QUIT from the client');
  t.equal(seriesValue(exposition, 'istio_tcp_sent_bytes_total', source), 12, '+PONG + +OK to the client');
  t.equal(seriesValue(exposition, 'istio_tcp_connections_opened_total', destination), 1);
  t.equal(seriesValue(exposition, 'istio_tcp_connections_closed_total', destination), 1);
  t.notMatch(exposition, /istio_tcp_[a-z_]+\{[^}]*response_code=/, 'TCP series carry no response_code');

  const lines = await eventually(
    async () => (await logLines()).filter((line) => line['protocol'] === 'TCP'),
    (found) => found.length >= 2,
  );
  const outbound = lines.find((line) => line['upstream_cluster'] === `outbound|${mesh.ports.egress}||${SERVICE}`);
  t.match(outbound, { response_code: 0, response_flags: '-', bytes_received: 12, bytes_sent: 12, route_name: SERVICE, method: null, path: null });
  const inbound = lines.find((line) => line['upstream_cluster'] === `inbound|${mesh.ports.cacheInbound}||`);
  t.match(inbound, { response_flags: '-', peer_principal: 'spiffe://cluster.local/ns/my-app/sa/client', upstream_host: `127.0.0.1:${mesh.redis.port}` });
});

t.test('an open connection\'s bytes are reported every tcpReportingInterval, and counted once in all when it closes', async (t) => {
  const source = { reporter: 'source', destination_service: SERVICE, response_flags: '-' };
  const bytes = async (metric: string): Promise<number> => seriesValue(await scrape(mesh.ports.admins[1]), metric, source) ?? 0;
  const before = { received: await bytes('istio_tcp_received_bytes_total'), sent: await bytes('istio_tcp_sent_bytes_total'), closed: await bytes('istio_tcp_connections_closed_total') };
  const socket = net.connect({ host: '127.0.0.1', port: mesh.ports.egress });
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  socket.write('PING\r\n');
  await once(socket, 'data');
  await eventually(
    () => bytes('istio_tcp_received_bytes_total'),
    (value) => value === before.received + 6,
  );
  t.equal(await bytes('istio_tcp_sent_bytes_total'), before.sent + 7, '+PONG reported while the connection is open');
  t.equal(await bytes('istio_tcp_connections_closed_total'), before.closed, 'still open');
  socket.end('QUIT\r\n');
  await once(socket, 'close');
  await eventually(
    () => bytes('istio_tcp_connections_closed_total'),
    (value) => value === before.closed + 1,
  );
  t.equal(await bytes('istio_tcp_received_bytes_total'), before.received + 12, 'PING + QUIT, each byte once');
  t.equal(await bytes('istio_tcp_sent_bytes_total'), before.sent + 12, '+PONG + +OK, each byte once');
});

t.test('the app behind the inbound port is down: the connection is closed and its line says UF', async (t) => {
  await mesh.redis.stop();
  t.teardown(() => mesh.redis.start());
  t.same(await rawExchange(mesh.ports.egress, 'PING\r\n'), { received: '', closed: true });
  const failed = await eventually(
    async () => (await logLines()).find((line) => line['protocol'] === 'TCP' && line['response_flags'] === 'UF'),
    (found) => found !== undefined,
  );
  t.match(failed, { upstream_cluster: `inbound|${mesh.ports.cacheInbound}||`, response_code_details: 'upstream_connection_failure' });
  const exposition = await scrape(mesh.ports.admins[0]);
  t.equal(seriesValue(exposition, 'istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: 'UF' }), 1);
});
