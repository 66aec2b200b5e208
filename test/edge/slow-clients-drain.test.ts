/**
 * Issue 18, class 8: slow clients, drains and defaults, over real sockets.
 * - Slowloris: a client trickling its request head is cut after MeshConfig connections.requestHeadersTimeout
 *   (Envoy edge guidance: request_headers_timeout), on plain HTTP and on the HTTPS (h2 + HTTP/1.1) listener,
 *   not after node's 60 s + 30 s check.
 * - Idle client connections close after connections.idleTimeout.
 * - Drain (Envoy's drain: `Connection: close` on HTTP/1.1, GOAWAY on HTTP/2): a request in flight when the
 *   drain starts completes, says `connection: close`, and nothing is reset.
 * - Envoy's default circuit-breaker thresholds without a DestinationRule: 2 000 concurrent requests open at
 *   most 1 024 upstream connections and all succeed.
 * - Metrics tell the truth: connect errors a retry hid from the client are counted.
 */
import t from 'tap';
import type { Test } from 'tap';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { defaultMeshConfig } from '../../gateway/config/kinds/mesh-config.js';
import { clientConnectionSettings } from '../../gateway/runtime/listener-specs.js';
import { ENVOY_DEFAULT_CONNECTION_LIMIT } from '../../gateway/upstream/policy.js';
import { freePort } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, request, serviceEntryYaml, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const pki = await makeTestPki();
const ca = pki.ca.certPem;
const cert = await pki.serverCert(['edge.example.com']);

/**
 * Counts upstream connections; `/slow` answers after `SLOW_MS`, `/held` when the test releases it (so a
 * test can act while requests are certainly in flight), anything else at once.
 */
const SLOW_MS = 400;
const upstreamState = { connections: 0 };
const held: http.ServerResponse[] = [];
const heldArrivals = new EventEmitter();
const upstream = http.createServer((req, res) => {
  req.resume();
  const url = req.url ?? '';
  if (url.startsWith('/slow')) setTimeout(() => res.end('slow done'), SLOW_MS);
  else if (url.startsWith('/held')) {
    held.push(res);
    heldArrivals.emit('arrived', held.length);
  } else res.end('ok');
});

/** Resolves once `count` `/held` requests wait at the upstream. */
async function heldRequests(count: number): Promise<void> {
  while (held.length < count) await once(heldArrivals, 'arrived');
}

