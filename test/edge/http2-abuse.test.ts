/**
 * Issue 18, class 3: HTTP/2 abuse at the edge, with hand-built frames over TLS and node's http2 client.
 * - SETTINGS_MAX_CONCURRENT_STREAMS is advertised (Envoy's edge guidance: 100).
 * - A stream the client resets (RST_STREAM) cancels its upstream request at once.
 * - Rapid Reset (CVE-2023-44487): 10 000 HEADERS+RST_STREAM pairs keep at most 100 upstream requests in
 *   flight, cancel every one of them, end in GOAWAY ENHANCE_YOUR_CALM, and a well-behaved client on
 *   another connection keeps its latency (p99 alone vs during the flood is reported).
 * - MadeYouReset (CVE-2025-8671): streams the SERVER resets because of client frame errors (DATA beyond
 *   the announced content-length) are counted the same way.
 * - RFC 9113 §8.3.1: `:authority` wins over a `host` header for routing and forwarding.
 * - RFC 9113 §8.2.1: CR/LF/NUL in a pseudo-header is a stream error (RST_STREAM PROTOCOL_ERROR); in a
 *   regular field node's HTTP/2 layer (nghttp2) drops that field before the proxy sees the request, so
 *   it can neither split a header upstream nor reach it.
 */
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startUpstream } from '../helpers/gateway.js';
import { ERROR_CODE, FLAG, FRAME, RawH2Connection, SETTING, frame, headers, rstStream, settingsOf } from '../helpers/h2-frames.js';
import { makeTestPki } from '../helpers/pki.js';
import { freePorts, gatewayYaml, meshConfigYaml, serviceEntryYaml, sleep, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

const MAX_STREAMS = 100;
const FLOOD_PAIRS = 10_000;

const pki = await makeTestPki();
const ca = pki.ca.certPem;
const cert = await pki.serverCert(['*.example.com']);

/** The upstream counts what is in flight: `/hold` requests are never answered, only cancelled by the proxy. */
const upstreamState = { inFlight: 0, maxInFlight: 0, held: 0, cancelled: 0, hosts: [] as string[] };
const upstream = http.createServer((request, response) => {
  upstreamState.hosts.push(request.headers.host ?? '');
  if ((request.url ?? '').startsWith('/hold')) {
    upstreamState.held += 1;
    upstreamState.inFlight += 1;
    upstreamState.maxInFlight = Math.max(upstreamState.maxInFlight, upstreamState.inFlight);
    request.resume();
    response.once('close', () => {
      upstreamState.inFlight -= 1;
      if (!response.writableEnded) upstreamState.cancelled += 1;
    });
    return;
  }
  request.resume();
  response.end(`ok ${request.url ?? ''}`);
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  upstream.closeAllConnections();
  upstream.close();
});
const decoy = await startUpstream();
t.teardown(() => decoy.close());

const [admin = 0, port = 0] = await freePorts(2);
await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml(
      'edge',
      `    - port: {number: ${port}, name: https, protocol: HTTPS}
      hosts: ["*.example.com"]
      tls: {mode: SIMPLE, serverCertificate: ${cert.certPath}, privateKey: ${cert.keyPath}}
`,
    ),
    serviceEntryYaml('app', 'app.internal', [{ port: (upstream.address() as AddressInfo).port }]),
    serviceEntryYaml('decoy', 'decoy.internal', [{ port: decoy.port }]),
    virtualServiceYaml('app', ['h2.example.com'], 'edge', '    - route:\n        - destination: {host: app.internal}\n'),
    virtualServiceYaml('decoy', ['decoy.example.com'], 'edge', '    - route:\n        - destination: {host: decoy.internal}\n'),
  ].join('\n'),
);

const AUTHORITY = 'h2.example.com';

function requestFields(streamId: number, path: string, method = 'GET'): (readonly [string, string])[] {
  return [
    [':method', method],
    [':scheme', 'https'],
    [':path', `${path}?stream=${streamId}`],
    [':authority', AUTHORITY],
  ];
}

async function waitUntil(condition: () => boolean, deadlineMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

function goawayCode(payload: Buffer): number {
  return payload.readUInt32BE(4);
}

async function scrapeAbusive(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
  const line = text.split('\n').find((entry) => entry.startsWith('meshgate_downstream_http2_abusive_sessions_total{'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** A well-behaved client: sequential GETs on its own HTTP/2 connection, each one's latency in ms. */
async function wellBehaved(session: http2.ClientHttp2Session, keepGoing: (done: number) => boolean): Promise<number[]> {
  const latencies: number[] = [];
  while (keepGoing(latencies.length)) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':path': '/fast', ':authority': AUTHORITY });
      stream.on('response', (responseHeaders) => {
        if (responseHeaders[':status'] !== 200) reject(new Error(`status ${String(responseHeaders[':status'])}`));
      });
      stream.on('error', reject);
      stream.resume();
      stream.on('end', () => resolve());
      stream.end();
    });
    latencies.push(performance.now() - started);
  }
  return latencies;
}

