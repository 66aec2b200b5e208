/**
 * What the proxy does to a request on its way through (docs/normalisation.md#forwarded-headers): bodies are streamed in
 * both directions, WebSocket upgrades are spliced through (after the same policies as any request),
 * hop-by-hop headers stop at the proxy, forwarding headers are set, request ids generated or kept,
 * and at the edge a client cannot smuggle in the mesh's own control headers.
 */
import t from 'tap';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { startUpstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, request, serviceEntryYaml, sleep, startScenario, virtualServiceYaml } from './support.js';

const MIB = 1024 * 1024;
const BODY_MIB = 50;

/** Signals between the test and the streaming upstream, so each side can prove the other streams. */
const streaming = { uploadBytes: 0, downloadSent: 0, downloadFirstChunkSeen: Promise.resolve(), releaseDownload: (): void => undefined };

const upstream = await startUpstream((request, response) => {
  if (request.url === '/upload') {
    streaming.uploadBytes = 0;
    request.on('data', (chunk: Buffer) => (streaming.uploadBytes += chunk.length));
    request.on('end', () => response.end(String(streaming.uploadBytes)));
    return;
  }
  if (request.url === '/download') {
    request.resume();
    const chunk = Buffer.alloc(MIB, 0x61);
    response.setHeader('content-length', String(BODY_MIB * MIB));
    response.write(chunk);
    // The rest is only sent once the client has seen the first MiB: a buffering proxy would never deliver it.
    streaming.downloadFirstChunkSeen = new Promise<void>((resolve) => (streaming.releaseDownload = resolve)).then(async () => {
      for (let sent = 1; sent < BODY_MIB; sent++) {
        if (!response.write(chunk)) await new Promise((resolve) => response.once('drain', resolve));
        streaming.downloadSent = (sent + 1) * MIB;
      }
      response.end();
    });
    return;
  }
  if (request.url === '/hop') {
    request.resume();
    response.setHeader('connection', 'x-upstream-hop');
    response.setHeader('x-upstream-hop', 'secret');
    response.setHeader('keep-alive', 'timeout=5');
    response.setHeader('x-app', 'kept');
    response.end(JSON.stringify(request.headers));
    return;
  }
  request.resume();
  response.setHeader('content-type', 'application/json');
  response.end(JSON.stringify({ url: request.url, headers: request.headers }));
});
t.teardown(() => upstream.close());

