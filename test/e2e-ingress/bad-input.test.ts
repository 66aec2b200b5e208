/**
 * Hostile or broken traffic on raw sockets, from clients and from upstreams: every case gets a clear
 * answer (status and reason), nothing malformed reaches an upstream, and the gateway keeps serving.
 */
import t from 'tap';
import type { Test } from 'tap';
import net from 'node:net';
import type { Socket } from 'node:net';
import { startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, rawExchange, rawStatus, request, serviceEntryYaml, startScenario, virtualServiceYaml } from './support.js';

const app = await startUpstream(undefined, 'app');
// The upstream must accept what the gateway does, so that a 431 in the header-size test is the gateway's own.
(app.server as { maxHeaderSize?: number }).maxHeaderSize = 64 * 1024;
t.teardown(() => app.close());

/** A TCP upstream with a fixed misbehaviour; counts the connections it got. */
async function rawUpstream(behave: (socket: Socket) => void): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    behave(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const resetting = await rawUpstream((socket) => socket.once('data', () => socket.resetAndDestroy()));
const hanging = await rawUpstream((socket) => socket.resume());
const garbage = await rawUpstream((socket) => socket.once('data', () => socket.end('NOT HTTP AT ALL\r\n\r\n')));
t.teardown(() => Promise.all([resetting.close(), hanging.close(), garbage.close()]));

const [admin = 0, port = 0] = await freePorts(2);
const routeTo = (host: string, extra = ''): string => `    - route: [{destination: {host: ${host}}}]\n${extra}`;
await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', httpServerYaml(port, ['*'])),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    serviceEntryYaml('resetting', 'resetting.internal', [{ port: resetting.port }]),
    serviceEntryYaml('hanging', 'hanging.internal', [{ port: hanging.port }]),
    serviceEntryYaml('garbage', 'garbage.internal', [{ port: garbage.port }]),
    virtualServiceYaml('app', ['bound.example.com'], 'edge', routeTo('app.internal')),
    virtualServiceYaml('resetting', ['reset.example.com'], 'edge', routeTo('resetting.internal')),
    virtualServiceYaml('hanging', ['hang.example.com'], 'edge', routeTo('hanging.internal', '      timeout: 300ms\n')),
    virtualServiceYaml('garbage', ['garbage.example.com'], 'edge', routeTo('garbage.internal')),
  ].join('\n'),
);

/** Sends `bytes`, expects the status, and checks that the upstream app saw nothing. */
async function refused(t: Test, name: string, bytes: string | Buffer, statuses: readonly number[]): Promise<string> {
  const before = app.received.length;
  const response = await rawExchange(port, bytes);
  t.ok(statuses.includes(rawStatus(response)), `${name}: ${response.split('\r\n')[0] ?? '(nothing)'}`);
  t.equal(app.received.length, before, `${name}: nothing reached the upstream`);
  return response;
}

t.test('a missing Host on HTTP/1.1 is refused', async (t) => {
  await refused(t, 'no Host', 'GET / HTTP/1.1\r\n\r\n', [400]);
});

t.test('a duplicate Host is refused, whichever comes first', async (t) => {
  const response = await refused(t, 'two Hosts', 'GET / HTTP/1.1\r\nHost: bound.example.com\r\nHost: other.example.com\r\n\r\n', [400]);
  t.match(response, /x-meshgate-reason: DPE duplicate_host_header/);
});

t.test('absolute-form URIs are routed by their own authority and never smuggled to the Host header’s route', async (t) => {
  await refused(t, 'absolute URI for an unbound host', 'GET http://other.example.com/x HTTP/1.1\r\nHost: bound.example.com\r\nConnection: close\r\n\r\n', [404]);
  const before = app.received.length;
  const response = await rawExchange(port, 'GET http://bound.example.com/y?z=1 HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n');
  t.equal(rawStatus(response), 200);
  const seen = app.received.slice(before);
  t.equal(seen.length, 1);
  t.equal(seen[0]?.url, '/y?z=1', 'origin-form upstream');
  t.equal(seen[0]?.headers.host, 'bound.example.com', 'the authority that routed is the one sent');
});

t.test('request headers over MeshConfig.maxRequestHeadersKb (default 60) are refused, under it accepted', async (t) => {
  await refused(t, '100 KiB header', `GET / HTTP/1.1\r\nHost: bound.example.com\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`, [431, 400]);
  const res = await request(port, '/big-but-allowed', { host: 'bound.example.com', headers: { 'x-big': 'b'.repeat(40 * 1024) } });
  t.equal(res.status, 200, '40 KiB is within the limit although node defaults to 16 KiB');
  t.equal(app.received.at(-1)?.headers['x-big']?.length, 40 * 1024);
});

t.test('invalid and lowercase methods are refused', async (t) => {
  await refused(t, 'method with a separator', 'GE(T / HTTP/1.1\r\nHost: bound.example.com\r\n\r\n', [400]);
  await refused(t, 'lowercase method', 'get / HTTP/1.1\r\nHost: bound.example.com\r\n\r\n', [400]);
});

t.test('Content-Length together with Transfer-Encoding is refused (request smuggling)', async (t) => {
  await refused(t, 'CL + TE', 'POST / HTTP/1.1\r\nHost: bound.example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: bound.example.com\r\n\r\n', [400]);
  await refused(t, 'two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: bound.example.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', [400]);
  t.notOk(app.received.some((r) => r.url === '/smuggled'));
});

t.test('NUL in the path is refused, raw or percent-encoded', async (t) => {
  await refused(t, 'raw NUL', Buffer.from('GET /a\u0000b HTTP/1.1\r\nHost: bound.example.com\r\n\r\n', 'latin1'), [400]);
  await refused(t, 'encoded NUL', 'GET /a%00b HTTP/1.1\r\nHost: bound.example.com\r\nConnection: close\r\n\r\n', [400]);
});

t.test('an upstream that resets the connection: 503 with the reset reason', async (t) => {
  const res = await request(port, '/', { host: 'reset.example.com' });
  t.equal(res.status, 503);
  t.match(res.headers['x-meshgate-reason'], /^U[CR] /);
  t.match(res.body, /^upstream connect error or disconnect\/reset before headers/);
});

t.test('an upstream that never answers: 504 UT at the route timeout', async (t) => {
  const started = performance.now();
  const res = await request(port, '/', { host: 'hang.example.com' });
  t.equal(res.status, 504);
  t.equal(res.headers['x-meshgate-reason'], 'UT upstream_response_timeout');
  t.ok(performance.now() - started < 2000);
});

t.test('an upstream that answers garbage: 502/503 with a reason', async (t) => {
  const res = await request(port, '/', { host: 'garbage.example.com' });
  t.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
  t.ok(typeof res.headers['x-meshgate-reason'] === 'string' && res.headers['x-meshgate-reason'] !== '', `reason ${String(res.headers['x-meshgate-reason'])}`);
});

t.test('the gateway keeps serving after all of the above', async (t) => {
  const results = await Promise.all(Array.from({ length: 20 }, () => request(port, '/still-up', { host: 'bound.example.com' })));
  t.same(
    results.map((r) => r.status),
    Array(20).fill(200),
  );
});
