/**
 * gRPC through the ingress: @grpc/grpc-js clients over TLS (HTTP/2 by ALPN) to a GRPC ServiceEntry
 * port, served upstream over h2c by a grpc-js server. Unary, server streaming and bidi streaming
 * calls keep their messages, metadata and trailers; a trailers-only UNAVAILABLE is retried by the
 * route's `retryOn: unavailable`; the proxy's own answers to a gRPC client are gRPC errors; and
 * grpc-timeout bounds the upstream wait when the route has no timeout.
 */
import t from 'tap';
import type { Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { eventually } from '../helpers/eventually.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, meshConfigYaml, startScenario, virtualServiceYaml } from './support.js';

const identity = (value: Buffer): Buffer => value;
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const ECHO = {
  unary: method('/test.Echo/Unary', false, false),
  serverStream: method('/test.Echo/ServerStream', false, true),
  bidi: method('/test.Echo/Bidi', true, true),
  flaky: method('/test.Echo/Flaky', false, false),
  silent: method('/test.Echo/Silent', false, false),
} as const;

let flakyCalls = 0;
let silentCancelled = 0;
const server = new grpc.Server();
server.addService(ECHO, {
  unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const trailer = new grpc.Metadata();
    trailer.set('x-trailer', 'from-upstream');
    callback(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
  },
  serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    for (let i = 0; i < 3; i++) call.write(Buffer.from(`${call.request.toString()}-${i}`));
    call.end();
  },
  bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    call.on('data', (chunk: Buffer) => call.write(Buffer.from(chunk.toString().toUpperCase())));
    call.on('end', () => call.end());
  },
  flaky: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    flakyCalls += 1;
    if (flakyCalls < 3) callback({ code: grpc.status.UNAVAILABLE, details: 'try again' });
    else callback(null, Buffer.from(`third time (${flakyCalls})`));
  },
  silent: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
    call.on('cancelled', () => (silentCancelled += 1));
  },
});
const upstreamPort = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error === null ? resolve(port) : reject(error))),
);
t.teardown(() => server.forceShutdown());

const pki = await makeTestPki();
const cert = await pki.serverCert(['grpc.example.com']);
const [admin = 0, port = 0] = await freePorts(2);

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', `    - port: {number: ${port}, name: https, protocol: HTTPS}
      hosts: ["grpc.example.com"]
      tls: {mode: SIMPLE, serverCertificate: ${cert.certPath}, privateKey: ${cert.keyPath}}
`),
    `---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: echo
