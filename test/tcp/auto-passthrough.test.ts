/**
 * A Gateway server with `tls.mode: AUTO_PASSTHROUGH` (Istio's multi-network east-west gateway): no
 * VirtualService, the destination is the cluster named by the client sidecar's mTLS SNI
 * (`outbound_.<port>_.<subset>_.<host>`), and the mTLS passes through to the destination's sidecar.
 * Two networks, two config files: in the client's, the cache workload is reachable only at the east-west
 * gateway's port; in the gateway's, at the cache sidecar's inbound port.
 */
import t from 'tap';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { TestPki } from '../helpers/pki.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import type { PrivateRedis } from '../helpers/redis-server.js';
import { rawExchange, tcpMeshYaml } from './tcp-fixture.js';
import type { TcpMeshPorts } from './tcp-fixture.js';

let pki: TestPki;
let redis: PrivateRedis;
let ports: TcpMeshPorts;
let eastWestPort = 0;
let clientNetwork: ConfigDir;
let gatewayNetwork: ConfigDir;
const running: RunningGateway[] = [];

t.before(async () => {
  pki = await makeTestPki();
  redis = await startPrivateRedis();
  ports = {
    egress: await freePort(),
    cacheInbound: await freePort(),
    cacheHttpInbound: await freePort(),
    clientInbound: await freePort(),
    admins: [await freePort(), await freePort()],
  };
  eastWestPort = await freePort();
  const eastWestGateway = `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: cross-network-gateway, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: ${eastWestPort}, name: tls, protocol: TLS }
      hosts: ["*.local"]
      tls: { mode: AUTO_PASSTHROUGH }
`;
  gatewayNetwork = await configDir(tcpMeshYaml(pki, ports, redis.port, 1, { extraYaml: () => eastWestGateway }));
  // The client's network sees the cache workload only behind the east-west gateway.
  clientNetwork = await configDir(tcpMeshYaml(pki, { ...ports, cacheInbound: eastWestPort }, redis.port, 1, {}));
  running.push(await startGateway(gatewayNetwork.file, { mode: 'sidecar', workload: 'my-app/cache', adminAddress: `127.0.0.1:${ports.admins[0]}` }));
  running.push(await startGateway(gatewayNetwork.file, { adminAddress: `127.0.0.1:${await freePort()}` }));
  running.push(await startGateway(clientNetwork.file, { mode: 'sidecar', workload: 'my-app/client', adminAddress: `127.0.0.1:${ports.admins[1]}` }));
});

t.teardown(async () => {
  await Promise.all(running.map((gateway) => gateway.stop()));
  await redis.dispose();
  await Promise.all([clientNetwork.remove(), gatewayNetwork.remove()]);
});

t.test('client sidecar → east-west gateway (AUTO_PASSTHROUGH, no VirtualService) → cache sidecar: redis answers, mTLS end to end', async (t) => {
  t.same(await rawExchange(ports.egress, 'PING\r\nQUIT\r\n'), { received: '+PONG\r\n+OK\r\n', closed: true });
});

/** A TLS client with a chosen SNI and no client certificate, straight to the east-west port: resolves with whether redis answered a PING. */
function pingOverTls(servername: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: eastWestPort, servername, ca: readFileSync(pki.ca.certPath), checkServerIdentity: () => undefined });
    socket.once('secureConnect', () => socket.write('PING\r\n'));
    socket.once('data', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

t.test('an SNI that names no mesh cluster, or a host the server does not admit, is closed (NR)', async (t) => {
  t.equal(await pingOverTls('redis.my-app.svc.cluster.local'), false, 'not the outbound_ form');
  t.equal(await pingOverTls(`outbound_.${ports.egress}_._.redis.example.com`), false, 'host outside the server hosts (*.local)');
  t.equal(await pingOverTls(`outbound_.9_._.nothing.my-app.svc.cluster.local`), false, 'no such cluster (NC)');
});

t.test('the SNI form reaches the cache sidecar itself, which still demands a mesh client certificate', async (t) => {
  t.equal(await pingOverTls(`outbound_.${ports.egress}_._.redis.my-app.svc.cluster.local`), false, 'no client certificate: the cache sidecar refuses');
  const clientCert = await pki.issue('my-app', 'client');
  const withCertificate = await new Promise<boolean>((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: eastWestPort,
      servername: `outbound_.${ports.egress}_._.redis.my-app.svc.cluster.local`,
      ca: readFileSync(pki.ca.certPath),
      cert: readFileSync(clientCert.chainPath),
      key: readFileSync(clientCert.keyPath),
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => {
      socket.destroy();
      resolve(chunk.toString() === '+PONG\r\n');
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
  t.equal(withCertificate, true, 'a mesh client certificate: the cache sidecar relays to redis');
});
