/**
 * `meshgate inject` on real-world workload shapes: every output object is validated against the
 * Kubernetes API schemas, the generated WorkloadEntry + Sidecar compile with meshgate as that sidecar,
 * a second injection changes nothing, and shapes it cannot serve are refused with their line.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { injectText } from '../../gateway/cli/inject.js';
import type { InjectOptions } from '../../gateway/cli/inject-pod.js';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { CLI, runCli } from '../e2e-foundation/fixtures.js';
import { isKubernetesKind, validateKubernetesObject } from './k8s-schema.js';

type Obj = Record<string, unknown>;
type Container = { name: string; env?: { name: string; value?: string }[]; ports?: { containerPort: number }[]; volumeMounts?: { name: string }[] };
type PodSpec = { containers: Container[]; initContainers?: Container[]; volumes?: { name: string }[] };

const OPTIONS: InjectOptions = { image: 'registry.example/meshgate:0.1.0', configMap: 'meshgate-mesh', identitySecretPrefix: 'meshgate-identity-', namespace: 'default', clusterDomain: 'cluster.local' };

function documentsOf(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

function inject(text: string): { output: string; docs: Obj[]; messages: readonly string[] } {
  const result = injectText(text, 'app.yaml', OPTIONS, false);
  if (!result.ok) throw new Error(result.messages.join('\n'));
  return { output: result.output, docs: documentsOf(result.output), messages: result.messages };
}

function podSpecOf(object: Obj): PodSpec {
  const spec = object.spec as Obj;
  return (object.kind === 'Pod' ? spec : ((spec.template as Obj).spec as Obj)) as unknown as PodSpec;
}

const byKind = (docs: readonly Obj[], kind: string): Obj[] => docs.filter((d) => d.kind === kind);

/** Every Kubernetes object is schema-valid; the mesh resources compile as the named sidecar's config. */
async function checkOutput(t: Test, docs: readonly Obj[], workload: string, serviceHost: string, appLabel: string): Promise<void> {
  for (const doc of docs.filter((d) => !String(d.apiVersion).includes('istio.io'))) {
    t.ok(isKubernetesKind(doc), `${String(doc.kind)} is a Kubernetes kind with a schema`);
    t.doesNotThrow(() => validateKubernetesObject(doc), `${String(doc.kind)} ${String((doc.metadata as Obj).name)} is valid against the Kubernetes schema`);
  }
  const [namespace] = workload.split('/');
  const mesh = docs.filter((d) => String(d.apiVersion).includes('istio.io'));
  const config = `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  certificates: { certChain: /etc/meshgate/identity/tls.crt, privateKey: /etc/meshgate/identity/tls.key, rootCert: /etc/meshgate/identity/ca.crt }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${serviceHost}, namespace: ${namespace} }
spec:
  hosts: [${serviceHost}]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ${appLabel} } }
---
${mesh.map((d) => JSON.stringify(d)).join('\n---\n')}
`;
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-inject-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'mesh.yaml'), config);
  const compiled = await compileConfig(join(dir, 'mesh.yaml'), { mode: 'sidecar', workloadName: workload, plugins: PIPELINE_PLUGINS });
  t.ok(compiled.ok, `the generated WorkloadEntry + Sidecar compile as sidecar ${workload}: ${compiled.ok ? '' : compiled.diagnostics.map((d) => `${d.code} ${d.message}`).join('; ')}`);
}

const MULTI_CONTAINER = `# orders: an app, a log shipper, a migration init container, volumes of its own
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  namespace: shop
  labels: { app: orders }
spec:
  replicas: 3
  selector:
    matchLabels: { app: orders }
  template:
    metadata:
      labels: { app: orders, version: v2 }
      annotations: { checksum/config: abc123 }
    spec:
      serviceAccountName: orders
      initContainers:
        - name: migrate
          image: orders:2.0
          command: [./migrate]
          env: [{ name: DATABASE_URL, value: postgres://db/orders }]
      containers:
        - name: app
          image: orders:2.0
          ports:
            - { name: metrics, containerPort: 9090 }
            - { name: http, containerPort: 8080 }
          env: [{ name: LOG_LEVEL, value: info }]
          readinessProbe: { httpGet: { path: /ready, port: http } }
          volumeMounts: [{ name: data, mountPath: /data }]
        - name: log-shipper
          image: fluent-bit:3
          volumeMounts: [{ name: data, mountPath: /data, readOnly: true }]
      volumes:
        - name: data
          emptyDir: {}
        - name: settings
          configMap: { name: orders-settings }
`;