spec:
  hosts: [echo.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - {number: 50051, name: grpc, protocol: GRPC}
  endpoints:
    - address: 127.0.0.1
      ports: {grpc: ${upstreamPort}}
`,
    virtualServiceYaml(
      'echo',
      ['grpc.example.com'],
      'edge',
      `    - match: [{uri: {prefix: /test.Echo/}}]
      route:
        - destination: {host: echo.internal, port: {number: 50051}}
      retries: {attempts: 3, retryOn: unavailable}
`,
    ),
  ].join('\n'),
);

const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(pki.ca.certPem)), {
  'grpc.ssl_target_name_override': 'grpc.example.com',
  'grpc.default_authority': 'grpc.example.com',
}) as unknown as Record<string, (...args: unknown[]) => unknown> & grpc.Client;
t.teardown(() => client.close());

interface UnaryResult {
  readonly error: grpc.ServiceError | null;
  readonly value: Buffer | undefined;
  readonly trailers: grpc.Metadata | null;
}

function unary(name: string, payload: string, options: grpc.CallOptions = {}): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | null = null;
    const call = client[name]?.(Buffer.from(payload), new grpc.Metadata(), options, (error: grpc.ServiceError | null, value?: Buffer) =>
      // 'status' is emitted after the callback: wait for it so that the trailers are known.
      setImmediate(() => resolve({ error, value, trailers })),
    ) as grpc.ClientUnaryCall;
    call.on('status', (status: grpc.StatusObject) => (trailers = status.metadata));
  });
}

t.test('unary: message and trailers cross the proxy', async (t) => {
  const result = await unary('unary', 'hello');
  t.equal(result.error, null);
  t.equal(result.value?.toString(), 'echo:hello');
  t.same(result.trailers?.get('x-trailer'), ['from-upstream'], 'the upstream trailers reach the client');
});

t.test('server streaming: every message in order, then OK', async (t) => {
  const call = client['serverStream']?.(Buffer.from('tick'), new grpc.Metadata(), {}) as grpc.ClientReadableStream<Buffer>;
  const received: string[] = [];
  call.on('data', (chunk: Buffer) => received.push(chunk.toString()));
  const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  t.equal(status.code, grpc.status.OK);
  t.same(received, ['tick-0', 'tick-1', 'tick-2']);
});

t.test('bidi streaming: requests and replies interleave on one stream', async (t) => {
  const call = client['bidi']?.(new grpc.Metadata(), {}) as grpc.ClientDuplexStream<Buffer, Buffer>;
  const replies: string[] = [];
  const next = (): Promise<string> => new Promise((resolve) => call.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  for (const word of ['one', 'two', 'three']) {
    const reply = next();
    call.write(Buffer.from(word));
    replies.push(await reply);
  }
  call.end();
  const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  t.equal(status.code, grpc.status.OK);
  t.same(replies, ['ONE', 'TWO', 'THREE'], 'each reply came back before the next request was sent');
});

t.test('retryOn unavailable: a trailers-only UNAVAILABLE is retried', async (t) => {
  flakyCalls = 0;
  const result = await unary('flaky', 'x');
  t.equal(result.error, null);
  t.equal(result.value?.toString(), 'third time (3)');
});

/** One raw gRPC request over HTTP/2: the response HEADERS. */
async function rawGrpc(t: Test, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<http2.IncomingHttpHeaders> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pki.ca.certPem, servername: 'grpc.example.com' });
  t.teardown(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': path, ':authority': 'grpc.example.com', 'content-type': 'application/grpc', te: 'trailers', ...extra });
  stream.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', (received) => resolve(received)));
  stream.resume();
  return headers;
}

t.test('a local reply to a gRPC client is a gRPC error: no route → UNIMPLEMENTED in the response headers', async (t) => {
  const headers = await rawGrpc(t, '/other.Service/Call');
  t.equal(headers[':status'], 200);
  t.equal(headers['content-type'], 'application/grpc');
  t.equal(headers['grpc-status'], '12');
  t.equal(headers['grpc-message'], 'no route: no rule of the virtual host matched this request');
});

t.test('grpc-timeout bounds the upstream wait when the route has none: UNAVAILABLE, upstream request timeout', async (t) => {
  silentCancelled = 0;
  const started = performance.now();
  const headers = await rawGrpc(t, '/test.Echo/Silent', { 'grpc-timeout': '200m' });
  t.ok(performance.now() - started >= 190, 'answered at the deadline');
  t.equal(headers[':status'], 200);
  t.equal(headers['grpc-status'], '14');
  t.equal(headers['grpc-message'], 'upstream request timeout');
  await eventually(() => silentCancelled, (n) => n === 1);
  t.equal(silentCancelled, 1, 'the upstream call was cancelled');
});

t.test('a grpc-js client reads the local reply as a gRPC status', async (t) => {
  const Other = grpc.makeGenericClientConstructor({ call: method('/other.Service/Call', false, false) }, 'Other');
  const other = new Other(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(pki.ca.certPem)), {
    'grpc.ssl_target_name_override': 'grpc.example.com',
    'grpc.default_authority': 'grpc.example.com',
  }) as unknown as Record<string, (...args: unknown[]) => unknown> & grpc.Client;
  t.teardown(() => other.close());
  const error = await new Promise<grpc.ServiceError | null>((resolve) => {
    other['call']?.(Buffer.from('x'), (e: grpc.ServiceError | null) => resolve(e));
  });
  t.equal(error?.code, grpc.status.UNIMPLEMENTED);
  t.equal(error?.details, 'no route: no rule of the virtual host matched this request');
});
