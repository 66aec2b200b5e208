/**
 * The client connections of a sidecar's inbound port, over real sockets. The port hands each
 * connection to one of three inner servers (mTLS through node's HTTP/2 secure server and its HTTP/1.1
 * fallback, plaintext HTTP/1, h2c), which never listen themselves; node only limits and tracks the
 * connections of servers that do. So, for each way in:
 * - Drain: mesh peers keep idle pooled connections to the inbound port. A stopping sidecar closes
 *   the idle ones at once and the rest by the drain deadline; it used to wait for each peer to close
 *   its side (its keep-alive timeout: a minute or more), past Kubernetes' grace period.
 * - Slowloris: a client trickling its request head is cut after MeshConfig
 *   connections.requestHeadersTimeout, as on every other listener; it used to be held forever.
 * - Head size: MeshConfig maxRequestHeadersKb (default 60) bounds a request head; node's own 16 KiB
 *   used to apply instead.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import tls from 'node:tls';
import t from 'tap';
import { startMesh } from './mesh-fixture.js';
import type { Mesh } from './mesh-fixture.js';

/** Far shorter than the 60 s drain of the drain tests and the inbound keep-alive timeout (65 s); far longer than a 1 s deadline. */
const CLOSE_DEADLINE_MS = 20_000;
const LONG_DRAIN = '60s';

async function closedWithin(socket: { once(event: 'close', listener: () => void): unknown }, ms: number): Promise<'closed' | 'still open'> {
  const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
  return Promise.race([closed, delay(ms, undefined, { ref: false }).then(() => 'still open' as const)]);
}

async function peerIdentity(mesh: Mesh): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const order = await mesh.pki.issue('my-app', 'order-service');
  return { ca: readFileSync(mesh.pki.ca.certPath), cert: readFileSync(order.chainPath), key: readFileSync(order.keyPath) };
}

/** One GET on a keep-alive agent; resolves with the socket it used, which stays pooled afterwards. */
function getPooled(module: typeof http | typeof https, port: number, agent: http.Agent): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const request = module.get({ host: '127.0.0.1', port, path: '/health/ping', agent }, (response) => {
      // Read now: once the response ends the socket goes back to the agent's pool and leaves the response.
      const { socket } = response;
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, socket }));
    });
    request.once('error', reject);
  });
}

t.test('drain, mTLS HTTP/1.1: an idle pooled connection is closed at once, long before the drain deadline', async (t) => {
  const mesh = await startMesh({ drainDuration: LONG_DRAIN });
  t.teardown(() => mesh.close());
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...(await peerIdentity(mesh)), checkServerIdentity: () => undefined });
  t.teardown(() => agent.destroy());

  const { status, socket } = await getPooled(https, mesh.ports.productInbound, agent);
  t.equal(status, 200, 'served over mTLS');
  t.equal((socket as tls.TLSSocket).alpnProtocol, false, 'HTTP/1.1 without ALPN: the fallback of the HTTP/2 secure server');
  t.notOk(socket.destroyed, 'the connection stays pooled after its response');

  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(socket, CLOSE_DEADLINE_MS), 'closed', 'the sidecar closed the idle connection as it began to stop');
  await stopped;
});

t.test('drain, plaintext HTTP/1.1 (PERMISSIVE): an idle keep-alive connection is closed at once', async (t) => {
  const mesh = await startMesh({ peerAuthentication: 'PERMISSIVE', drainDuration: LONG_DRAIN });
  t.teardown(() => mesh.close());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  const { status, socket } = await getPooled(http, mesh.ports.productInbound, agent);
  t.equal(status, 200, 'plaintext served under PERMISSIVE');

  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(socket, CLOSE_DEADLINE_MS), 'closed', 'the sidecar closed the idle connection as it began to stop');
  await stopped;
});

t.test('drain, mTLS HTTP/2: an idle session gets a GOAWAY and closes', async (t) => {
  const mesh = await startMesh({ drainDuration: LONG_DRAIN });
  t.teardown(() => mesh.close());
  const session = http2.connect(`https://127.0.0.1:${mesh.ports.productInbound}`, { ...(await peerIdentity(mesh)), checkServerIdentity: () => undefined });
  t.teardown(() => session.destroy());
  const stream = session.request({ ':path': '/health/ping' });
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  stream.resume();
  await once(stream, 'close');
  t.equal(headers[':status'], 200, 'served over HTTP/2 with mTLS');

  const goaway = once(session, 'goaway');
  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(session, CLOSE_DEADLINE_MS), 'closed', 'the session closed while the sidecar stopped');
  await goaway;
  t.pass('the sidecar sent a GOAWAY first');
  await stopped;
});

