/**
 * Issue 18, class 1: upgrade smuggling (the h2c / WebSocket smuggling family; RFC 9110 §7.8, RFC 6455
 * §4.1). Over raw TCP sockets: a request with `Upgrade:` never gets its following bytes sent upstream,
 * nor its connections spliced, before the upstream answered 101; a refusal (400, 200) is relayed as an
 * ordinary response and the connection stays HTTP, so the next request on it is parsed, routed and
 * authorised (a DENY policy answers it); only the configured upgrade tokens are attempted (h2c never).
 */
import t from 'tap';
import http from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { startUpstream } from '../helpers/gateway.js';
import { freePorts, gatewayYaml, httpServerYaml, meshConfigYaml, serviceEntryYaml, sleep, startScenario, virtualServiceYaml } from '../e2e-ingress/support.js';

/** What the upgrade upstream saw on each upgrade connection: the head and every byte after it. */
interface UpgradeSeen {
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Bytes that came with the head or later, in arrival order, with when they arrived. */
  readonly bytes: { readonly at: number; readonly data: Buffer }[];
  /** When the upstream wrote its 101, or null when it refused. */
  switchedAt: number | null;
}

const upgrades: UpgradeSeen[] = [];
const SWITCH_DELAY_MS = 200;

const upgradeUpstream = http.createServer((request, response) => {
  request.resume();
  response.end(`plain ${request.url ?? ''}`);
});
upgradeUpstream.on('upgrade', (request: http.IncomingMessage, socket: Socket, head: Buffer) => {
  const seen: UpgradeSeen = { url: request.url ?? '', headers: request.headers, bytes: [], switchedAt: null };
  upgrades.push(seen);
  if (head.length > 0) seen.bytes.push({ at: performance.now(), data: head });
  socket.on('data', (data: Buffer) => seen.bytes.push({ at: performance.now(), data }));
  socket.on('error', () => socket.destroy());
  if (request.url === '/refuse-400') {
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 15\r\n\r\nupgrade refused');
  } else if (request.url === '/refuse-200') {
    socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nnot a hijack');
  } else {
    // A slow 101: anything the client sent after its head must arrive only after it.
    setTimeout(() => {
      seen.switchedAt = performance.now();
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    }, SWITCH_DELAY_MS);
  }
});
await new Promise<void>((resolve) => upgradeUpstream.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  upgradeUpstream.closeAllConnections();
  upgradeUpstream.close();
});
const upgradePort = (upgradeUpstream.address() as { port: number }).port;

/** Every ordinary request the app received. */
const app = await startUpstream();
t.teardown(() => app.close());

const [admin = 0, port = 0] = await freePorts(2);

await startScenario(
  t,
  [
    meshConfigYaml(admin),
    gatewayYaml('edge', httpServerYaml(port, ['*'])),
    serviceEntryYaml('sockets', 'sockets.internal', [{ port: upgradePort }]),
    serviceEntryYaml('app', 'app.internal', [{ port: app.port }]),
    virtualServiceYaml(
      'edge-routes',
      ['edge.example.com'],
      'edge',
      `    - match: [{uri: {prefix: /refuse-}}, {uri: {prefix: /ws}}]
      route: [{destination: {host: sockets.internal}}]
    - route: [{destination: {host: app.internal}}]
`,
    ),
    `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: istio-system
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  action: DENY
  rules:
    - to:
        - operation:
            paths: ["/admin*"]
`,
  ].join('\n'),
);

const SMUGGLED = 'GET /admin/secrets HTTP/1.1\r\nHost: edge.example.com\r\n\r\n';

function upgradeHead(path: string, upgrade = 'websocket', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: edge.example.com\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

async function open(): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Collects what the gateway sends until `done` says the text is complete, or the connection closes; bounded. */
function readUntil(socket: Socket, done: (text: string) => boolean, deadlineMs = 30_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      resolve({ text, closed });
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (done(text)) finish();
    };
    const timer = setTimeout(finish, deadlineMs);
    socket.on('data', onData);
    socket.once('close', () => {
      closed = true;
      finish();
    });
  });
}

function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
}

function bytesAfterHead(seen: UpgradeSeen | undefined): number {
  return (seen?.bytes ?? []).reduce((sum, entry) => sum + entry.data.length, 0);
}