t.test('a Deployment with several containers, named ports, init containers and volumes', async (t) => {
  const { docs, messages } = inject(MULTI_CONTAINER);
  t.same(docs.map((d) => d.kind), ['Deployment', 'Service', 'WorkloadEntry', 'Sidecar']);
  const deployment = docs[0] as Obj;
  const pod = podSpecOf(deployment);
  t.same(pod.containers.map((c) => c.name), ['meshgate-proxy', 'app', 'log-shipper'], 'the proxy starts first');
  t.same(pod.initContainers?.map((c) => c.name), ['migrate'], 'init containers are kept');
  t.same(pod.initContainers?.[0]?.env, [{ name: 'DATABASE_URL', value: 'postgres://db/orders' }], 'init containers run before the proxy: no proxy env');
  for (const name of ['app', 'log-shipper']) {
    const env = new Map((pod.containers.find((c) => c.name === name)?.env ?? []).map((e) => [e.name, e.value]));
    t.equal(env.get('HTTP_PROXY'), 'http://127.0.0.1:15001', `${name}: HTTP_PROXY`);
    t.equal(env.get('http_proxy'), 'http://127.0.0.1:15001', `${name}: http_proxy`);
    t.equal(env.get('NODE_USE_ENV_PROXY'), '1');
    t.equal(env.get('DAPR_HTTP_PORT'), '15001');
    t.equal(env.get('NO_PROXY'), 'localhost,127.0.0.1,::1');
  }
  t.equal(pod.containers[1]?.env?.[0]?.name, 'LOG_LEVEL', "the app's own env comes first, untouched");
  t.same(pod.volumes?.map((v) => v.name), ['data', 'settings', 'meshgate-config', 'meshgate-identity', 'meshgate-tmp'], 'existing volumes kept');
  const template = (deployment.spec as Obj).template as { metadata: { annotations: Record<string, string> } };
  t.equal(template.metadata.annotations['checksum/config'], 'abc123');
  t.equal(template.metadata.annotations['meshgate.dev/app-port'], '8080', 'the port named http wins over the first port');
  t.equal(template.metadata.annotations['prometheus.io/port'], '15020');
  const proxy = pod.containers[0] as Container & { args: string[]; readinessProbe: { httpGet: { port: number; path: string } }; securityContext: Obj };
  t.same(proxy.args, ['run', '--mode', 'sidecar', '--workload', 'shop/orders', '-c', '/etc/meshgate/config']);
  t.same(proxy.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 }, 'probed on the status port');
  t.match(proxy.securityContext, { runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  const [service, workloadEntry, sidecar] = docs.slice(1) as [Obj, Obj, Obj];
  t.match(service, { metadata: { name: 'orders-mesh', namespace: 'shop' }, spec: { clusterIP: 'None', selector: { app: 'orders', version: 'v2' } } });
  t.match(workloadEntry, { spec: { address: 'orders-mesh.shop.svc.cluster.local', ports: { http: 15006 }, serviceAccount: 'orders' } });
  t.match(sidecar, { spec: { ingress: [{ port: { number: 15006 }, defaultEndpoint: '127.0.0.1:8080' }], egress: [{ port: { number: 15001 }, bind: '127.0.0.1' }] } });
  t.match(messages.at(-1), /1 workload\(s\) injected, 0 already injected/);
  await checkOutput(t, docs, 'shop/orders', 'orders', 'orders');
});

t.test('StatefulSet, DaemonSet, ReplicaSet and a bare Pod, with the app port from an annotation', async (t) => {
  const text = `apiVersion: apps/v1
kind: StatefulSet
metadata: { name: ledger, namespace: bank }
spec:
  serviceName: ledger
  selector: { matchLabels: { app: ledger } }
  template:
    metadata:
      labels: { app: ledger }
      annotations: { meshgate.dev/app-port: api }
    spec:
      containers:
        - name: ledger
          image: ledger:1
          ports: [{ name: peer, containerPort: 7000 }, { name: api, containerPort: 7001 }]
  volumeClaimTemplates:
    - metadata: { name: data }
      spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 1Gi } } }
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: node-agent, namespace: bank }
spec:
  selector: { matchLabels: { app: node-agent } }
  template:
    metadata: { labels: { app: node-agent } }
    spec:
      containers: [{ name: agent, image: agent:1, ports: [{ containerPort: 9000 }] }]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: { name: legacy, namespace: bank }
spec:
  selector: { matchLabels: { app: legacy } }
  template:
    metadata: { labels: { app: legacy } }
    spec:
      containers: [{ name: legacy, image: legacy:1 }]
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  labels: { app: debug }
  annotations: { meshgate.dev/app-port: "3000" }
spec:
  containers: [{ name: shell, image: busybox, command: [sleep, infinity] }]
`;
  const result = injectText(text, 'app.yaml', OPTIONS, false);
  t.notOk(result.ok, 'the ReplicaSet has no port and no annotation');
  t.match(result.messages, [/^app\.yaml:\d+: ReplicaSet bank\/legacy: cannot inject: no container declares a containerPort; set the annotation meshgate\.dev\/app-port/]);
  t.equal(result.output, '', 'nothing is written when one workload is refused');

  const { docs } = inject(text.replace('containers: [{ name: legacy, image: legacy:1 }]', 'containers: [{ name: legacy, image: legacy:1, ports: [{ containerPort: 5000 }] }]'));
  t.same(docs.map((d) => `${String(d.kind)}/${String((d.metadata as Obj).name)}`), [
    'StatefulSet/ledger', 'Service/ledger-mesh', 'WorkloadEntry/ledger', 'Sidecar/ledger',
    'DaemonSet/node-agent', 'Service/node-agent-mesh', 'WorkloadEntry/node-agent', 'Sidecar/node-agent',
    'ReplicaSet/legacy', 'Service/legacy-mesh', 'WorkloadEntry/legacy', 'Sidecar/legacy',
    'Pod/debug', 'Service/debug-mesh', 'WorkloadEntry/debug', 'Sidecar/debug',
  ]);
  t.match(byKind(docs, 'Sidecar')[0], { spec: { ingress: [{ defaultEndpoint: '127.0.0.1:7001' }] } }, 'annotation by port name');
  t.match(byKind(docs, 'Sidecar')[3], { metadata: { namespace: 'default' }, spec: { ingress: [{ defaultEndpoint: '127.0.0.1:3000' }] } }, 'annotation by number; kubectl default namespace');
  t.same(podSpecOf(byKind(docs, 'Pod')[0] as Obj).containers.map((c) => c.name), ['meshgate-proxy', 'shell']);
  t.match(byKind(docs, 'WorkloadEntry')[3], { spec: { serviceAccount: 'default' } });
  await checkOutput(t, docs.slice(0, 4), 'bank/ledger', 'ledger', 'ledger');
  for (const doc of docs.slice(4)) if (!String(doc.apiVersion).includes('istio.io')) validateKubernetesObject(doc);
});

t.test('idempotent: the output injected again is the same text, and an injected workload alone gets its mesh resources back', async (t) => {
  const first = inject(MULTI_CONTAINER);
  const second = inject(first.output);
  t.equal(second.output, first.output, 'byte for byte');
  t.match(second.messages.at(-1), /0 workload\(s\) injected, 1 already injected/);
  const workloadOnly = first.output.split('\n---\n')[0] ?? '';
  const again = inject(workloadOnly);
  t.same(again.docs.map((d) => d.kind), ['Deployment', 'Service', 'WorkloadEntry', 'Sidecar']);
  t.equal(again.output, first.output);
});

t.test('other kinds pass through with their text; Jobs and opted-out workloads are left alone with a note', async (t) => {
  const text = `apiVersion: v1
kind: ConfigMap
metadata: { name: settings }   # flow style and this comment survive
data: { mode: fast }
---
apiVersion: batch/v1
kind: Job
metadata: { name: backfill }
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: run, image: backfill:1 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: legacy, annotations: { sidecar.istio.io/inject: "false" } }
spec:
  selector: { matchLabels: { app: legacy } }
  template:
    metadata: { labels: { app: legacy } }
    spec: { containers: [{ name: legacy, image: legacy:1 }] }
`;
  const { output, messages } = inject(text);
  t.equal(output, text, 'unchanged, comments included');
  t.match(messages, [/^app\.yaml:6: Job default\/backfill: not injected: Job pods must complete/, /^app\.yaml:15: Deployment default\/legacy: not injected: sidecar\.istio\.io\/inject: "false"/, /0 workload\(s\) injected/]);
});

t.test('refused shapes name the workload, its line and the reason', async (t) => {
  const deployment = (spec: string, name = 'api'): string => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
${spec}
`;
  const app = '      containers: [{ name: app, image: app:1, ports: [{ containerPort: 8080 }] }]';
  const cases: [string, string, RegExp][] = [
    ['hostNetwork', `      hostNetwork: true\n${app}`, /hostNetwork pods share the node's network namespace/],
    ['reserved port', '      containers: [{ name: app, image: app:1, ports: [{ containerPort: 15001 }] }]', /container "app" declares port 15001, which the sidecar needs \(outbound\)/],
    ['reserved port in an init container', `      initContainers: [{ name: warm, image: w:1, ports: [{ containerPort: 15021 }] }]\n${app}`, /container "warm" declares port 15021, which the sidecar needs \(status\)/],
    ['container name taken', '      containers: [{ name: meshgate-proxy, image: other:1, ports: [{ containerPort: 8080 }] }]', /a container is already named "meshgate-proxy" but the pod is not marked meshgate\.dev\/injected/],
    ['conflicting HTTP_PROXY', '      containers: [{ name: app, image: app:1, ports: [{ containerPort: 8080 }], env: [{ name: HTTP_PROXY, value: "http://corp-proxy:3128" }] }]', /container "app" already sets HTTP_PROXY=http:\/\/corp-proxy:3128; the sidecar needs http:\/\/127\.0\.0\.1:15001/],
    ['volume name taken', `${app}\n      volumes: [{ name: meshgate-config, emptyDir: {} }]`, /the pod already has a volume named "meshgate-config"/],
    ['unknown port name', app.replace('containers:', 'containers:').replace('ports: [{ containerPort: 8080 }]', 'ports: [{ name: web, containerPort: 8080 }]'), /no container declares a port named "grpc"/],
  ];
  for (const [label, spec, reason] of cases) {
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: first }\n---\n${deployment(spec)}`;
    const annotated = label === 'unknown port name' ? text.replace('metadata: { labels: { app: api } }', 'metadata: { labels: { app: api }, annotations: { meshgate.dev/app-port: grpc } }') : text;
    const result = injectText(annotated, 'app.yaml', OPTIONS, false);
    t.notOk(result.ok, `${label}: refused`);
    t.equal(result.messages.length, 1, `${label}: one message`);
    t.match(result.messages[0], /^app\.yaml:5: Deployment default\/api: cannot inject: /, `${label}: file, line and workload`);
    t.match(result.messages[0], reason, `${label}: the reason`);
  }
  const tooLong = injectText(deployment(app, 'a'.repeat(60)), 'app.yaml', OPTIONS, false);
  t.match(tooLong.messages[0], /is not a valid Service name/);
  const broken = injectText('apiVersion: v1\nkind: Pod\nmetadata: { name: x\n', 'bad.yaml', OPTIONS, false);
  t.notOk(broken.ok);
  t.match(broken.messages[0], /^bad\.yaml:\d+:\d+: YAML error: /);
});

