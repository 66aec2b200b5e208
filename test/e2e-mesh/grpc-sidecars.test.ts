/**
 * HTTP/2 through a sidecar pair (docs/grpc.md): a grpc-js client speaks h2c (prior knowledge) to its
 * sidecar's plain outbound port, the sidecars speak HTTP/2 over mesh mTLS (ALPN h2), and the echo
 * sidecar speaks h2c to the grpc-js server behind its GRPC ingress port. Beside it, h2UpgradePolicy
 * UPGRADE: the sidecar hop is HTTP/2 while an HTTP/1.1 app behind its sidecar is still called over
 * HTTP/1.1; a plaintext endpoint without a sidecar is called with h2c prior knowledge, as Istio does;
 * a TLS endpoint that answers ALPN with http/1.1 is called over HTTP/1.1.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import { readCompleteJsonLines } from '../helpers/json-lines.js';
import { makeTestPki } from '../helpers/pki.js';

const identity = (value: Buffer): Buffer => value;
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const ECHO = {
  unary: method('/test.Echo/Unary', false),
  serverStream: method('/test.Echo/ServerStream', true),
  fail: method('/test.Echo/Fail', false),
  silent: method('/test.Echo/Silent', false),
} as const;

let silentDeadline: number | null = null;
let silentCancelled = 0;
const grpcServer = new grpc.Server();
grpcServer.addService(ECHO, {
  unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const trailer = new grpc.Metadata();
    trailer.set('x-trailer', 'from-echo');
    callback(null, Buffer.concat([Buffer.from('echo:'), call.request, Buffer.from(`:${String(call.metadata.get('x-hello')[0] ?? '')}`)]), trailer);
  },
  serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    for (let i = 0; i < 3; i++) call.write(Buffer.from(`${call.request.toString()}-${i}`));
    call.end();
  },
  fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    callback({ code: grpc.status.INVALID_ARGUMENT, details: 'bad echo request' });
  },
  silent: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
    const deadline = call.getDeadline();
    silentDeadline = deadline instanceof Date ? deadline.getTime() : Number(deadline);
    call.on('cancelled', () => (silentCancelled += 1));
  },
});
const grpcAppPort = await new Promise<number>((resolve, reject) =>
  grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))),
);
t.teardown(() => grpcServer.forceShutdown());

/** Answers with the HTTP version it was called with. */
const versionHandler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
  request.resume();
  request.on('end', () => {
    const trailers = JSON.stringify(request.trailers);
    response.setHeader('content-type', 'text/plain');
    response.end(`${request.httpVersion} ${trailers}`);
  });
};
async function listen(server: http.Server | http2.Http2Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return (server.address() as AddressInfo).port;
}
const webApp = http.createServer(versionHandler);
const webAppPort = await listen(webApp);
t.teardown(() => webApp.closeAllConnections());
const plainH2 = http2.createServer(versionHandler as never);
const plainH2Port = await listen(plainH2);
const plainH1 = http.createServer(versionHandler);
const plainH1Port = await listen(plainH1);
t.teardown(() => plainH1.closeAllConnections());

const pki = await makeTestPki();
const tlsCert = await pki.serverCert(['tls-h1.example.internal']);
const tlsH1 = https.createServer({ cert: readFileSync(tlsCert.certPath), key: readFileSync(tlsCert.keyPath), ALPNProtocols: ['http/1.1'] }, versionHandler);
const tlsH1Port = await listen(tlsH1);
t.teardown(() => tlsH1.closeAllConnections());

const ports = {
  echoGrpcInbound: await freePort(),
  echoWebInbound: await freePort(),
  clientInbound: await freePort(),
  clientOutbound: await freePort(),
  admins: [await freePort(), await freePort()],
};
const logDir = await mkdtemp(join(tmpdir(), 'meshgate-h2-mesh-'));
const accessLog = join(logDir, 'access.log');
t.teardown(() => rm(logDir, { recursive: true, force: true }));

const upgrade = (host: string, tls = ''): string => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host.split('.')[0] ?? host}, namespace: my-app }
spec:
  host: ${host}
  trafficPolicy:
    connectionPool: { http: { h2UpgradePolicy: UPGRADE } }
${tls}`;
const plainService = (name: string, port: number): string => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: my-app }
spec:
  hosts: [${name}.example.internal]
  location: MESH_EXTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`;