for (const [path, status] of [
  ['/refuse-400', 400],
  ['/refuse-200', 200],
] as const) {
  t.test(`class 1: the upstream answers ${status} to the upgrade → relayed as an ordinary response; the pipelined request behind it is parsed and denied`, async (t) => {
    const before = upgrades.length;
    const appBefore = app.received.length;
    const socket = await open();
    t.teardown(() => socket.destroy());
    // The head, then at once (same write) a second request a DENY policy covers: the classic smuggling shape.
    socket.write(upgradeHead(path) + SMUGGLED);
    const { text } = await readUntil(socket, (sofar) => statuses(sofar).length >= 2 && sofar.includes('RBAC'));
    t.same(statuses(text).slice(0, 2), [status, 403], 'the refusal, then the policy decision on the second request');
    t.match(text, /upgrade refused|not a hijack/, 'the refusal body is relayed');
    t.match(text, /rbac_access_denied/i);
    await sleep(100);
    t.equal(upgrades.length, before + 1, 'one upgrade attempt reached the upstream');
    t.equal(bytesAfterHead(upgrades.at(-1)), 0, 'no byte after the upgrade head reached the upstream');
    t.notOk(app.received.slice(appBefore).some((r) => r.url.startsWith('/admin')), 'the denied request reached no upstream');

    // The connection is still HTTP: an allowed request on it is served.
    socket.write('GET /after HTTP/1.1\r\nHost: edge.example.com\r\n\r\n');
    const next = await readUntil(socket, (sofar) => sofar.includes('"/after"'));
    t.same(statuses(next.text), [200]);
    t.ok(app.received.slice(appBefore).some((r) => r.url === '/after'), 'routed to the app like any request');
  });
}

t.test('class 1: bytes sent after the head travel upstream only once the upstream answered 101', async (t) => {
  const before = upgrades.length;
  const socket = await open();
  t.teardown(() => socket.destroy());
  const early = Buffer.from('early-bytes-before-101');
  socket.write(Buffer.concat([Buffer.from(upgradeHead('/ws/chat')), early]));
  const { text } = await readUntil(socket, (sofar) => sofar.includes('\r\n\r\n'));
  t.match(text, /^HTTP\/1\.1 101 /);
  let seen: UpgradeSeen | undefined;
  for (let i = 0; i < 100 && bytesAfterHead(seen) < early.length; i++) {
    await sleep(20);
    seen = upgrades.length > before ? upgrades.at(-1) : undefined;
  }
  t.ok(seen !== undefined && seen.switchedAt !== null, 'the upstream switched protocols');
  t.equal(Buffer.concat(seen?.bytes.map((entry) => entry.data) ?? []).toString(), early.toString(), 'the early bytes arrive, untouched');
  const firstByteAt = seen?.bytes[0]?.at ?? 0;
  t.ok(firstByteAt >= (seen?.switchedAt ?? Infinity), 'and not before the 101 was sent');
});

t.test('class 1: h2c (not offered) is never attempted: served as plain HTTP, and the connection stays HTTP for policies', async (t) => {
  const before = upgrades.length;
  const appBefore = app.received.length;
  const socket = await open();
  t.teardown(() => socket.destroy());
  socket.write(
    'GET /plain HTTP/1.1\r\nHost: edge.example.com\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n' + SMUGGLED,
  );
  const { text } = await readUntil(socket, (sofar) => statuses(sofar).length >= 2 && sofar.includes('RBAC'));
  t.same(statuses(text).slice(0, 2), [200, 403]);
  t.notMatch(text, /HTTP\/1\.1 101/, 'no switch');
  const plain = app.received.slice(appBefore).find((r) => r.url === '/plain');
  t.ok(plain, 'the request itself was served');
  t.notOk(plain?.headers.upgrade, 'without its Upgrade header');
  t.notOk(plain?.headers['http2-settings']);
  t.notOk(app.received.slice(appBefore).some((r) => r.url.startsWith('/admin')), 'the denied request reached no upstream');
  t.equal(upgrades.length, before, 'no upgrade was attempted anywhere');
});

t.test('class 1: an Upgrade token outside MeshConfig connections.upgrades is not attempted either', async (t) => {
  const before = upgrades.length;
  const socket = await open();
  t.teardown(() => socket.destroy());
  socket.write(upgradeHead('/ws/custom', 'x-custom-proto'));
  const { text } = await readUntil(socket, (sofar) => sofar.includes('plain /ws/custom'));
  t.same(statuses(text), [200], 'answered by the upstream as a plain request');
  t.equal(upgrades.length, before);
});

t.test('class 1: an upgrade request with a body is refused (400) and nothing reaches the upstream', async (t) => {
  const before = upgrades.length;
  const appBefore = app.received.length;
  const socket = await open();
  t.teardown(() => socket.destroy());
  socket.write(upgradeHead('/ws/body', 'websocket', `Content-Length: ${SMUGGLED.length}\r\n`) + SMUGGLED);
  const { text, closed } = await readUntil(socket, () => false, 5000);
  t.same(statuses(text), [400]);
  t.match(text, /upgrade request cannot carry a body/);
  t.ok(closed, 'the connection is closed: its body must not be read as a request');
  t.equal(upgrades.length, before);
  t.equal(app.received.length, appBefore);
});
