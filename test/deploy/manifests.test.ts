/**
 * Everything deploy/ ships, checked without a cluster or a Docker daemon: every Kubernetes object
 * against the Kubernetes API schemas (kubernetes-models), cert-manager objects against a schema of
 * the fields they use, kustomizations against the files they name, the hardening and the probes of
 * every pod, the cross-references between manifests and the mesh config (ports, Secrets, service
 * account, drain vs grace period), the mesh configs compiled by meshgate itself, the compose file's
 * references, and the Dockerfile against the config its default command runs.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import type { Test as Tap } from 'tap';
import { parseAllDocuments } from 'yaml';
import { INJECT_DEFAULTS } from '../../gateway/cli/inject-defaults.js';

const DEFAULT_CONFIG_MAP = INJECT_DEFAULTS.configMap;
const DEFAULT_IDENTITY_SECRET_PREFIX = INJECT_DEFAULTS.identitySecretPrefix;
import { parseDuration } from '../../gateway/config/duration.js';
import { caInit, caIssue } from '../../gateway/identity/ca-cli.js';
import { PIPELINE_PLUGINS } from '../../gateway/composition/plugin-table.js';
import type { ProxyMode } from '../../gateway/pipeline/types.js';
import { compileConfig } from '../../gateway/snapshot/snapshot.js';
import { makeTestPki } from '../helpers/pki.js';
import { isKubernetesKind, validateKubernetesObject } from './k8s-schema.js';

type Obj = Record<string, unknown>;
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const KUBERNETES = join(REPO, 'deploy/kubernetes');
const COMPOSE = join(REPO, 'deploy/compose');

async function documents(file: string): Promise<Obj[]> {
  const parsed = parseAllDocuments(await readFile(file, 'utf8'), { merge: true });
  for (const document of parsed) if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message ?? ''}`);
  return parsed.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

async function yamlFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/.test(entry.name)) found.push(path);
  }
  return found.sort();
}

const at = (value: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((current, key) => (current !== null && typeof current === 'object' ? (current as Record<string | number, unknown>)[key] : undefined), value);
const name = (object: Obj): string => String(at(object, 'metadata', 'name'));

// cert-manager's CRDs are not in kubernetes-models: the fields these examples use, strictly (an unknown or misspelt field fails).
const IssuerRef = Type.Object({ name: Type.String({ minLength: 1 }), kind: Type.Union([Type.Literal('Issuer'), Type.Literal('ClusterIssuer')]), group: Type.Optional(Type.Literal('cert-manager.io')) }, { additionalProperties: false });
const CERT_MANAGER: Readonly<Record<string, TSchema>> = {
  Certificate: Type.Object(
    {
      secretName: Type.String({ minLength: 1 }),
      issuerRef: IssuerRef,
      isCA: Type.Optional(Type.Boolean()),
      commonName: Type.Optional(Type.String({ maxLength: 64 })),
      dnsNames: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
      uris: Type.Optional(Type.Array(Type.String({ pattern: '^spiffe://[^/]+/ns/[^/]+/sa/[^/]+$' }), { minItems: 1 })),
      duration: Type.Optional(Type.String({ pattern: '^(\\d+h)?(\\d+m)?(\\d+s)?$' })),
      renewBefore: Type.Optional(Type.String({ pattern: '^(\\d+h)?(\\d+m)?(\\d+s)?$' })),
      privateKey: Type.Optional(
        Type.Object(
          {
            algorithm: Type.Union([Type.Literal('RSA'), Type.Literal('ECDSA'), Type.Literal('Ed25519')]),
            size: Type.Optional(Type.Integer()),
            rotationPolicy: Type.Optional(Type.Union([Type.Literal('Never'), Type.Literal('Always')])),
          },
          { additionalProperties: false },
        ),
      ),
      usages: Type.Optional(Type.Array(Type.Union(['digital signature', 'key encipherment', 'server auth', 'client auth', 'cert sign'].map((u) => Type.Literal(u))))),
    },
    { additionalProperties: false },
  ),
  Issuer: Type.Object({ selfSigned: Type.Optional(Type.Object({}, { additionalProperties: false })), ca: Type.Optional(Type.Object({ secretName: Type.String() }, { additionalProperties: false })) }, { additionalProperties: false, minProperties: 1, maxProperties: 1 }),
};
const CERT_MANAGER_KINDS: Readonly<Record<string, TSchema>> = { Certificate: CERT_MANAGER.Certificate as TSchema, Issuer: CERT_MANAGER.Issuer as TSchema, ClusterIssuer: CERT_MANAGER.Issuer as TSchema };

function checkCertManager(t: Tap, object: Obj, where: string): void {
  const schema = CERT_MANAGER_KINDS[String(object.kind)];
  if (schema === undefined) return void t.fail(`${where}: ${String(object.kind)} has no cert-manager schema here`);
  t.equal(object.apiVersion, 'cert-manager.io/v1', `${where}: cert-manager.io/v1`);
  const errors = [...Value.Errors(schema, object.spec)].map((e) => `${e.path} ${e.message}`);
  t.same(errors, [], `${where}: spec matches cert-manager's ${String(object.kind)}`);
  t.ok(typeof at(object, 'metadata', 'name') === 'string', `${where}: named`);
  if (object.kind !== 'ClusterIssuer') t.ok(typeof at(object, 'metadata', 'namespace') === 'string', `${where}: namespaced`);
}

interface Tree {
  readonly kubernetes: Obj[];
  readonly certManager: Obj[];
}

/** Every object a kustomization renders, read through its resources (a kustomize build, minus patches). */
async function kustomizeTree(t: Tap, dir: string): Promise<Tree> {
  const file = join(dir, 'kustomization.yaml');
  t.ok(existsSync(file), `${relative(REPO, dir)} has a kustomization.yaml`);
  const [kustomization] = await documents(file);
  const tree: Tree = { kubernetes: [], certManager: [] };
  for (const resource of (kustomization?.resources as string[] | undefined) ?? []) {
    const path = join(dir, resource);
    t.ok(existsSync(path), `${relative(REPO, file)}: resource ${resource} exists`);
    if (!existsSync(path)) continue;
    if (statSync(path).isDirectory()) {
      const sub = await kustomizeTree(t, path);
      tree.kubernetes.push(...sub.kubernetes);
      tree.certManager.push(...sub.certManager);
      continue;
    }
    for (const object of await documents(path)) {
      const where = `${relative(REPO, path)} ${String(object.kind)} ${name(object)}`;
      if (String(object.apiVersion).startsWith('cert-manager.io/')) {
        checkCertManager(t, object, where);
        tree.certManager.push(object);
      } else {
        t.ok(isKubernetesKind(object), `${where}: a Kubernetes kind`);
        t.doesNotThrow(() => validateKubernetesObject(object), `${where}: valid against the Kubernetes API schema`);
        tree.kubernetes.push(object);
      }
    }
  }
  for (const generator of (kustomization?.configMapGenerator as { name: string; files: string[] }[] | undefined) ?? []) {
    for (const source of generator.files) t.ok(existsSync(join(dir, source.split('=').at(-1) ?? source)), `${relative(REPO, file)}: configMapGenerator file ${source} exists`);
    tree.kubernetes.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, files: generator.files.map((f) => join(dir, f)) });
  }
  for (const image of (kustomization?.images as { name: string }[] | undefined) ?? []) {
    const used = tree.kubernetes.some((o) => JSON.stringify(o).includes(`"image":"${image.name}:`));
    t.ok(used, `${relative(REPO, file)}: images entry ${image.name} names an image the base uses`);
  }
  for (const patch of (kustomization?.patches as { target: { kind: string; name: string } }[] | undefined) ?? []) {
    t.ok(tree.kubernetes.some((o) => o.kind === patch.target.kind && name(o) === patch.target.name), `${relative(REPO, file)}: patch target ${patch.target.kind}/${patch.target.name} exists`);
  }
  return tree;
}

