/**
 * Gateway servers with `tls.mode: PASSTHROUGH`: the ingress reads the ClientHello's SNI, routes by
 * VirtualService `tls` rules (`sniHosts`, port) and relays the bytes untouched, so the client's TLS
 * session ends at the backend, whose certificate it sees.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { TestPki } from '../helpers/pki.js';

interface Backend {
  readonly port: number;
  readonly fingerprint: string;
  readonly server: tls.Server;
}

async function startBackend(pki: TestPki, name: string, dnsNames: readonly string[]): Promise<Backend> {
  const cert = await pki.serverCert(dnsNames);
  const server = tls.createServer({ cert: readFileSync(cert.chainPath), key: readFileSync(cert.keyPath) }, (socket) => {
    socket.write(`${name}:${socket.servername === false ? '' : String(socket.servername)}\n`);
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, fingerprint: new crypto.X509Certificate(readFileSync(cert.certPath)).fingerprint256, server };
}

let pki: TestPki;
let gateway: RunningGateway;
let config: ConfigDir;
let db: Backend;
let cache: Backend;
let port = 0;
let egressPort = 0;
let httpsEgressPort = 0;
let sidecar: RunningGateway;

t.before(async () => {
  pki = await makeTestPki();
  db = await startBackend(pki, 'db', ['db.example.com']);
  cache = await startBackend(pki, 'cache', ['cache.example.com']);
  port = await freePort();
  egressPort = await freePort();
  httpsEgressPort = await freePort();
  const service = (host: string, backend: Backend): string => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${host.split('.')[0]}, namespace: edge }
spec:
  hosts: [${host}]
  location: MESH_EXTERNAL
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${backend.port} } }]
`;
  config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${await freePort()}
  accessLog: { enabled: false }
  drainDuration: 1s
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: edge }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: ${port}, name: tls, protocol: TLS }
      hosts: ["*.example.com"]
      tls: { mode: PASSTHROUGH }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: edge }
spec:
  hosts: [db.example.com]
  gateways: [edge]
  tls:
    - match: [{ sniHosts: [db.example.com], port: ${port} }]
      route: [{ destination: { host: db.example.com, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: cache, namespace: edge }
spec:
  hosts: ["*.cache.example.com", cache.example.com]
  gateways: [edge]
  tls:
    - match: [{ sniHosts: [cache.example.com] }]
      route: [{ destination: { host: cache.example.com, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: egress-tls, namespace: edge }
spec:
  hosts: [db.example.com, cache.example.com]
  tls:
    - match: [{ port: ${egressPort}, sniHosts: [db.example.com] }]
      route: [{ destination: { host: db.example.com, port: { number: 443 } } }]
    - match: [{ port: ${egressPort}, sniHosts: ["*.example.com"] }]
      route: [{ destination: { host: cache.example.com, port: { number: 443 } } }]
    - match: [{ port: ${httpsEgressPort}, sniHosts: [cache.example.com] }]
      route: [{ destination: { host: cache.example.com, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: edge }
spec: { address: 127.0.0.1, labels: { app: client }, serviceAccount: client }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: edge }
spec:
  workloadSelector: { labels: { app: client } }
  egress:
    - { port: { number: ${egressPort}, protocol: TLS, name: tls }, bind: 127.0.0.1, hosts: ["*/*"] }
    - { port: { number: ${httpsEgressPort}, protocol: HTTPS, name: https }, bind: 127.0.0.1, hosts: ["*/*"] }
${service('db.example.com', db)}
${service('cache.example.com', cache)}`);
  gateway = await startGateway(config.file);
  sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'edge/client', adminAddress: `127.0.0.1:${await freePort()}` });
});
t.teardown(async () => {
  await Promise.all([gateway.stop(), sidecar.stop()]);
  await Promise.all([db, cache].map((backend) => new Promise<void>((resolve) => backend.server.close(() => resolve()))));
  await config.remove();
});

interface TlsOutcome {
  readonly fingerprint: string;
  readonly greeting: string;
}

function connectTls(servername: string | undefined, to = port): Promise<TlsOutcome> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: to, ca: readFileSync(pki.ca.certPath), ...(servername === undefined ? { checkServerIdentity: () => undefined } : { servername }) });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.endsWith('ping\n')) {
        resolve({ fingerprint: socket.getPeerX509Certificate()?.fingerprint256 ?? '', greeting: text.split('\n')[0] as string });
        socket.end();
      }
    });
    socket.on('secureConnect', () => socket.write('ping\n'));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed (received "${text}")`)));
  });
}

t.test('SNI db.example.com reaches the db backend: the certificate the client verified is the backend\'s', async (t) => {
  const outcome = await connectTls('db.example.com');
  t.equal(outcome.greeting, 'db:db.example.com');
  t.equal(outcome.fingerprint, db.fingerprint);
});

t.test('another SNI on the same port is routed by its own VirtualService', async (t) => {
  const outcome = await connectTls('cache.example.com');
  t.equal(outcome.greeting, 'cache:cache.example.com');
  t.equal(outcome.fingerprint, cache.fingerprint);
});

t.test('an SNI no tls rule matches, or no SNI at all, is closed before any handshake (NR)', async (t) => {
  await t.rejects(connectTls('unknown.example.com'));
  await t.rejects(connectTls(undefined));
});

t.test('a client that sends no TLS at all is closed', async (t) => {
  const closed = await new Promise<string>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nhost: db.example.com\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
  });
  t.equal(closed, '');
});

t.test('a sidecar egress TLS port routes by SNI through mesh tls rules (exact first, then a wildcard)', async (t) => {
  const first = await connectTls('db.example.com', egressPort);
  t.equal(first.greeting, 'db:db.example.com');
  t.equal(first.fingerprint, db.fingerprint);
  const second = await connectTls('cache.example.com', egressPort);
  t.equal(second.greeting, 'cache:cache.example.com');
  t.equal(second.fingerprint, cache.fingerprint);
  await t.rejects(connectTls(undefined, egressPort), 'no SNI: no rule matches, no single service declares the port');
});

t.test('a sidecar egress port declared HTTPS carries the app\'s own TLS: routed by SNI, never parsed as HTTP', async (t) => {
  const outcome = await connectTls('cache.example.com', httpsEgressPort);
  t.equal(outcome.greeting, 'cache:cache.example.com');
  t.equal(outcome.fingerprint, cache.fingerprint);
  await t.rejects(connectTls('db.example.com', httpsEgressPort), 'no tls rule for that SNI on this port');
});
