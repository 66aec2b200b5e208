/**
 * Every `Sidecar.ingress[]` entry is served, each in front of its own `defaultEndpoint` (before, only
 * `ingress[0]` opened), and every `egress[]` entry opens its own listener.
 */
import t from 'tap';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway, Upstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import { get } from '../e2e-mesh/mesh-fixture.js';

let sidecar: RunningGateway;
let config: ConfigDir;
let apps: Upstream[];
const ports = { first: 0, second: 0, egressA: 0, egressB: 0 };

t.before(async () => {
  const pki = await makeTestPki();
  apps = [await startUpstream(undefined, 'app-one'), await startUpstream(undefined, 'app-two')];
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  config = await configDir(`
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${await freePort()}
  accessLog: { enabled: false }
  drainDuration: 1s
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: my-app }
spec: { mtls: { mode: PERMISSIVE } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: web, namespace: my-app }
spec: { address: 127.0.0.1, labels: { app: web }, serviceAccount: web }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: web, namespace: my-app }
spec:
  workloadSelector: { labels: { app: web } }
  ingress:
    - { port: { number: ${ports.first}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${apps[0]?.port}" }
    - { port: { number: ${ports.second}, protocol: HTTP, name: http-admin }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${apps[1]?.port}" }
  egress:
    - { port: { number: ${ports.egressA}, protocol: HTTP, name: http }, bind: 127.0.0.1, hosts: ["*/*"] }
    - { port: { number: ${ports.egressB}, protocol: HTTP, name: http-b }, bind: 127.0.0.1, hosts: ["*/*"] }
`);
  sidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/web' });
});
t.teardown(async () => {
  await sidecar.stop();
  await Promise.all(apps.map((app) => app.close()));
  await config.remove();
});

t.test('each HTTP ingress port forwards to its own defaultEndpoint', async (t) => {
  const first = await get(ports.first, '/x');
  t.equal(first.status, 200);
  t.equal((JSON.parse(first.body) as { upstream: string }).upstream, 'app-one');
  const second = await get(ports.second, '/y');
  t.equal(second.status, 200);
  t.equal((JSON.parse(second.body) as { upstream: string }).upstream, 'app-two');
});

t.test('each egress entry opens its own outbound listener', async (t) => {
  const opened = sidecar.logs.filter((line) => line['msg'] === 'listener open').map((line) => String(line['listener']));
  t.ok(opened.includes(`outbound 127.0.0.1:${ports.egressA}`), opened.join(', '));
  t.ok(opened.includes(`outbound 127.0.0.1:${ports.egressB}`), opened.join(', '));
});