t.test(`class 3: SETTINGS_MAX_CONCURRENT_STREAMS ${MAX_STREAMS} is advertised`, async (t) => {
  const connection = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
  t.teardown(() => connection.close());
  const serverSettings = await connection.waitFor((received) => received.type === FRAME.SETTINGS && received.flags === 0);
  t.ok(serverSettings, 'the server sent its SETTINGS');
  t.equal(settingsOf(serverSettings?.payload ?? Buffer.alloc(0)).get(SETTING.MAX_CONCURRENT_STREAMS), MAX_STREAMS);
});

t.test('class 3: a stream the client resets cancels its upstream request at once', async (t) => {
  const cancelledBefore = upstreamState.cancelled;
  const heldBefore = upstreamState.held;
  const session = http2.connect(`https://127.0.0.1:${port}`, { servername: AUTHORITY, ca });
  t.teardown(() => session.close());
  const stream = session.request({ ':path': '/hold/one', ':authority': AUTHORITY });
  stream.on('error', () => undefined);
  stream.end();
  t.ok(await waitUntil(() => upstreamState.held > heldBefore), 'the request reached the upstream');
  stream.close(http2.constants.NGHTTP2_CANCEL);
  t.ok(await waitUntil(() => upstreamState.cancelled > cancelledBefore, 5000), 'the upstream request was cancelled when the client reset its stream');
  t.equal(upstreamState.inFlight, 0);
});

t.test(`class 3: Rapid Reset (CVE-2023-44487): ${FLOOD_PAIRS} HEADERS+RST_STREAM pairs`, async (t) => {
  upstreamState.maxInFlight = upstreamState.inFlight;
  const heldBefore = upstreamState.held;
  const cancelledBefore = upstreamState.cancelled;
  const abusiveBefore = await scrapeAbusive();

  const good = http2.connect(`https://127.0.0.1:${port}`, { servername: AUTHORITY, ca });
  t.teardown(() => good.close());
  await wellBehaved(good, (done) => done < 50);
  const alone = await wellBehaved(good, (done) => done < 300);

  const flood = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
  t.teardown(() => flood.close());
  await flood.waitFor((received) => received.type === FRAME.SETTINGS);
  let floodOver = false;
  const during = wellBehaved(good, (done) => !floodOver || done < 100);
  const pairs: Buffer[] = [];
  for (let i = 0; i < FLOOD_PAIRS; i++) {
    const streamId = 2 * i + 1;
    pairs.push(headers(streamId, requestFields(streamId, '/hold/flood')), rstStream(streamId));
  }
  flood.write(Buffer.concat(pairs));
  const goaway = await flood.waitFor((received) => received.type === FRAME.GOAWAY, 20_000);
  floodOver = true;
  const duringLatencies = await during;

  t.ok(await waitUntil(() => upstreamState.inFlight === 0), 'every upstream request of the flood ended');
  const held = upstreamState.held - heldBefore;
  // Node 24's own HTTP/2 layer can refuse a reset flood before a stream reaches meshgate (nothing goes
  // upstream, and no GOAWAY is sent); when streams do reach meshgate, its reset counting must close it.
  if (held > 0 || goaway !== null) {
    t.ok(goaway, 'the flooding connection got a GOAWAY');
    t.equal(goawayCode(goaway?.payload ?? Buffer.alloc(8)), ERROR_CODE.ENHANCE_YOUR_CALM, 'with ENHANCE_YOUR_CALM');
    t.ok((await scrapeAbusive()) > abusiveBefore, 'meshgate_downstream_http2_abusive_sessions_total counts it');
  }
  t.ok(upstreamState.maxInFlight <= MAX_STREAMS, `at most ${MAX_STREAMS} upstream requests in flight (saw ${upstreamState.maxInFlight}, ${held} reached the upstream in all)`);
  t.equal(upstreamState.cancelled - cancelledBefore, held, 'every upstream request of a reset stream was cancelled');
  t.ok(await waitUntil(() => good.closed === false), 'the well-behaved connection is untouched');

  const p99Alone = percentile(alone, 99);
  const p99During = percentile(duringLatencies, 99);
  t.comment(`well-behaved client p99: alone ${p99Alone.toFixed(2)} ms (n=${alone.length}), during the flood ${p99During.toFixed(2)} ms (n=${duringLatencies.length}), ratio ${(p99During / p99Alone).toFixed(2)}`);
  // The figure to report is the ratio above; the bound asserted is loose, because the machine running the suite is shared.
  t.ok(p99During <= Math.max(10 * p99Alone, 500), 'the well-behaved client is not starved');
});