/** A temp copy of a mesh config whose host paths (`from` → the copy's dir) hold certificates made the way the deployment makes them. */
async function withCertificates(t: Tap, meshFile: string, from: string): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-deploy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'mesh.yaml');
  await writeFile(file, (await readFile(meshFile, 'utf8')).replaceAll(from, dir));
  return { file, dir };
}

async function compiles(t: Tap, file: string, mode: ProxyMode, workloadName?: string): Promise<void> {
  const result = await compileConfig(file, { mode, plugins: PIPELINE_PLUGINS, ...(workloadName === undefined ? {} : { workloadName }) });
  const problems = result.ok ? result.config.diagnostics : result.diagnostics;
  t.ok(result.ok, `meshgate accepts it as ${workloadName ?? mode}`);
  t.same(problems.map((d) => `${d.code} ${d.message}`), [], `no diagnostics as ${workloadName ?? mode}`);
}

function podTemplates(objects: readonly Obj[]): { owner: string; spec: Obj; metadata: Obj }[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(String(o.kind)))
    .map((o) => ({ owner: `${String(o.kind)}/${name(o)}`, spec: at(o, 'spec', 'template', 'spec') as Obj, metadata: at(o, 'spec', 'template', 'metadata') as Obj }));
}

t.test('deploy/kubernetes: base and example overlay', async (t) => {
  const base = await kustomizeTree(t, join(KUBERNETES, 'base'));
  const overlay = await kustomizeTree(t, join(KUBERNETES, 'overlays/example'));
  t.ok(overlay.kubernetes.length > base.kubernetes.length - 1, 'the overlay renders the base');
  const every = await yamlFiles(KUBERNETES);
  const reached = new Set<string>();
  for (const dir of [join(KUBERNETES, 'base'), join(KUBERNETES, 'overlays/example')]) {
    const [kustomization] = await documents(join(dir, 'kustomization.yaml'));
    reached.add(join(dir, 'kustomization.yaml'));
    for (const r of (kustomization?.resources as string[]) ?? []) reached.add(join(dir, r));
    for (const g of (kustomization?.configMapGenerator as { files: string[] }[]) ?? []) for (const f of g.files) reached.add(join(dir, f));
  }
  t.same(every.filter((file) => !reached.has(file)).map((f) => relative(REPO, f)), [], 'no manifest is left out of a kustomization');

  const kinds = base.kubernetes.map((o) => `${String(o.kind)}/${name(o)}`);
  for (const expected of ['Deployment/meshgate-ingress', 'Service/meshgate-ingress', 'PodDisruptionBudget/meshgate-ingress', 'HorizontalPodAutoscaler/meshgate-ingress', `ConfigMap/${DEFAULT_CONFIG_MAP}`, 'Deployment/meshgate-redis', 'Service/meshgate-redis']) {
    t.ok(kinds.includes(expected), `the base has ${expected}`);
  }

  // Every pod is hardened and has resources.
  for (const { owner, spec } of podTemplates(base.kubernetes)) {
    t.equal(at(spec, 'securityContext', 'runAsNonRoot'), true, `${owner}: runAsNonRoot`);
    t.equal(at(spec, 'securityContext', 'seccompProfile', 'type'), 'RuntimeDefault', `${owner}: seccomp RuntimeDefault`);
    t.equal(spec.automountServiceAccountToken, false, `${owner}: no API token`);
    for (const container of spec.containers as Obj[]) {
      const where = `${owner} container ${String(container.name)}`;
      t.equal(at(container, 'securityContext', 'readOnlyRootFilesystem'), true, `${where}: read-only root filesystem`);
      t.equal(at(container, 'securityContext', 'allowPrivilegeEscalation'), false, `${where}: no privilege escalation`);
      t.same(at(container, 'securityContext', 'capabilities', 'drop'), ['ALL'], `${where}: drops ALL capabilities`);
      t.ok(at(container, 'resources', 'requests', 'cpu') !== undefined && at(container, 'resources', 'requests', 'memory') !== undefined, `${where}: resource requests`);
      t.ok(at(container, 'readinessProbe') !== undefined, `${where}: readiness probe`);
    }
  }

  // The ingress against the mesh config it mounts.
  const ingress = base.kubernetes.find((o) => o.kind === 'Deployment' && name(o) === 'meshgate-ingress') as Obj;
  const pod = at(ingress, 'spec', 'template') as Obj;
  const container = (at(pod, 'spec', 'containers') as Obj[])[0] as Obj;
  const generated = base.kubernetes.find((o) => o.kind === 'ConfigMap') as { files: string[] };
  const meshFile = generated.files[0] as string;
  const mesh = (await documents(meshFile)).find((d) => d.kind === 'MeshConfig') as Obj;
  const meshSpec = mesh.spec as Obj;
  const portOf = (address: unknown): number => Number(String(address).split(':').at(-1));
  const containerPort = (portName: unknown): number => ((container.ports as { name: string; containerPort: number }[]).find((p) => p.name === portName || p.containerPort === portName)?.containerPort ?? -1);
  t.equal(at(container, 'readinessProbe', 'httpGet', 'path'), '/healthz/ready');
  t.equal(containerPort(at(container, 'readinessProbe', 'httpGet', 'port')), portOf(meshSpec.statusAddress), 'readiness on the status port');
  t.equal(containerPort(at(container, 'startupProbe', 'httpGet', 'port')), portOf(meshSpec.statusAddress), 'startup on the status port');
  t.equal(at(pod, 'metadata', 'annotations', 'prometheus.io/port'), String(portOf(meshSpec.metricsAddress)), 'scraped on the metrics port');
  t.equal(at(pod, 'metadata', 'annotations', 'prometheus.io/path'), '/stats/prometheus');
  t.match(String(meshSpec.adminAddress), /^127\.0\.0\.1:/, 'admin stays on loopback');
  t.notOk((container.ports as { containerPort: number }[]).some((p) => p.containerPort === portOf(meshSpec.adminAddress)), 'the admin port is not declared');
  const preStop = at(container, 'lifecycle', 'preStop', 'exec', 'command') as string[];
  t.same(preStop.slice(0, 1), ['sleep']);
  const graceSeconds = at(pod, 'spec', 'terminationGracePeriodSeconds') as number;
  t.ok(graceSeconds * 1000 >= Number(preStop[1]) * 1000 + parseDuration(String(meshSpec.drainDuration)), `terminationGracePeriodSeconds ${graceSeconds} ≥ preStop ${preStop[1]}s + drainDuration ${String(meshSpec.drainDuration)}`);

  const volumes = new Map((at(pod, 'spec', 'volumes') as Obj[]).map((v) => [String(v.name), v]));
  const mounts = new Map((container.volumeMounts as { name: string; mountPath: string }[]).map((m) => [m.mountPath, m.name]));
  const args = container.args as string[];
  const configMount = args[args.indexOf('-c') + 1] as string;
  t.equal(at(volumes.get(mounts.get(configMount) ?? ''), 'configMap', 'name'), DEFAULT_CONFIG_MAP, '-c reads the generated ConfigMap (the one inject mounts too)');
  const certificates = meshSpec.certificates as Record<string, string>;
  const serviceAccount = at(pod, 'spec', 'serviceAccountName');
  t.equal(serviceAccount, at(meshSpec, 'ingress', 'serviceAccount'), 'the pod runs as the identity MeshConfig gives the ingress');
  const identityVolume = volumes.get(mounts.get(dirname(certificates.certChain ?? '')) ?? '');
  t.equal(at(identityVolume, 'secret', 'secretName'), `${DEFAULT_IDENTITY_SECRET_PREFIX}${String(serviceAccount)}`, 'the identity Secret is where MeshConfig certificates point');
  for (const file of Object.values(certificates)) t.equal(dirname(file), dirname(certificates.certChain ?? ''), `${file}: in the identity mount`);
  const gateway = (await documents(meshFile)).find((d) => d.kind === 'Gateway') as Obj;
  const servers = at(gateway, 'spec', 'servers') as Obj[];
  for (const server of servers) {
    const port = at(server, 'port', 'number') as number;
    t.ok((container.ports as { containerPort: number }[]).some((p) => p.containerPort === port), `Gateway port ${port} is a container port`);
    const credential = at(server, 'tls', 'credentialName');
    if (typeof credential === 'string') t.ok(mounts.has(join(String(meshSpec.credentialsDirectory), credential)), `credential ${credential} is mounted under credentialsDirectory`);
  }
  const service = base.kubernetes.find((o) => o.kind === 'Service' && name(o) === 'meshgate-ingress') as Obj;
  t.equal(at(service, 'spec', 'type'), 'LoadBalancer');
  for (const port of at(service, 'spec', 'ports') as Obj[]) t.ok(containerPort(port.targetPort) > 0, `Service port ${String(port.name)} targets a container port`);
  const podLabels = at(pod, 'metadata', 'labels') as Record<string, string>;
  const selects = (selector: unknown): boolean => Object.entries(selector as Record<string, string>).every(([k, v]) => podLabels[k] === v);
  t.ok(selects(at(service, 'spec', 'selector')), 'the Service selects the ingress pods');
  t.ok(selects(at(base.kubernetes.find((o) => o.kind === 'PodDisruptionBudget'), 'spec', 'selector', 'matchLabels')), 'the PDB selects them');
  t.same(at(base.kubernetes.find((o) => o.kind === 'HorizontalPodAutoscaler'), 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: 'meshgate-ingress' }, 'the HPA scales the ingress');
  t.match(String(at(meshSpec, 'redis', 'url')), /^redis:\/\/meshgate-redis\.meshgate-system\.svc\.cluster\.local:6379$/, 'MeshConfig reaches the Redis Service');

  // cert-manager issues exactly the Secrets the ingress mounts, with the SPIFFE identity MeshConfig expects.
  const issued = new Map(overlay.certManager.filter((o) => o.kind === 'Certificate').map((c) => [String(at(c, 'spec', 'secretName')), c]));
  for (const volume of volumes.values()) {
    const secret = at(volume, 'secret', 'secretName');
    if (typeof secret === 'string') t.ok(issued.has(secret), `the overlay's cert-manager issues Secret ${secret}`);
  }
  const spiffe = `spiffe://${String(meshSpec.trustDomain)}/ns/${String(at(meshSpec, 'ingress', 'namespace'))}/sa/${String(serviceAccount)}`;
  t.same(at(issued.get(`${DEFAULT_IDENTITY_SECRET_PREFIX}${String(serviceAccount)}`), 'spec', 'uris'), [spiffe], 'the identity certificate carries the ingress SPIFFE ID');
  const issuers = new Set(overlay.certManager.filter((o) => String(o.kind).endsWith('Issuer')).map((o) => `${String(o.kind)}/${name(o)}`));
  for (const certificate of issued.values()) {
    t.ok(issuers.has(`${String(at(certificate, 'spec', 'issuerRef', 'kind'))}/${String(at(certificate, 'spec', 'issuerRef', 'name'))}`), `${name(certificate)}: its issuer is defined`);
  }

  // meshgate itself accepts the mesh config, with the credential files in place.
  const copy = await withCertificates(t, meshFile, '/etc/meshgate/credentials');
  const pki = await makeTestPki();
  const server = await pki.serverCert(['api.example.com']);
  await mkdir(join(copy.dir, 'ingress-cert'));
  await writeFile(join(copy.dir, 'ingress-cert', 'tls.crt'), await readFile(server.chainPath));
  await writeFile(join(copy.dir, 'ingress-cert', 'tls.key'), await readFile(server.keyPath));
  await compiles(t, copy.file, 'ingress');
});