t.test('drain: a connection whose request is unfinished is cut at the drain deadline', async (t) => {
  const mesh = await startMesh({ peerAuthentication: 'PERMISSIVE', drainDuration: '1s' });
  t.teardown(() => mesh.close());
  const socket = net.connect(mesh.ports.productInbound, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  // Half a request head: not idle, so only the deadline may close it.
  socket.write('GET /health/ping HTTP/1.1\r\nHost: product-service\r\n');
  await delay(200);
  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(socket, CLOSE_DEADLINE_MS), 'closed', 'cut by the drain deadline');
  await stopped;
});

/** Sends half a request head on `socket` and reports how the server ended it. */
async function trickle(socket: net.Socket | tls.TLSSocket): Promise<{ outcome: 'closed' | 'still open'; answer: string }> {
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (answer += chunk));
  socket.on('error', () => undefined);
  socket.write('GET /health/ping HTTP/1.1\r\nHost: product-service\r\nX-Slow: ');
  return { outcome: await closedWithin(socket, CLOSE_DEADLINE_MS), answer };
}

const SLOWLORIS_CASES: readonly { readonly name: string; readonly options: Parameters<typeof startMesh>[0]; open(mesh: Mesh): Promise<net.Socket> }[] = [
  {
    name: 'plaintext HTTP/1.1 (PERMISSIVE)',
    options: { peerAuthentication: 'PERMISSIVE' },
    async open(mesh) {
      const socket = net.connect(mesh.ports.productInbound, '127.0.0.1');
      await once(socket, 'connect');
      return socket;
    },
  },
  {
    name: 'mTLS HTTP/1.1',
    options: {},
    async open(mesh) {
      const socket = tls.connect({ host: '127.0.0.1', port: mesh.ports.productInbound, ...(await peerIdentity(mesh)), checkServerIdentity: () => undefined });
      await once(socket, 'secureConnect');
      return socket;
    },
  },
];

for (const slowloris of SLOWLORIS_CASES) {
  t.test(`slowloris, ${slowloris.name}: a trickled request head is cut after requestHeadersTimeout`, async (t) => {
    const mesh = await startMesh({ ...slowloris.options, connections: '{ requestHeadersTimeout: 1s }' });
    t.teardown(() => mesh.close());
    const socket = await slowloris.open(mesh);
    t.teardown(() => socket.destroy());
    const { outcome, answer } = await trickle(socket);
    t.equal(outcome, 'closed', 'the connection was closed');
    t.match(answer, /^HTTP\/1\.1 408 /, 'with 408 Request Timeout');
  });
}

t.test('head size, mTLS HTTP/1.1: maxRequestHeadersKb (60 KiB by default) applies, not node\'s 16 KiB', async (t) => {
  const mesh = await startMesh();
  t.teardown(() => mesh.close());
  // The app takes large heads too (read by node per new connection), so a 431 can only come from the sidecar.
  (mesh.productApp.server as { maxHeaderSize?: number }).maxHeaderSize = 256 * 1024;
  const identity = await peerIdentity(mesh);
  /** The status, or 'closed' when the sidecar cut the connection before the client read its answer. */
  const statusWithHeader = (bytes: number): Promise<number | 'closed'> =>
    new Promise((resolve) => {
      const request = https.get(
        { host: '127.0.0.1', port: mesh.ports.productInbound, path: '/health/ping', agent: false, ...identity, checkServerIdentity: () => undefined, headers: { 'x-large': 'a'.repeat(bytes) } },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.once('error', () => resolve('closed'));
    });
  t.equal(await statusWithHeader(30 * 1024), 200, 'a 30 KiB head is served');
  t.equal(mesh.productApp.received.at(-1)?.headers['x-large']?.length, 30 * 1024, 'and reached the app whole');
  t.ok([431, 'closed'].includes(await statusWithHeader(70 * 1024)), 'a 70 KiB head is refused (431, or the connection cut while the client still wrote)');
  t.equal(mesh.productApp.received.length, 1, 'only the 30 KiB request reached the app');
});
