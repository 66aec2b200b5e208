/**
 * VirtualService `tcp` rules and DestinationRule TCP settings on a sidecar's egress TCP ports, against
 * plain TCP servers outside the mesh (MESH_EXTERNAL ServiceEntries, so no mTLS is involved): each server
 * greets with its name, then echoes.
 */
import t from 'tap';
import net from 'node:net';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { rawExchange, startBanner } from './tcp-fixture.js';
import type { Banner } from './tcp-fixture.js';

let sidecar: RunningGateway;
let config: ConfigDir;
let a: Banner;
let b: Banner;
const ports = { routed: 0, weighted: 0, unrouted: 0, limited: 0, refused: 0, idle: 0, admin: 0, deadPort: 0 };

t.before(async () => {
  const pki = await makeTestPki();
  a = await startBanner('A');
  b = await startBanner('B');
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  const egress = (port: number): string => `{ port: { number: ${port}, protocol: TCP, name: tcp-${port} }, bind: 127.0.0.1, hosts: ["*/*"] }`;
  const service = (name: string, port: number, endpoints: string): string => `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: my-app }
spec:
  hosts: [${name}.example]
  location: MESH_EXTERNAL
  ports: [{ number: ${port}, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: ${endpoints}`;
  const both = `[{ address: 127.0.0.1, ports: { tcp: ${a.port} }, labels: { v: a } }, { address: 127.0.0.1, ports: { tcp: ${b.port} }, labels: { v: b } }]`;
  config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${ports.admin}
  accessLog: { enabled: false }
  drainDuration: 1s
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: my-app }
spec: { address: 127.0.0.1, labels: { app: client }, serviceAccount: client }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: my-app }
spec:
  workloadSelector: { labels: { app: client } }
  egress:
    - ${egress(ports.routed)}
    - ${egress(ports.weighted)}
    - ${egress(ports.unrouted)}
    - ${egress(ports.limited)}
    - ${egress(ports.refused)}
    - ${egress(ports.idle)}
${service('routed', ports.routed, both)}
${service('weighted', ports.weighted, both)}
${service('limited', ports.limited, `[{ address: 127.0.0.1, ports: { tcp: ${a.port} } }]`)}
${service('refused', ports.refused, `[{ address: 127.0.0.1, ports: { tcp: ${ports.deadPort} } }]`)}
${service('idle', ports.idle, `[{ address: 127.0.0.1, ports: { tcp: ${a.port} } }]`)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: routed, namespace: my-app }
spec:
  host: routed.example
  subsets: [{ name: a, labels: { v: a } }, { name: b, labels: { v: b } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: weighted, namespace: my-app }
spec:
  host: weighted.example
  subsets: [{ name: a, labels: { v: a } }, { name: b, labels: { v: b } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routed, namespace: my-app }
spec:
  hosts: [routed.example]
  tcp:
    - match: [{ sourceLabels: { app: someone-else } }]
      route: [{ destination: { host: routed.example, subset: a } }]
    - match: [{ port: ${ports.routed}, destinationSubnets: [10.0.0.0/8] }]
      route: [{ destination: { host: routed.example, subset: a } }]
    - match: [{ port: ${ports.routed}, destinationSubnets: [127.0.0.0/8], sourceLabels: { app: client } }]
      route: [{ destination: { host: routed.example, subset: b } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: weighted, namespace: my-app }
spec:
  hosts: [weighted.example]
  tcp:
    - route:
        - { destination: { host: weighted.example, subset: a }, weight: 50 }
        - { destination: { host: weighted.example, subset: b }, weight: 50 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: limited, namespace: my-app }
spec:
  host: limited.example
  trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: refused, namespace: my-app }
spec:
  host: refused.example
  trafficPolicy: { connectionPool: { tcp: { connectTimeout: 1s } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: idle, namespace: my-app }
spec:
  host: idle.example
  trafficPolicy: { connectionPool: { tcp: { idleTimeout: 300ms, tcpKeepalive: { time: 10s } } } }
`);
  sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/client' });
});
t.teardown(async () => {
  await sidecar.stop();
  await Promise.all([a, b].map((banner) => new Promise<void>((resolve) => banner.server.close(() => resolve()))));
  await config.remove();
});

/** Opens a connection and resolves with the greeting line (the server's name), keeping the socket open. */
function greeting(port: number): Promise<{ name: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve({ name: text.split('\n')[0] as string, socket });
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before a greeting (got "${text}")`)));
  });
}

t.test('the first tcp rule whose port, destinationSubnets and sourceLabels all match picks the subset', async (t) => {
  for (let i = 0; i < 5; i++) {
    const { name, socket } = await greeting(ports.routed);
    socket.destroy();
    t.equal(name, 'B');
  }
});

t.test('weighted destinations share the connections', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 40 && seen.size < 2; i++) {
    const { name, socket } = await greeting(ports.weighted);
    socket.destroy();
    seen.add(name);
  }
  t.same([...seen].sort(), ['A', 'B']);
});

t.test('an egress TCP port no service declares and no rule routes is closed (NR)', async (t) => {
  const outcome = await rawExchange(ports.unrouted, 'hello');
  t.same(outcome, { received: '', closed: true });
});

t.test('connectionPool.tcp.maxConnections: the connection over the limit is closed, the next after a close gets through', async (t) => {
  const first = await greeting(ports.limited);
  const over = await rawExchange(ports.limited, 'x');
  t.same(over, { received: '', closed: true });
  const closed = new Promise((resolve) => first.socket.once('close', resolve));
  first.socket.destroy();
  await closed;
  // The release happens when the proxy sees both sides closed; retry until it has.
  let name = '';
  for (let attempt = 0; attempt < 100 && name === ''; attempt++) {
    name = await greeting(ports.limited).then(
      ({ name: found, socket }) => {
        socket.destroy();
        return found;
      },
      () => '',
    );
  }
  t.equal(name, 'A');
});

t.test('an upstream that refuses the connection: the client connection is closed (UF)', async (t) => {
  const outcome = await rawExchange(ports.refused, 'x');
  t.same(outcome, { received: '', closed: true });
});

t.test('connectionPool.tcp.idleTimeout closes a connection with no bytes either way', async (t) => {
  const { socket } = await greeting(ports.idle);
  const started = Date.now();
  await new Promise((resolve) => socket.once('close', resolve));
  t.ok(Date.now() - started >= 250, `closed after ${Date.now() - started} ms`);
});