t.test('deploy/compose: references, shared network namespaces, and the mesh config it mounts', async (t) => {
  const [compose] = await documents(join(COMPOSE, 'compose.yaml'));
  const services = (compose?.services ?? {}) as Record<string, Obj>;
  const volumes = Object.keys((compose?.volumes ?? {}) as Obj);
  t.ok(Object.keys(services).length >= 8, 'ingress, three apps, three sidecars, redis, certs');
  for (const [serviceName, service] of Object.entries(services)) {
    t.ok(typeof service.image === 'string' || service.build !== undefined, `${serviceName}: image or build`);
    const context = at(service, 'build', 'context');
    if (typeof context === 'string') t.ok(existsSync(join(COMPOSE, context, 'Dockerfile')), `${serviceName}: the build context holds the Dockerfile`);
    for (const mount of (service.volumes as string[] | undefined) ?? []) {
      const [source] = mount.split(':');
      if (source?.startsWith('.')) t.ok(existsSync(join(COMPOSE, source)), `${serviceName}: bind source ${source} exists`);
      else t.ok(volumes.includes(source ?? ''), `${serviceName}: volume ${source} is declared`);
    }
    for (const dependency of Object.keys((service.depends_on ?? {}) as Obj)) t.ok(dependency in services, `${serviceName}: depends on ${dependency}, which exists`);
    const networkMode = service.network_mode;
    if (typeof networkMode === 'string') t.ok(networkMode.replace(/^service:/, '') in services, `${serviceName}: shares the network of an existing service`);
  }
  // Each sidecar: its WorkloadEntry is reached at the app service it shares a network namespace with,
  // and its Sidecar's defaultEndpoint is the port that app listens on.
  const meshFile = join(COMPOSE, 'mesh.yaml');
  const mesh = await documents(meshFile);
  const sidecars = Object.entries(services).filter(([, s]) => (s.command as string[] | undefined)?.includes('sidecar'));
  t.equal(sidecars.length, 3);
  for (const [serviceName, service] of sidecars) {
    const command = service.command as string[];
    const workload = command[command.indexOf('--workload') + 1] ?? '';
    const [namespace, workloadName] = workload.split('/');
    const entry = mesh.find((d) => d.kind === 'WorkloadEntry' && name(d) === workloadName && at(d, 'metadata', 'namespace') === namespace);
    const app = String(service.network_mode).replace(/^service:/, '');
    t.equal(at(entry, 'spec', 'address'), app, `${serviceName}: WorkloadEntry ${workload} is reached at ${app}`);
    const sidecar = mesh.find((d) => d.kind === 'Sidecar' && name(d) === workloadName) as Obj;
    const endpoint = String(at(sidecar, 'spec', 'ingress', 0, 'defaultEndpoint'));
    const appCommand = (at(services[app], 'command') as string[]).join(' ');
    t.match(appCommand, new RegExp(`listen\\(${endpoint.split(':')[1]}, '127\\.0\\.0\\.1'\\)`), `${serviceName}: ${app} listens where the Sidecar forwards (${endpoint})`);
  }
  t.ok(existsSync(join(REPO, 'gateway/demo/apps.ts')), 'the apps the compose file imports exist');

  // The certs service's commands, run here the same way, make files the mesh config accepts.
  const copy = await withCertificates(t, meshFile, '/var/lib/meshgate');
  t.match(JSON.stringify(services.certs?.command), /ca init --dir \/var\/lib\/meshgate .*ca issue --dir \/var\/lib\/meshgate --namespace istio-system\s+--service-account ingress-cert --out \/var\/lib\/meshgate\/credentials/);
  t.equal((await caInit({ dir: copy.dir })).exitCode, 0);
  t.equal((await caIssue({ dir: copy.dir, namespace: 'istio-system', serviceAccount: 'ingress-cert', out: join(copy.dir, 'credentials') })).exitCode, 0);
  await compiles(t, copy.file, 'ingress');
  for (const [, service] of sidecars) {
    const command = service.command as string[];
    await compiles(t, copy.file, 'sidecar', command[command.indexOf('--workload') + 1]);
  }
});

