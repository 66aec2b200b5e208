import t from 'tap';
import { Redis } from 'ioredis';
import { rawExchange, startTcpMesh, tcpMeshYaml } from './tcp-fixture.js';
import type { TcpMesh } from './tcp-fixture.js';

let mesh: TcpMesh;
t.before(async () => {
  mesh = await startTcpMesh();
});
t.teardown(() => mesh.close());

t.test('ioredis through the client sidecar egress TCP port and the cache sidecar (mesh mTLS, STRICT) reaches the private redis', async (t) => {
  const redis = new Redis({ host: '127.0.0.1', port: mesh.ports.egress, lazyConnect: true, maxRetriesPerRequest: 0 });
  t.teardown(() => redis.disconnect());
  await redis.connect();
  t.equal(await redis.set('greeting', 'hello'), 'OK');
  t.equal(await redis.get('greeting'), 'hello');
  const values = await Promise.all(Array.from({ length: 50 }, (_, i) => redis.incr(`counter`).then(() => i)));
  t.equal(values.length, 50);
  t.equal(await redis.get('counter'), '50');
  // The value really is in the private redis, read directly.
  const direct = new Redis({ host: '127.0.0.1', port: mesh.redis.port, lazyConnect: true });
  t.teardown(() => direct.disconnect());
  await direct.connect();
  t.equal(await direct.get('greeting'), 'hello');
});

t.test('a plaintext client on the STRICT inbound TCP port is closed without a byte', async (t) => {
  const outcome = await rawExchange(mesh.ports.cacheInbound, 'PING\r\n');
  t.equal(outcome.closed, true);
  t.equal(outcome.received, '');
});

t.test('every ingress entry is served: the HTTP port beside the TCP port opens too', async (t) => {
  const listeners = mesh.cache.logs.filter((line) => line['msg'] === 'listener open').map((line) => String(line['listener']));
  t.ok(listeners.includes(`inbound 127.0.0.1:${mesh.ports.cacheHttpInbound}`), listeners.join(', '));
  t.ok(listeners.includes(`inbound 127.0.0.1:${mesh.ports.cacheInbound}`), listeners.join(', '));
});

t.test('the raw protocol passes untouched, half-close included', async (t) => {
  const outcome = await rawExchange(mesh.ports.egress, 'PING\r\nECHO abc\r\nQUIT\r\n');
  t.equal(outcome.received, '+PONG\r\n$3\r\nabc\r\n+OK\r\n');
  t.equal(outcome.closed, true);
});

t.test('PeerAuthentication on the inbound TCP port: PERMISSIVE and DISABLE relay plaintext, STRICT again refuses it', async (t) => {
  for (const mode of ['PERMISSIVE', 'DISABLE'] as const) {
    await mesh.config.write(tcpMeshYaml(mesh.pki, mesh.ports, mesh.redis.port, mesh.httpApp.port, { peerAuthentication: mode }));
    t.equal((await mesh.cache.runtime.reload(mode)).ok, true);
    t.equal((await rawExchange(mesh.ports.cacheInbound, 'PING\r\n', 2_000)).received, '+PONG\r\n', `${mode}: plaintext relayed`);
  }
  // PERMISSIVE still terminates the client sidecar's mTLS.
  await mesh.config.write(tcpMeshYaml(mesh.pki, mesh.ports, mesh.redis.port, mesh.httpApp.port, { peerAuthentication: 'PERMISSIVE' }));
  t.equal((await mesh.cache.runtime.reload('PERMISSIVE')).ok, true);
  t.equal((await rawExchange(mesh.ports.egress, 'PING\r\n', 2_000)).received, '+PONG\r\n', 'PERMISSIVE: mTLS from the client sidecar relayed');
  await mesh.config.write(tcpMeshYaml(mesh.pki, mesh.ports, mesh.redis.port, mesh.httpApp.port, { peerAuthentication: 'STRICT' }));
  t.equal((await mesh.cache.runtime.reload('STRICT')).ok, true);
  t.same(await rawExchange(mesh.ports.cacheInbound, 'PING\r\n'), { received: '', closed: true });
});