t.test('CLI: reads stdin, writes mesh resources apart with --mesh-output, exit codes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-inject-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const output = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'inject', '--image', 'meshgate:test', '--mesh-output', join(dir, 'mesh.yaml')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(MULTI_CONTAINER);
  });
  t.equal(output.code, 0, output.stderr);
  const kubernetes = documentsOf(output.stdout);
  t.same(kubernetes.map((d) => d.kind), ['Deployment', 'Service'], 'stdout: what kubectl applies');
  t.equal(podSpecOf(kubernetes[0] as Obj).containers[0]?.name, 'meshgate-proxy');
  t.match(output.stdout, /image: meshgate:test/);
  const mesh = documentsOf(await readFile(join(dir, 'mesh.yaml'), 'utf8'));
  t.same(mesh.map((d) => d.kind), ['WorkloadEntry', 'Sidecar'], '--mesh-output: what goes into the mesh config');
  const hostNetwork = join(dir, 'host.yaml');
  await writeFile(hostNetwork, MULTI_CONTAINER.replace('serviceAccountName: orders', 'serviceAccountName: orders\n      hostNetwork: true'));
  const refused = await runCli(['inject', '-f', hostNetwork]);
  t.equal(refused.code, 1);
  t.equal(refused.stdout, '', 'nothing on stdout');
  t.match(refused.stderr, /host\.yaml:2: Deployment shop\/orders: cannot inject: hostNetwork/);
  const missing = await runCli(['inject', '-f', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read .*nope\.yaml/);
});
