/**
 * A sidecar that stops lets go of its mesh peers' pooled connections. Peers keep idle mTLS
 * connections to the inbound port for reuse; node's HTTP/2 secure server serves HTTP/1.1 on them
 * through its fallback and cannot close those itself, so a stopped sidecar's process used to stay
 * alive until each peer closed its side (its keep-alive timeout: a minute or more), past Kubernetes'
 * grace period. The drain must close them by its deadline (MeshConfig drainDuration, 1 s here),
 * whatever protocol the peer speaks on them.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { startMesh } from './mesh-fixture.js';
import type { Mesh } from './mesh-fixture.js';

/** Far longer than the 1 s drain, far shorter than the inbound keep-alive timeout (65 s). */
const CLOSE_DEADLINE_MS = 20_000;

async function closedWithin(socket: { once(event: 'close', listener: () => void): unknown }, ms: number): Promise<'closed' | 'still open'> {
  const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')));
  return Promise.race([closed, delay(ms, undefined, { ref: false }).then(() => 'still open' as const)]);
}

async function peerIdentity(mesh: Mesh): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const order = await mesh.pki.issue('my-app', 'order-service');
  return { ca: readFileSync(mesh.pki.ca.certPath), cert: readFileSync(order.chainPath), key: readFileSync(order.keyPath) };
}

t.test('mTLS HTTP/1.1: an idle pooled connection is closed by the drain, not by the peer', async (t) => {
  const mesh = await startMesh();
  t.teardown(() => mesh.close());
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...(await peerIdentity(mesh)), checkServerIdentity: () => undefined });
  t.teardown(() => agent.destroy());

  const { status, socket } = await new Promise<{ status: number; socket: Socket }>((resolve, reject) => {
    const request = https.get({ host: '127.0.0.1', port: mesh.ports.productInbound, path: '/health/ping', agent }, (response) => {
      // Read now: once the response ends the socket goes back to the agent's pool and leaves the response.
      const { socket } = response;
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, socket }));
    });
    request.once('error', reject);
  });
  t.equal(status, 200, 'served over mTLS');
  t.equal((socket as { alpnProtocol?: string | false }).alpnProtocol, false, 'HTTP/1.1 without ALPN: the fallback of the HTTP/2 secure server');
  t.notOk(socket.destroyed, 'the connection stays pooled after its response');

  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(socket, CLOSE_DEADLINE_MS), 'closed', 'the sidecar closed the idle connection while it stopped');
  await stopped;
});

t.test('plaintext HTTP/1.1 (PERMISSIVE): an idle keep-alive connection is closed by the drain', async (t) => {
  const mesh = await startMesh({ peerAuthentication: 'PERMISSIVE' });
  t.teardown(() => mesh.close());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  const { status, socket } = await new Promise<{ status: number; socket: Socket }>((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port: mesh.ports.productInbound, path: '/health/ping', agent }, (response) => {
      const { socket } = response;
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode ?? 0, socket }));
    });
    request.once('error', reject);
  });
  t.equal(status, 200, 'plaintext served under PERMISSIVE');

  const stopped = mesh.productSidecar.stop();
  t.equal(await closedWithin(socket, CLOSE_DEADLINE_MS), 'closed', 'the sidecar closed the idle connection while it stopped');
  await stopped;
});

t.test('mTLS HTTP/2: an idle session gets a GOAWAY and closes with the drain', async (t) => {
  const mesh = await startMesh();
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