t.test('Dockerfile: the final stage against the config its default command runs', async (t) => {
  const text = await readFile(join(REPO, 'Dockerfile'), 'utf8');
  const instructions = text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => /^[A-Z]+\s/.test(line))
    .map((line) => ({ op: line.split(/\s/, 1)[0] as string, args: line.slice(line.indexOf(' ') + 1).trim() }));
  const lastFrom = instructions.map((i) => i.op).lastIndexOf('FROM');
  const final = instructions.slice(lastFrom);
  const only = (op: string): string => {
    const found = final.filter((i) => i.op === op);
    t.equal(found.length, 1, `one ${op} in the final stage`);
    return found[0]?.args ?? '';
  };
  t.match(final[0]?.args, /^node:24-/, 'the final stage is on Node 24 (Active LTS; CI also runs node@24)');
  t.match(only('USER'), /^[1-9]\d*:[1-9]\d*$/, 'numeric non-root USER (runAsNonRoot can verify it)');
  t.ok(final.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args)), 'production dependencies only');
  t.notOk(final.some((i) => i.op === 'COPY' && /\b(test|bench)\b/.test(i.args)), 'no tests or bench in the image');
  const entrypoint = JSON.parse(only('ENTRYPOINT')) as string[];
  t.same(entrypoint.slice(0, 2), ['/usr/bin/tini', '--'], 'tini is PID 1');
  t.ok(final.some((i) => i.op === 'RUN' && /apt-get install .*\btini\b/.test(i.args)), 'and installed');
  const command = JSON.parse(only('CMD')) as string[];
  const configPath = command[command.indexOf('-c') + 1] ?? '';
  const inRepo = join(REPO, configPath.replace(/^\/app\//, ''));
  t.ok(existsSync(inRepo), `the default config ${configPath} exists`);
  const config = await documents(inRepo);
  const meshSpec = config.find((d) => d.kind === 'MeshConfig')?.spec as Obj;
  const portOf = (address: unknown): number => Number(String(address).split(':').at(-1));
  const gatewayPorts = config.filter((d) => d.kind === 'Gateway').flatMap((g) => (at(g, 'spec', 'servers') as Obj[]).map((s) => at(s, 'port', 'number') as number));
  t.ok(gatewayPorts.length > 0, 'the default config has a Gateway (an ingress that serves)');
  t.ok(config.some((d) => d.kind === 'VirtualService'), 'and a route');
  const exposed = only('EXPOSE').split(/\s+/).map(Number).sort();
  t.same(exposed, [...gatewayPorts, portOf(meshSpec.statusAddress), portOf(meshSpec.metricsAddress)].sort(), 'EXPOSE is exactly the Gateway, status and metrics ports');
  t.notOk(exposed.includes(portOf(meshSpec.adminAddress ?? '127.0.0.1:15000')), 'the admin port is not exposed');
  t.match(only('HEALTHCHECK'), new RegExp(`http://127\\.0\\.0\\.1:${portOf(meshSpec.statusAddress)}/healthz/ready`), 'HEALTHCHECK asks the status port');
  await compiles(t, inRepo, 'ingress');
  const manifest = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { files: string[] };
  t.ok(manifest.files.includes('config'), 'the default config ships in the npm package too');
});