const config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  debugHeaders: true
  accessLog: { enabled: true, path: ${accessLog} }
  drainDuration: 1s
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: my-app }
spec: { mtls: { mode: STRICT } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: my-app }
spec:
  hosts: [echo.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  workloadSelector: { labels: { app: echo } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: web, namespace: my-app }
spec:
  hosts: [web.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: echo } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { grpc: ${ports.echoGrpcInbound}, http: ${ports.echoWebInbound} }
  labels: { app: echo }
  serviceAccount: echo
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: my-app }
spec:
  address: 127.0.0.1
  labels: { app: client }
  serviceAccount: client
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: echo, namespace: my-app }
spec:
  workloadSelector: { labels: { app: echo } }
  ingress:
    - { port: { number: ${ports.echoGrpcInbound}, protocol: GRPC, name: grpc }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${grpcAppPort}" }
    - { port: { number: ${ports.echoWebInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${webAppPort}" }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: my-app }
spec:
  workloadSelector: { labels: { app: client } }
  ingress: [{ port: { number: ${ports.clientInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:1" }]
  egress: [{ port: { number: ${ports.clientOutbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, hosts: ["*/*"] }]
${upgrade('web.my-app.svc.cluster.local')}
${plainService('plain-h2', plainH2Port)}
${upgrade('plain-h2.example.internal')}
${plainService('plain-h1', plainH1Port)}
${upgrade('plain-h1.example.internal')}
${plainService('tls-h1', tlsH1Port)}
${upgrade('tls-h1.example.internal', `    tls: { mode: SIMPLE, caCertificates: ${pki.ca.certPath}, sni: tls-h1.example.internal }\n`)}
`);
t.teardown(() => config.remove());
const echoSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/echo', adminAddress: `127.0.0.1:${ports.admins[0]}` });
t.teardown(() => echoSidecar.stop());
const clientSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/client', adminAddress: `127.0.0.1:${ports.admins[1]}` });
t.teardown(() => clientSidecar.stop());

const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
const client = new EchoClient(`127.0.0.1:${ports.clientOutbound}`, grpc.credentials.createInsecure(), {
  'grpc.default_authority': 'echo.my-app.svc.cluster.local:50051',
}) as unknown as Record<string, (...args: unknown[]) => unknown> & grpc.Client;
t.teardown(() => client.close());

interface UnaryResult {
  readonly error: grpc.ServiceError | null;
  readonly value: Buffer | undefined;
  readonly trailers: grpc.Metadata | null;
}

function unary(name: string, payload: string, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | null = null;
    const call = client[name]?.(Buffer.from(payload), metadata, options, (error: grpc.ServiceError | null, value?: Buffer) =>
      // 'status' is emitted after the callback: wait for it so that the trailers are known.
      setImmediate(() => resolve({ error, value, trailers })),
    ) as grpc.ClientUnaryCall;
    call.on('status', (status: grpc.StatusObject) => (trailers = status.metadata));
  });
}

/** The access-log line the echo sidecar wrote for a request to its inbound cluster `inbound|<port>||` at `path` (the writer is asynchronous). */
async function inboundLine(port: number, path: string): Promise<Record<string, unknown> | undefined> {
  const matches = (line: Record<string, unknown>): boolean => line['upstream_cluster'] === `inbound|${port}||` && line['path'] === path;
  const lines = await eventually(
    () => readCompleteJsonLines(accessLog),
    (all) => all.some(matches),
  );
  return lines.find(matches);
}

t.test('unary gRPC through both sidecars: message, metadata and trailers', async (t) => {
  const metadata = new grpc.Metadata();
  metadata.set('x-hello', 'metadata');
  const result = await unary('unary', 'hi', metadata);
  t.equal(result.error, null);
  t.equal(result.value?.toString(), 'echo:hi:metadata');
  t.same(result.trailers?.get('x-trailer'), ['from-echo'], 'the app trailers cross both sidecars');
  const line = await inboundLine(ports.echoGrpcInbound, '/test.Echo/Unary');
  t.equal(line?.['protocol'], 'HTTP/2', 'the echo sidecar received the call over HTTP/2 (mesh mTLS, ALPN h2), written as Envoy writes it');
  t.match(String(line?.['peer_principal']), /sa\/client$/, 'from the client sidecar, over mTLS');
});

t.test('server streaming through both sidecars: every message in order, then OK', async (t) => {
  const call = client['serverStream']?.(Buffer.from('tick'), new grpc.Metadata(), {}) as grpc.ClientReadableStream<Buffer>;
  const received: string[] = [];
  call.on('data', (chunk: Buffer) => received.push(chunk.toString()));
  const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  t.equal(status.code, grpc.status.OK);
  t.same(received, ['tick-0', 'tick-1', 'tick-2']);
});

t.test("an app's grpc-status error arrives unchanged", async (t) => {
  const result = await unary('fail', 'x');
  t.equal(result.error?.code, grpc.status.INVALID_ARGUMENT);
  t.equal(result.error?.details, 'bad echo request');
});

t.test("the client's deadline crosses both sidecars and ends the call", async (t) => {
  silentDeadline = null;
  silentCancelled = 0;
  const sent = Date.now();
  const result = await unary('silent', 'x', new grpc.Metadata(), { deadline: Date.now() + 1_000 });
  t.equal(result.error?.code, grpc.status.DEADLINE_EXCEEDED);
  t.ok(silentDeadline !== null && Number.isFinite(silentDeadline) && silentDeadline <= sent + 1_500, `the app saw the grpc-timeout (deadline ${String(silentDeadline)})`);
  await eventually(() => silentCancelled, (n) => n === 1);
  t.equal(silentCancelled, 1, 'the app call was cancelled');
});

/** One HTTP/1.1 GET to the client sidecar's outbound port. */
function get(host: string, path = '/'): Promise<{ status: number; body: string; reason: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port: ports.clientOutbound, path, headers: { host }, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, reason: String(response.headers['x-meshgate-reason'] ?? '') }));
    });
    request.on('error', reject);
  });
}

t.test('HTTP/1.1 clients on the same plaintext port are still served as HTTP/1.1', async (t) => {
  const reply = await get('web.my-app.svc.cluster.local');
  t.equal(reply.status, 200, reply.body);
  t.match(reply.body, /^1\.1 /);
});

t.test('h2UpgradePolicy UPGRADE: HTTP/2 between the sidecars, HTTP/1.1 to the app that speaks it', async (t) => {
  const reply = await get('web.my-app.svc.cluster.local', '/upgraded');
  t.equal(reply.status, 200, reply.body);
  t.match(reply.body, /^1\.1 /, 'the app behind the sidecar is called over HTTP/1.1');
  const line = await inboundLine(ports.echoWebInbound, '/upgraded');
  t.match(line?.['protocol'], /^HTTP\/2/, 'the echo sidecar received it over HTTP/2');
});

t.test('h2UpgradePolicy UPGRADE to a plaintext endpoint without a sidecar: h2c with prior knowledge, as Istio', async (t) => {
  const reply = await get('plain-h2.example.internal');
  t.equal(reply.status, 200, reply.body);
  t.match(reply.body, /^2\.0 /, 'the h2c endpoint was called over HTTP/2');
  const refused = await get('plain-h1.example.internal');
  t.equal(refused.status, 503, 'an HTTP/1.1-only plaintext endpoint cannot be upgraded: Istio fails the same way');
  t.match(refused.reason, /^UC /, 'the connection ended before any response');
});

t.test('h2UpgradePolicy UPGRADE to a TLS endpoint that answers ALPN with http/1.1: HTTP/1.1 on that connection', async (t) => {
  const first = await get('tls-h1.example.internal');
  t.equal(first.status, 200, first.body);
  t.match(first.body, /^1\.1 /);
  const second = await get('tls-h1.example.internal');
  t.equal(second.status, 200, second.body);
  t.match(second.body, /^1\.1 /, 'and on the next connections');
});

t.test('request trailers from an HTTP/2 client reach an HTTP/2 upstream', async (t) => {
  const session = http2.connect(`http://127.0.0.1:${ports.clientOutbound}`);
  t.teardown(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': '/trailers', ':authority': 'plain-h2.example.internal', 'content-type': 'text/plain' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123' }));
  stream.end('payload');
  let body = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => (body += chunk));
  const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
  await new Promise((resolve) => stream.once('end', resolve));
  t.equal(status, 200, body);
  t.equal(body, '2.0 {"x-checksum":"abc123"}');
});