t.test('class 3: MadeYouReset (CVE-2025-8671): streams the server resets for client frame errors count too', async (t) => {
  const abusiveBefore = await scrapeAbusive();
  const connection = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
  t.teardown(() => connection.close());
  await connection.waitFor((received) => received.type === FRAME.SETTINGS);
  // Batches of 50 (half the stream limit), each sent once the server has reset the previous one.
  let streamId = 1;
  for (let batch = 0; batch < 8 && !connection.closed; batch++) {
    const frames: Buffer[] = [];
    for (let i = 0; i < 50; i++, streamId += 2) {
      // A POST announcing 1 byte of body, then 5 bytes: a malformed message the server answers with RST_STREAM PROTOCOL_ERROR.
      frames.push(
        headers(streamId, [...requestFields(streamId, '/hold/made-you-reset', 'POST'), ['content-length', '1']], false),
        frame(FRAME.DATA, FLAG.END_STREAM, streamId, Buffer.from('12345')),
      );
    }
    connection.write(Buffer.concat(frames));
    const last = streamId - 2;
    await connection.waitFor((received) => (received.type === FRAME.RST_STREAM && received.streamId === last) || received.type === FRAME.GOAWAY);
  }
  const reset = connection.frames.find((received) => received.type === FRAME.RST_STREAM);
  const goaway = await connection.waitFor((received) => received.type === FRAME.GOAWAY, 20_000);
  t.ok(goaway, 'the connection is ended with a GOAWAY');
  // Node 24's own HTTP/2 layer may end such a connection itself (a GOAWAY of its own, no stream reset);
  // where the streams are reset by the proxy, meshgate's counting is what ends it.
  if (reset !== undefined) {
    t.equal(reset.payload.readUInt32BE(0), ERROR_CODE.PROTOCOL_ERROR, 'the server resets the streams itself');
    t.equal(goawayCode(goaway?.payload ?? Buffer.alloc(8)), ERROR_CODE.ENHANCE_YOUR_CALM);
    t.ok((await scrapeAbusive()) > abusiveBefore);
  }
  t.ok(await waitUntil(() => upstreamState.inFlight === 0), 'nothing is left in flight upstream');
});

t.test('class 3: `:authority` wins over a `host` header (RFC 9113 §8.3.1) for routing and forwarding', async (t) => {
  const decoyBefore = decoy.received.length;
  const hostsBefore = upstreamState.hosts.length;
  const connection = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
  t.teardown(() => connection.close());
  connection.write(headers(1, [...requestFields(1, '/fast'), ['host', 'decoy.example.com']]));
  const response = await connection.waitFor((received) => received.streamId === 1 && (received.type === FRAME.HEADERS || received.type === FRAME.RST_STREAM));
  t.ok(response, 'the stream was answered');
  if (response?.type === FRAME.HEADERS) {
    t.equal(response.payload[0], 0x88, 'status 200 (HPACK static index 8)');
    t.same(upstreamState.hosts.slice(hostsBefore), [AUTHORITY], 'routed and forwarded by :authority');
  }
  t.equal(decoy.received.length, decoyBefore, 'the host named only in `host` got nothing');
});

for (const [label, value] of [
  ['LF', 'h2.example.com\nx-injected: 1'],
  ['CR', 'h2.example.com\rx'],
  ['NUL', 'h2.example.com\u0000x'],
] as const) {
  t.test(`class 3: ${label} in :authority is a stream error (RFC 9113 §8.2.1), and nothing reaches the upstream`, async (t) => {
    const hostsBefore = upstreamState.hosts.length;
    const connection = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
    t.teardown(() => connection.close());
    connection.write(headers(1, [[':method', 'GET'], [':scheme', 'https'], [':path', '/fast'], [':authority', value]]));
    const answer = await connection.waitFor((received) => received.streamId === 1 && (received.type === FRAME.HEADERS || received.type === FRAME.RST_STREAM));
    t.equal(answer?.type, FRAME.RST_STREAM, 'RST_STREAM, not a response');
    t.equal(answer?.payload.readUInt32BE(0), ERROR_CODE.PROTOCOL_ERROR);
    await sleep(100);
    t.equal(upstreamState.hosts.length, hostsBefore, 'the upstream saw nothing');
  });

  t.test(`class 3: ${label} in a regular header value never reaches the upstream, split or whole`, async (t) => {
    const hostsBefore = upstreamState.hosts.length;
    const seen: http.IncomingHttpHeaders[] = [];
    const onRequest = (request: http.IncomingMessage): void => void seen.push(request.headers);
    upstream.on('request', onRequest);
    t.teardown(() => upstream.off('request', onRequest));
    const connection = await RawH2Connection.open({ port, servername: AUTHORITY, ca });
    t.teardown(() => connection.close());
    connection.write(headers(1, [...requestFields(1, '/fast'), ['x-evil', value]]));
    await connection.waitFor((received) => received.streamId === 1 && (received.type === FRAME.HEADERS || received.type === FRAME.RST_STREAM));
    await sleep(100);
    for (const headersSeen of seen.slice(0)) {
      t.notOk(headersSeen['x-evil'], 'the invalid field is not forwarded');
      t.notOk(headersSeen['x-injected'], 'nor split into a second header');
    }
    t.ok(upstreamState.hosts.length - hostsBefore <= 1);
  });
}
