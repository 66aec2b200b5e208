/**
 * Gateway servers that carry opaque TCP: a `TCP` server, and `TLS` servers that terminate (SIMPLE,
 * MUTUAL) — both routed by the `tcp` rules of the VirtualServices bound to the Gateway, as Istio's
 * "TCP traffic shifting" task and its TLS-terminating gateways do.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { CertFiles, TestPki } from '../helpers/pki.js';
import { startBanner } from './tcp-fixture.js';
import type { Banner } from './tcp-fixture.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';

let pki: TestPki;
let serverCert: CertFiles;
let clientCert: CertFiles;
let v1: Banner;
let v2: Banner;
let config: ConfigDir;
let gateway: RunningGateway;
let adminPort = 0;
const ports = { tcp: 0, simple: 0, mutual: 0, unbound: 0 };

t.before(async () => {
  pki = await makeTestPki();
  serverCert = await pki.serverCert(['echo.example.com']);
  clientCert = await pki.issue('edge', 'client');
  [v1, v2] = await Promise.all([startBanner('v1'), startBanner('v2')]);
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  adminPort = await freePort();
  const certificate = `serverCertificate: ${serverCert.chainPath}, privateKey: ${serverCert.keyPath}`;
  config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${adminPort}
  accessLog: { enabled: false }
  drainDuration: 1s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: tcp-echo-gateway, namespace: edge }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: ${ports.tcp}, name: tcp, protocol: TCP }
      hosts: ["*"]
    - port: { number: ${ports.simple}, name: tls-simple, protocol: TLS }
      hosts: ["*"]
      tls: { mode: SIMPLE, ${certificate} }
    - port: { number: ${ports.mutual}, name: tls-mutual, protocol: TLS }
      hosts: ["*"]
      tls: { mode: MUTUAL, ${certificate}, caCertificates: ${pki.ca.certPath} }
    - port: { number: ${ports.unbound}, name: tcp-unbound, protocol: TCP }
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tcp-echo, namespace: edge }
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
    - match: [{ port: ${ports.tcp} }]
      route: [{ destination: { host: tcp-echo.edge.svc.cluster.local, port: { number: 9000 }, subset: v1 } }]
    - match: [{ port: ${ports.simple} }, { port: ${ports.mutual} }]
      route:
        - { destination: { host: tcp-echo.edge.svc.cluster.local, port: { number: 9000 }, subset: v1 }, weight: 0 }
        - { destination: { host: tcp-echo.edge.svc.cluster.local, port: { number: 9000 }, subset: v2 }, weight: 100 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: mesh-only, namespace: edge }
spec:
  hosts: [tcp-echo.edge.svc.cluster.local]
  tcp:
    - match: [{ port: ${ports.unbound} }]
      route: [{ destination: { host: tcp-echo.edge.svc.cluster.local, port: { number: 9000 } } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tcp-echo, namespace: edge }
spec:
  host: tcp-echo.edge.svc.cluster.local
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: edge }
spec:
  hosts: [tcp-echo.edge.svc.cluster.local]
  location: MESH_EXTERNAL
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints:
    - { address: 127.0.0.1, ports: { tcp: ${v1.port} }, labels: { version: v1 } }
    - { address: 127.0.0.1, ports: { tcp: ${v2.port} }, labels: { version: v2 } }
`);
  gateway = await startGateway(config.file, { adminAddress: `127.0.0.1:${adminPort}` });
});

t.teardown(async () => {
  await gateway.stop();
  await Promise.all([v1, v2].map((backend) => new Promise<void>((resolve) => backend.server.close(() => resolve()))));
  await config.remove();
});

/** Sends `ping`, resolves with the greeting once the echo came back; rejects when the connection closes first. */
function exchange(socket: net.Socket | tls.TLSSocket, ready: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.endsWith('ping\n')) {
        resolve(text.split('\n')[0] as string);
        socket.end();
      }
    });
    socket.once(ready, () => socket.write('ping\n'));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed (received "${text}")`)));
  });
}

const plain = (port: number): Promise<string> => exchange(net.connect({ host: '127.0.0.1', port }), 'connect');

function overTls(port: number, client?: CertFiles): Promise<string> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'echo.example.com',
    ca: readFileSync(pki.ca.certPath),
    ...(client === undefined ? {} : { cert: readFileSync(client.chainPath), key: readFileSync(client.keyPath) }),
  });
  return exchange(socket, 'secureConnect');
}

t.test('validate accepts TCP and terminating TLS Gateway servers without "not supported" warnings', async (t) => {
  const result = await compileConfig(config.file, { mode: 'ingress', plugins: PIPELINE_PLUGINS });
  t.ok(result.ok);
  const diagnostics = result.ok ? result.config.diagnostics : result.diagnostics;
  t.same(diagnostics.filter((diagnostic) => diagnostic.code === 'MG0407'), []);
});

t.test('a TCP server relays through the bound VirtualService tcp rule for its port (subset v1)', async (t) => {
  t.equal(await plain(ports.tcp), 'v1');
  t.equal(await plain(ports.tcp), 'v1');
});

t.test('a TLS SIMPLE server terminates with its certificate and relays the plaintext by tcp rules (weight 100 to v2)', async (t) => {
  t.equal(await overTls(ports.simple), 'v2');
});

t.test('a plaintext client on the TLS port is closed without reaching a backend', async (t) => {
  await t.rejects(plain(ports.simple));
});

t.test('a TLS MUTUAL server refuses a client without a certificate and relays one that presents a trusted one', async (t) => {
  await t.rejects(overTls(ports.mutual));
  t.equal(await overTls(ports.mutual, clientCert), 'v2');
});

t.test('a tcp rule of a VirtualService not bound to the Gateway does not apply there: the connection is closed (NR)', async (t) => {
  await t.rejects(plain(ports.unbound));
});

t.test('/certs lists the certificate every TLS server presents', async (t) => {
  const response = await fetch(`http://127.0.0.1:${adminPort}/certs`);
  const body = (await response.json()) as { servedCertificates: { listener: string }[] };
  const listeners = body.servedCertificates.map((entry) => entry.listener).sort();
  t.same(listeners, [`0.0.0.0:${ports.mutual}`, `0.0.0.0:${ports.simple}`].sort());
});