/** Resolves once `port` refuses new connections: the listener is draining. */
async function waitForListenerClosed(port: number): Promise<void> {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function releaseHeld(): void {
  for (const res of held.splice(0)) res.end('slow done');
}
upstream.on('connection', () => (upstreamState.connections += 1));
upstream.maxHeadersCount = 0;
await new Promise<void>((resolve) => upstream.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
t.teardown(() => {
  upstream.closeAllConnections();
  upstream.close();
});
const upstreamPort = (upstream.address() as AddressInfo).port;

function httpsServerYaml(port: number): string {
  return `    - port: {number: ${port}, name: https-${port}, protocol: HTTPS}
      hosts: ["edge.example.com"]
      tls: {mode: SIMPLE, serverCertificate: ${cert.certPath}, privateKey: ${cert.keyPath}}
`;
}

async function scenario(t: Test, meshExtra: string, extraYaml = ''): Promise<{ http: number; https: number; admin: number; stop: () => Promise<void> }> {
  const [admin = 0, httpPort = 0, httpsPort = 0] = await freePorts(3);
  const gateway = await startScenario(
    t,
    [
      meshConfigYaml(admin, meshExtra),
      gatewayYaml('edge', httpServerYaml(httpPort, ['*']) + httpsServerYaml(httpsPort)),
      serviceEntryYaml('app', 'app.internal', [{ port: upstreamPort }]),
      virtualServiceYaml('app', ['edge.example.com'], 'edge', '    - route:\n        - destination: {host: app.internal}\n'),
      extraYaml,
    ].join('\n'),
  );
  return { http: httpPort, https: httpsPort, admin, stop: () => gateway.stop() };
}

/** Resolves with how long the server took to close the socket (ms), or -1 when it did not within `deadlineMs`. */
function closedWithin(socket: Socket, deadlineMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(-1), deadlineMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

/** Sends a request head one header line at a time, every `everyMs`, for as long as the socket is open. */
function trickle(socket: Socket, everyMs: number): () => void {
  socket.write('GET / HTTP/1.1\r\nHost: edge.example.com\r\n');
  let line = 0;
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(`x-slow-${line++}: a\r\n`);
  }, everyMs);
  socket.on('error', () => undefined);
  return () => clearInterval(timer);
}

t.test('defaults: 10 s request head timeout, 65 s idle, websocket only, 100 HTTP/2 streams', async (t) => {
  const settings = clientConnectionSettings(defaultMeshConfig());
  t.same(settings, { requestHeadersTimeoutMs: 10_000, idleTimeoutMs: 65_000, upgrades: ['websocket'], http2MaxConcurrentStreams: 100, http2MaxPrematureResets: 200 });
  t.equal(ENVOY_DEFAULT_CONNECTION_LIMIT, 1024);
});

t.test('class 8: a slowloris client is cut after requestHeadersTimeout, on HTTP and on HTTPS', async (t) => {
  const ports = await scenario(t, '  connections:\n    requestHeadersTimeout: 1s\n    idleTimeout: 1500ms\n');
  const plain = connect({ host: '127.0.0.1', port: ports.http });
  await new Promise<void>((resolve) => plain.once('connect', resolve));
  const stopPlain = trickle(plain, 200);
  t.teardown(stopPlain);
  const plainClosedMs = await closedWithin(plain, 8000);
  t.ok(plainClosedMs > 0, `plain HTTP: cut after ${Math.round(plainClosedMs)} ms, though the client kept sending`);

  const secure = tls.connect({ host: '127.0.0.1', port: ports.https, servername: 'edge.example.com', ca, ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((resolve) => secure.once('secureConnect', resolve));
  const stopSecure = trickle(secure as unknown as Socket, 200);
  t.teardown(stopSecure);
  const secureClosedMs = await closedWithin(secure as unknown as Socket, 8000);
  t.ok(secureClosedMs > 0, `HTTPS (HTTP/1.1 over the h2 listener): cut after ${Math.round(secureClosedMs)} ms`);

  // A client that never finishes its TLS handshake is bounded by the same timeout.
  const silent = connect({ host: '127.0.0.1', port: ports.https });
  await new Promise<void>((resolve) => silent.once('connect', resolve));
  silent.on('error', () => undefined);
  t.ok((await closedWithin(silent, 8000)) > 0, 'a silent TLS client is cut too');

  // Idle keep-alive connections close after idleTimeout; a normal request is not disturbed by the head timeout.
  const idle = connect({ host: '127.0.0.1', port: ports.http });
  await new Promise<void>((resolve) => idle.once('connect', resolve));
  let answer = '';
  idle.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  idle.write('GET /quick HTTP/1.1\r\nHost: edge.example.com\r\n\r\n');
  const idleClosedMs = await closedWithin(idle, 8000);
  t.match(answer, /^HTTP\/1\.1 200 /);
  t.ok(idleClosedMs > 0, `the idle keep-alive connection closed after ${Math.round(idleClosedMs)} ms`);
});

t.test('class 8: drain: in-flight HTTP/1.1 answers say connection: close, HTTP/2 gets GOAWAY, nothing is reset', async (t) => {
  const ports = await scenario(t, '  drainDuration: 5s\n');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  // Warm keep-alive connections, then put a slow request on each.
  await Promise.all([1, 2, 3, 4].map(() => request(ports.http, '/warm', { host: 'edge.example.com', agent })));
  const h1 = [1, 2, 3, 4].map((i) => request(ports.http, `/held/h1-${i}`, { host: 'edge.example.com', agent, timeoutMs: 30_000 }));

  const session = http2.connect(`https://127.0.0.1:${ports.https}`, { servername: 'edge.example.com', ca });
  t.teardown(() => session.close());
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  session.on('error', () => undefined);
  const h2 = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request({ ':path': '/held/h2', ':authority': 'edge.example.com' });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
    stream.end();
  });
  await heldRequests(5);
  const stopping = ports.stop();
  // The drain has begun (no new connections) while all five are in flight; then the upstream answers.
  await waitForListenerClosed(ports.http);
  releaseHeld();
  const answers = await Promise.allSettled(h1);
  for (const answer of answers) {
    t.equal(answer.status, 'fulfilled', answer.status === 'rejected' ? `reset: ${String(answer.reason)}` : 'answered, not reset');
    if (answer.status === 'fulfilled') {
      t.equal(answer.value.status, 200);
      t.equal(answer.value.headers.connection, 'close', 'the client is told not to reuse the connection');
    }
  }
  const streamAnswer = await h2;
  t.same(streamAnswer, { status: 200, body: 'slow done' }, 'the HTTP/2 stream in flight completes');
  t.ok(goaway, 'the HTTP/2 client got a GOAWAY');
  await stopping;
});

t.test("class 8: without a DestinationRule, Envoy's 1024 connection limit: 2 000 concurrent requests, ≤ 1 024 upstream connections, all served", async (t) => {
  const ports = await scenario(t, '');
  const before = upstreamState.connections;
  // 20 HTTP/2 connections × 100 streams: 2 000 requests in flight without 2 000 client sockets.
  const sessions = Array.from({ length: 20 }, () => http2.connect(`https://127.0.0.1:${ports.https}`, { servername: 'edge.example.com', ca }));
  t.teardown(() => sessions.forEach((session) => session.close()));
  const statuses = await Promise.all(
    Array.from({ length: 2000 }, (_, i) =>
      new Promise<number>((resolve) => {
        const stream = (sessions[i % sessions.length] as http2.ClientHttp2Session).request({ ':path': `/slow/many-${i}`, ':authority': 'edge.example.com' });
        let status = 0;
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('error', () => resolve(-1));
        stream.resume();
        stream.on('end', () => resolve(status));
        stream.end();
      }),
    ),
  );
  const opened = upstreamState.connections - before;
  t.ok(opened <= 1024, `upstream connections opened: ${opened}`);
  t.ok(opened > 100, 'the pool did grow under the load (the bound is what stopped it)');
  t.equal(statuses.filter((status) => status === 200).length, 2000, 'every request was served (the others waited in the pending queue)');
});

t.test('class 8: connect errors a retry hid from the client are counted', async (t) => {
  const deadPort = await freePort();
  const ports = await scenario(
    t,
    '',
    `---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: flaky
spec:
  hosts: [flaky.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - {number: 80, name: http, protocol: HTTP}
  endpoints:
    - address: 127.0.0.1
      ports: {http: ${deadPort}}
    - address: 127.0.0.1
      ports: {http: ${upstreamPort}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: flaky
spec:
  host: flaky.internal
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: flaky
spec:
  hosts: [flaky.example.com]
  gateways: [istio-system/edge]
  http:
    - route: [{destination: {host: flaky.internal}}]
      retries: {attempts: 3, retryOn: connect-failure}
`,
  );
  const replies = [];
  for (let i = 0; i < 6; i++) replies.push(await request(ports.http, `/flaky-${i}`, { host: 'flaky.example.com' }));
  t.same(replies.map((reply) => reply.status), [200, 200, 200, 200, 200, 200], 'the client saw no failure');
  const text = await (await fetch(`http://127.0.0.1:${ports.admin}/stats/prometheus`)).text();
  const line = text.split('\n').find((entry) => entry.startsWith('meshgate_upstream_connect_errors_total{') && entry.includes('flaky.internal'));
  t.ok(line !== undefined && Number(line.slice(line.lastIndexOf(' ') + 1)) >= 1, `the hidden connect failures are counted: ${line ?? 'no series'}`);
});