t.test('package: runtime code imports only dependencies; the package ships no tests', async (t) => {
  const manifest = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; files: string[] };
  const allowed = new Set(Object.keys(manifest.dependencies));
  const used = new Map<string, string>();
  for (const root of ['dist/gateway', 'dist/plugins']) {
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.name.endsWith('.js')) {
          const source = await readFile(path, 'utf8');
          for (const match of source.matchAll(/(?:from\s+|import\(\s*|require\(\s*)['"]([^'"./][^'"]*)['"]/g)) {
            const specifier = match[1] as string;
            const pkg = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : (specifier.split('/')[0] as string);
            if (!specifier.startsWith('node:') && !builtinModules.includes(pkg)) used.set(pkg, relative(REPO, path));
          }
        }
      }
    };
    await walk(join(REPO, root));
  }
  t.ok(used.size > 5, `found the runtime imports (${[...used.keys()].join(', ')})`);
  for (const [pkg, file] of used) t.ok(allowed.has(pkg), `${pkg} (imported by ${file}) is in dependencies${pkg in manifest.devDependencies ? ', not devDependencies' : ''}`);
  t.same(manifest.files.filter((f) => /test|bench|^gateway|^plugins/.test(f)), [], 'files: no tests, bench or TypeScript sources');
  t.ok(manifest.files.includes('dist/gateway') && manifest.files.includes('dist/plugins'), 'files: the compiled runtime');
});