/** A WebSocket upstream: answers the handshake, then echoes every byte (enough to prove the splice). */
const wsSeen: http.IncomingHttpHeaders[] = [];
const wsUrls: string[] = [];
const wsUpstream = http.createServer((_request, response) => response.writeHead(426).end());
wsUpstream.on('upgrade', (request: http.IncomingMessage, socket: Socket, head: Buffer) => {
  wsSeen.push(request.headers);
  wsUrls.push(request.url ?? '');
  const accept = createHash('sha1').update(`${String(request.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  if (head.length > 0) socket.write(head);
  socket.pipe(socket);
});
await new Promise<void>((resolve) => wsUpstream.listen(0, '127.0.0.1', resolve));
const wsPort = (wsUpstream.address() as { port: number }).port;
t.teardown(
  () =>
    new Promise<void>((resolve) => {
      wsUpstream.closeAllConnections();
      wsUpstream.close(() => resolve());
    }),
);

const pki = await makeTestPki();
const serverCert = await pki.serverCert(['ws.example.com']);
const [admin = 0, port = 0, tlsPort = 0] = await freePorts(3);

const denyPolicy = `---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: deny-private-socket
  namespace: istio-system
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: DENY
  rules:
    - to:
        - operation:
            paths: ["/private*"]
`;

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml(
      'edge',
      httpServerYaml(port, ['*']) +
        `    - port: {number: ${tlsPort}, name: https, protocol: HTTPS}
      hosts: ["ws.example.com"]
      tls: {mode: SIMPLE, serverCertificate: ${serverCert.certPath}, privateKey: ${serverCert.keyPath}}
`,
    ),
    serviceEntryYaml('app', 'app.internal', [{ port: upstream.port }]),
    serviceEntryYaml('sockets', 'sockets.internal', [{ port: wsPort }]),
    virtualServiceYaml('app', ['app.example.com'], 'edge', '    - route:\n        - destination: {host: app.internal}\n'),
    virtualServiceYaml(
      'sockets',
      ['ws.example.com'],
      'edge',
      `    - match: [{uri: {prefix: /chat}}]
      rewrite: {uri: /socket}
      route:
        - destination: {host: sockets.internal}
`,
    ),
    denyPolicy,
  ].join('\n'),
);

t.test(`a ${BODY_MIB} MiB request body reaches the upstream while the client is still sending`, async (t) => {
  const done = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', headers: { host: 'app.example.com', 'content-length': String(BODY_MIB * MIB) } }, resolve);
    req.on('error', reject);
    const chunk = Buffer.alloc(MIB, 0x62);
    void (async () => {
      req.write(chunk);
      for (let waited = 0; streaming.uploadBytes === 0 && waited < 20_000; waited += 10) await sleep(10);
      t.ok(streaming.uploadBytes > 0, 'the upstream got bytes before the client sent the second MiB');
      for (let sent = 1; sent < BODY_MIB; sent++) {
        if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
      }
      req.end();
    })();
  });
  const response = await done;
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  t.equal(response.statusCode, 200);
  t.equal(Buffer.concat(chunks).toString(), String(BODY_MIB * MIB), 'every byte arrived');
});

t.test(`a ${BODY_MIB} MiB response is relayed as it arrives, and a slow reader holds the upstream back`, async (t) => {
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/download', headers: { host: 'app.example.com' } }, resolve).on('error', reject);
  });
  const first = await new Promise<Buffer>((resolve) => response.once('data', resolve));
  response.pause();
  streaming.releaseDownload();
  // While the client reads nothing, only socket and stream buffers can fill: a proxy that buffered would take it all.
  await sleep(400);
  t.ok(streaming.downloadSent < (BODY_MIB * MIB) / 2, `the upstream could write only ${Math.round(streaming.downloadSent / MIB)} MiB while the client paused`);
  let received = first.length;
  response.resume();
  for await (const chunk of response) received += (chunk as Buffer).length;
  await streaming.downloadFirstChunkSeen;
  t.equal(received, BODY_MIB * MIB, 'every byte arrived');
});

interface Handshake {
  readonly socket: Socket;
  readonly response: string;
  /** Bytes that arrived after the response head. */
  readonly rest: Buffer;
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function upgradeRequest(path: string, host: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

/** Sends `head` on a new connection and reads up to the end of the response head. */
function handshake(socket: Socket, head: string): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`no response head: ${buffered.toString('latin1')}`)), 3000);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ socket, response: buffered.subarray(0, end).toString('latin1'), rest: buffered.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(head);
  });
}

function readExactly(socket: Socket, already: Buffer, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = already;
    const timer = setTimeout(() => reject(new Error('echo did not come back')), 3000);
    const check = (): void => {
      if (buffered.length < length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(buffered.subarray(0, length));
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      check();
    };
    socket.on('data', onData);
    check();
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

async function openPlain(): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

t.test('WebSocket: handshake and frames pass through the gateway, with the route rewrite applied', async (t) => {
  const socket = await openPlain();
  t.teardown(() => socket.destroy());
  const shake = await handshake(socket, upgradeRequest('/chat/room?id=7', 'ws.example.com', 'X-Envoy-Foo: smuggled\r\n'));
  t.match(shake.response, /^HTTP\/1\.1 101 /);
  t.match(shake.response, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/);
  const seen = wsSeen.at(-1) ?? {};
  t.equal(seen.upgrade, 'websocket');
  t.equal(wsUrls.at(-1), '/socket/room?id=7', 'the route rewrite applies to the upgrade request');
  t.equal(seen['x-envoy-original-path'], '/chat/room?id=7');
  t.equal(seen['x-forwarded-for'], '127.0.0.1');
  t.notOk(seen['x-envoy-foo'], 'edge sanitising applies to upgrades too');
  // A masked text frame "hello", as a browser would send it; the echo proves the bytes are spliced untouched.
  const frame = Buffer.from([0x81, 0x85, 0x01, 0x02, 0x03, 0x04, ...Buffer.from('hello').map((b, i) => b ^ [1, 2, 3, 4][i % 4]!)]);
  for (let i = 0; i < 3; i++) {
    socket.write(frame);
    t.same(await readExactly(socket, i === 0 ? shake.rest : Buffer.alloc(0), frame.length), frame, `frame ${i + 1} echoed`);
  }
  socket.end();
  await closed(socket);
});

t.test('a WebSocket is reported once it closes: Istio request series with the 101, bytes of the whole tunnel', async (t) => {
  const scrapeCount = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
    const line = text.split('\n').find((entry) => entry.startsWith('istio_requests_total{') && entry.includes('response_code="101"') && entry.includes('destination_service="sockets.internal"'));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const before = await scrapeCount();
  const socket = await openPlain();
  t.teardown(() => socket.destroy());
  const shake = await handshake(socket, upgradeRequest('/chat/room', 'ws.example.com'));
  t.match(shake.response, /^HTTP\/1\.1 101 /);
  await sleep(100);
  t.equal(await scrapeCount(), before, 'nothing is reported while the tunnel is open');
  socket.end();
  await closed(socket);
  let after = before;
  for (let attempt = 0; attempt < 50 && after === before; attempt++) {
    await sleep(20);
    after = await scrapeCount();
  }
  t.equal(after, before + 1, 'one request with response_code 101 once the tunnel closed');
});

t.test('WebSocket over TLS (HTTP/1.1 via ALPN on the HTTPS listener)', async (t) => {
  const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'ws.example.com', ca: pki.ca.certPem, ALPNProtocols: ['http/1.1'] });
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const shake = await handshake(socket as unknown as Socket, upgradeRequest('/chat', 'ws.example.com'));
  t.match(shake.response, /^HTTP\/1\.1 101 /);
  socket.write('ping');
  t.equal((await readExactly(socket as unknown as Socket, shake.rest, 4)).toString(), 'ping');
});

t.test('WebSocket upgrades go through policies and routing: denied → 403, unbound host → 404, closed when the client asks', async (t) => {
  const denied = await openPlain();
  t.teardown(() => denied.destroy());
  const refused = await handshake(denied, upgradeRequest('/private/chat', 'ws.example.com').replace('Connection: Upgrade\r\n', 'Connection: Upgrade, close\r\n'));
  t.match(refused.response, /^HTTP\/1\.1 403 /);
  await closed(denied);
  const unbound = await openPlain();
  t.teardown(() => unbound.destroy());
  const notFound = await handshake(unbound, upgradeRequest('/chat', 'nobody.example.com'));
  t.match(notFound.response, /^HTTP\/1\.1 404 /);
  t.match(notFound.response, /x-meshgate-reason: NR route_not_found/);
  t.match(notFound.response, /Connection: keep-alive/i, 'a refused upgrade leaves an HTTP connection');
});

t.test('an Upgrade other than websocket is answered as plain HTTP', async (t) => {
  const socket = await openPlain();
  t.teardown(() => socket.destroy());
  const shake = await handshake(socket, 'GET /plain HTTP/1.1\r\nHost: app.example.com\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
  t.match(shake.response, /^HTTP\/1\.1 200 /);
  const seen = upstream.received.find((r) => r.url === '/plain');
  t.notOk(seen?.headers.upgrade);
  t.notOk(seen?.headers['http2-settings'], 'named in Connection, so hop-by-hop');
});

t.test('hop-by-hop headers, including those named in Connection, stop at the proxy in both directions', async (t) => {
  const res = await request(port, '/hop', {
    host: 'app.example.com',
    headers: { connection: 'keep-alive, x-client-hop', 'x-client-hop': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'Basic eDp5', 'x-end-to-end': 'kept' },
  });
  const seen = JSON.parse(res.body) as Record<string, string>;
  for (const name of ['x-client-hop', 'keep-alive', 'te', 'proxy-authorization']) t.notOk(seen[name], `${name} not forwarded`);
  t.equal(seen['x-end-to-end'], 'kept');
  t.notOk(res.headers['x-upstream-hop'], 'a response header named in Connection is dropped');
  t.not(res.headers['keep-alive'], 'timeout=5', 'the upstream keep-alive hint is not relayed');
  t.equal(res.headers['x-app'], 'kept');
});

t.test('forwarding headers at the edge', async (t) => {
  const res = await request(port, '/fwd', { host: 'app.example.com', headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' } });
  const seen = (JSON.parse(res.body) as { headers: Record<string, string> }).headers;
  t.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'the peer is appended');
  t.equal(seen['x-forwarded-proto'], 'http', 'a client-supplied proto is not trusted without trusted hops');
  t.equal(seen['x-envoy-external-address'], '127.0.0.1', 'the trusted client address is the peer (numTrustedProxies 0)');
  t.match(res.headers['x-envoy-upstream-service-time'], /^\d+$/);
});

t.test('x-request-id: generated when absent or malformed, kept when valid', async (t) => {
  const idOf = async (headers: Record<string, string>): Promise<string> =>
    (JSON.parse((await request(port, '/id', { host: 'app.example.com', headers })).body) as { headers: Record<string, string> }).headers['x-request-id'] ?? '';
  const generated = await idOf({});
  t.match(generated, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.not(await idOf({}), generated, 'a new id per request');
  t.equal(await idOf({ 'x-request-id': 'order-42.retry_1' }), 'order-42.retry_1');
  const replaced = await idOf({ 'x-request-id': 'bad id with spaces' });
  t.not(replaced, 'bad id with spaces');
  t.match(replaced, /^[0-9a-f-]{36}$/);
});

t.test('client-supplied x-envoy-*, x-meshgate-* and x-forwarded-client-cert are stripped at the edge', async (t) => {
  const res = await request(port, '/strip', {
    host: 'app.example.com',
    headers: {
      'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/x/sa/admin;URI=spiffe://cluster.local/ns/x/sa/admin',
      'x-envoy-retry-on': '5xx',
      'x-envoy-internal': 'true',
      'x-envoy-original-path': '/admin',
      'x-envoy-attempt-count': '7',
      'x-meshgate-reason': 'forged',
    },
  });
  const seen = (JSON.parse(res.body) as { headers: Record<string, string> }).headers;
  t.notOk(seen['x-forwarded-client-cert']);
  t.notOk(seen['x-envoy-retry-on']);
  t.notOk(seen['x-envoy-internal']);
  t.notOk(seen['x-envoy-original-path']);
  t.notOk(seen['x-meshgate-reason']);
  t.equal(seen['x-envoy-attempt-count'], '1', 'the attempt count is the proxy’s own');
});
