/**
 * What `meshgate inject` does to one Kubernetes object (as `istioctl kube-inject`): a pod template
 * gets the meshgate sidecar container (first, held until ready so the app never starts before its
 * proxy), its config and identity volumes, and the app containers the environment that sends their
 * HTTP calls to the sidecar without iptables (HTTP_PROXY, NODE_USE_ENV_PROXY, DAPR_HTTP_PORT). The
 * workload also needs, once: a headless Service whose DNS name lists its ready pods, and the
 * WorkloadEntry (reached at that name on the inbound port) + Sidecar (inbound → the app's port,
 * outbound on loopback) that describe it to meshgate. Pure: objects in, objects out, refusals as data.
 */
import { isRecord } from '../config/field-path.js';

export type JsonObject = Record<string, unknown>;

export const PROXY_CONTAINER = 'meshgate-proxy';
export const INJECTED_ANNOTATION = 'meshgate.dev/injected';
/** The app's port (number or containerPort name) the sidecar forwards inbound traffic to. */
export const APP_PORT_ANNOTATION = 'meshgate.dev/app-port';
/** "false" on the workload or its pod template: leave it alone (Istio's annotation is honoured too). */
export const INJECT_ANNOTATIONS = ['meshgate.dev/inject', 'sidecar.istio.io/inject'] as const;
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'meshgate-inject';

export const SIDECAR_PORTS = { admin: 15000, outbound: 15001, inbound: 15006, metrics: 15020, status: 15021 } as const;
const RESERVED_PORTS = new Map<number, string>(Object.entries(SIDECAR_PORTS).map(([name, port]) => [port, name]));
export const CONFIG_MOUNT = '/etc/meshgate/config';
export const IDENTITY_MOUNT = '/etc/meshgate/identity';
const CONFIG_VOLUME = 'meshgate-config';
const IDENTITY_VOLUME = 'meshgate-identity';
const TMP_VOLUME = 'meshgate-tmp';
/** The image's non-root user (Dockerfile `USER 1000:1000`). */
const PROXY_UID = 1000;

/** Kinds whose pods are long-running: a sidecar never exits, so a Job's pod would never complete. */
export const INJECTABLE_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Pod'] as const;

export interface InjectOptions {
  readonly image: string;
  /** ConfigMap holding the mesh config (MeshConfig certificates point into IDENTITY_MOUNT). */
  readonly configMap: string;
  /** Secret `<prefix><serviceAccount>` holds the workload's SPIFFE certificate (tls.crt, tls.key, ca.crt). */
  readonly identitySecretPrefix: string;
  /** Namespace for objects without one (kubectl's default). */
  readonly namespace: string;
  readonly clusterDomain: string;
}

export type InjectOutcome =
  | { readonly kind: 'injected'; readonly object: JsonObject; readonly generated: readonly JsonObject[] }
  | { readonly kind: 'already-injected'; readonly generated: readonly JsonObject[] }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

class Refusal extends Error {}

const objectAt = (value: unknown): JsonObject => (isRecord(value) ? (value as JsonObject) : {});
const listAt = (value: unknown): JsonObject[] => (Array.isArray(value) ? value.filter(isRecord).map((v) => v as JsonObject) : []);
const stringMapAt = (value: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries(objectAt(value)).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));

function refuse(reason: string): never {
  throw new Refusal(reason);
}

/** DNS-1035 label: what a Service name must be. */
const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function meshServiceName(workloadName: string): string {
  return `${workloadName}-mesh`;
}

function appEnvironment(): readonly { name: string; value: string }[] {
  const proxy = `http://127.0.0.1:${SIDECAR_PORTS.outbound}`;
  return [
    { name: 'HTTP_PROXY', value: proxy },
    // curl and many libraries read only the lower-case name for http:// URLs.
    { name: 'http_proxy', value: proxy },
    // Node ≥ 22.21 / 24 make fetch and http honour HTTP_PROXY only with this set.
    { name: 'NODE_USE_ENV_PROXY', value: '1' },
    // Dapr SDKs call http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/invoke/…, which the sidecar serves.
    { name: 'DAPR_HTTP_PORT', value: String(SIDECAR_PORTS.outbound) },
  ];
}
/** Set only when the app has none: its own list wins. */
const NO_PROXY = 'localhost,127.0.0.1,::1';

function podTemplate(object: JsonObject, kind: string): JsonObject {
  if (kind === 'Pod') return object;
  const template = objectAt(objectAt(object.spec).template);
  if (Object.keys(template).length === 0) refuse(`${kind} has no spec.template`);
  return template;
}

function optedOut(annotations: Record<string, string>): string | undefined {
  return INJECT_ANNOTATIONS.find((name) => annotations[name]?.toLowerCase() === 'false');
}

/** The app's port: the annotation (number or port name), else the first port named http/http-*, else the first port. */
function appPort(annotations: Record<string, string>, containers: readonly JsonObject[]): number {
  const ports = containers.flatMap((c) => listAt(c.ports)).filter((p) => Number.isInteger(p.containerPort)) as { containerPort: number; name?: unknown }[];
  const wanted = annotations[APP_PORT_ANNOTATION];
  if (wanted !== undefined) {
    if (/^\d+$/.test(wanted)) {
      const port = Number(wanted);
      if (port < 1 || port > 65535) refuse(`annotation ${APP_PORT_ANNOTATION}: "${wanted}" is not a port`);
      return port;
    }
    const named = ports.find((p) => p.name === wanted);
    if (named === undefined) refuse(`annotation ${APP_PORT_ANNOTATION}: no container declares a port named "${wanted}"`);
    return named.containerPort;
  }
  const http = ports.find((p) => typeof p.name === 'string' && (p.name === 'http' || p.name.startsWith('http-')));
  const chosen = http ?? ports[0];
  if (chosen === undefined) refuse(`no container declares a containerPort; set the annotation ${APP_PORT_ANNOTATION} to the port the app serves on`);
  return chosen.containerPort;
}

function checkConflicts(spec: JsonObject, appContainers: readonly JsonObject[], initContainers: readonly JsonObject[]): void {
  if (spec.hostNetwork === true) {
    refuse(`hostNetwork pods share the node's network namespace: the sidecar's ports (${[...RESERVED_PORTS.keys()].join(', ')}) would collide between pods on a node`);
  }
  for (const container of [...appContainers, ...initContainers]) {
    if (container.name === PROXY_CONTAINER) refuse(`a container is already named "${PROXY_CONTAINER}" but the pod is not marked ${INJECTED_ANNOTATION}`);
    for (const port of listAt(container.ports)) {
      const owner = RESERVED_PORTS.get(port.containerPort as number);
      if (owner !== undefined) refuse(`container "${String(container.name)}" declares port ${String(port.containerPort)}, which the sidecar needs (${owner})`);
    }
  }
  // Init containers run before the proxy and keep their environment; app containers get the proxy's.
  for (const container of appContainers) {
    for (const variable of listAt(container.env)) {
      const expected = appEnvironment().find((e) => e.name === variable.name);
      if (expected !== undefined && variable.value !== expected.value) {
        refuse(`container "${String(container.name)}" already sets ${expected.name}${typeof variable.value === 'string' ? `=${variable.value}` : ' (valueFrom)'}; the sidecar needs ${expected.value}`);
      }
    }
  }
  const volumes = listAt(spec.volumes).map((v) => v.name);
  for (const name of [CONFIG_VOLUME, IDENTITY_VOLUME, TMP_VOLUME]) if (volumes.includes(name)) refuse(`the pod already has a volume named "${name}"`);
}

function withEnvironment(container: JsonObject): JsonObject {
  const env = listAt(container.env);
  const names = new Set(env.map((e) => e.name));
  const added = appEnvironment().filter((e) => !names.has(e.name));
  if (!names.has('NO_PROXY') && !names.has('no_proxy')) added.push({ name: 'NO_PROXY', value: NO_PROXY }, { name: 'no_proxy', value: NO_PROXY });
  return { ...container, env: [...env, ...added] };
}

/** Held in postStart: kubelet starts the next container (the app) only once the proxy answers ready. */
const WAIT_READY_SCRIPT = `const deadline = Date.now() + 120000;
const poll = () => fetch('http://127.0.0.1:${SIDECAR_PORTS.status}/healthz/ready').then((r) => r.status === 200, () => false)
  .then((ready) => ready ? process.exit(0) : Date.now() > deadline ? process.exit(1) : setTimeout(poll, 200));
poll();`;

function proxyContainer(options: InjectOptions, workload: string): JsonObject {
  const probe = { httpGet: { path: '/healthz/ready', port: SIDECAR_PORTS.status }, periodSeconds: 5, timeoutSeconds: 3 };
  return {
    name: PROXY_CONTAINER,
    image: options.image,
    args: ['run', '--mode', 'sidecar', '--workload', workload, '-c', CONFIG_MOUNT],
    ports: [
      { name: 'mesh-inbound', containerPort: SIDECAR_PORTS.inbound, protocol: 'TCP' },
      { name: 'mg-status', containerPort: SIDECAR_PORTS.status, protocol: 'TCP' },
      { name: 'mg-metrics', containerPort: SIDECAR_PORTS.metrics, protocol: 'TCP' },
    ],
    readinessProbe: { ...probe, failureThreshold: 3 },
    startupProbe: { ...probe, periodSeconds: 1, failureThreshold: 120 },
    lifecycle: {
      postStart: { exec: { command: ['node', '-e', WAIT_READY_SCRIPT] } },
      // The app receives SIGTERM at once; the proxy a few seconds later, so the app's last outbound calls still go out.
      preStop: { exec: { command: ['sleep', '5'] } },
    },
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: CONFIG_VOLUME, mountPath: CONFIG_MOUNT, readOnly: true },
      { name: IDENTITY_VOLUME, mountPath: IDENTITY_MOUNT, readOnly: true },
      { name: TMP_VOLUME, mountPath: '/tmp' },
    ],
  };
}

interface Workload {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly serviceAccount: string;
  readonly appPort: number;
}

/** The headless Service, WorkloadEntry and Sidecar one injected workload needs. */
export function meshResources(workload: Workload, options: InjectOptions): JsonObject[] {
  const { name, namespace, labels } = workload;
  const managed = { [MANAGED_BY_LABEL]: MANAGED_BY };
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: meshServiceName(name), namespace, labels: managed },
      spec: {
        // Headless: its DNS name resolves to every ready pod, which meshgate re-resolves in the background.
        clusterIP: 'None',
        selector: labels,
        ports: [{ name: 'mesh-inbound', port: SIDECAR_PORTS.inbound, targetPort: SIDECAR_PORTS.inbound, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name, namespace, labels: managed },
      spec: {
        address: `${meshServiceName(name)}.${namespace}.svc.${options.clusterDomain}`,
        ports: { http: SIDECAR_PORTS.inbound },
        labels: { ...labels, 'security.istio.io/tlsMode': 'istio' },
        serviceAccount: workload.serviceAccount,
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name, namespace, labels: managed },
      spec: {
        workloadSelector: { labels },
        ingress: [{ port: { number: SIDECAR_PORTS.inbound, protocol: 'HTTP', name: 'http' }, bind: '0.0.0.0', defaultEndpoint: `127.0.0.1:${workload.appPort}` }],
        egress: [{ port: { number: SIDECAR_PORTS.outbound, protocol: 'HTTP', name: 'http-outbound' }, bind: '127.0.0.1', hosts: ['*/*'] }],
      },
    },
  ];
}

function describeWorkload(object: JsonObject, template: JsonObject, options: InjectOptions, containers: readonly JsonObject[]): Workload {
  const metadata = objectAt(object.metadata);
  const name = metadata.name;
  if (typeof name !== 'string' || name === '') refuse('metadata.name is missing (generateName cannot name the WorkloadEntry)');
  if (!SERVICE_NAME.test(meshServiceName(name))) refuse(`"${meshServiceName(name)}" (the mesh Service) is not a valid Service name: use a DNS-1035 name of at most 58 characters`);
  const labels = stringMapAt(objectAt(template.metadata).labels);
  if (Object.keys(labels).length === 0) refuse('the pod template has no labels: the Sidecar and the mesh Service select pods by them');
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : options.namespace;
  const spec = objectAt(template.spec);
  const serviceAccount = typeof spec.serviceAccountName === 'string' ? spec.serviceAccountName : 'default';
  const annotations = { ...stringMapAt(metadata.annotations), ...stringMapAt(objectAt(template.metadata).annotations) };
  return { name, namespace, labels, serviceAccount, appPort: appPort(annotations, containers) };
}

export function injectObject(object: JsonObject, options: InjectOptions): InjectOutcome {
  const kind = typeof object.kind === 'string' ? object.kind : '';
  if (!(INJECTABLE_KINDS as readonly string[]).includes(kind)) {
    return { kind: 'skipped', reason: kind === 'Job' || kind === 'CronJob' ? `${kind} pods must complete; a sidecar never exits` : `${kind || 'untyped document'} has no pods` };
  }
  try {
    const template = podTemplate(object, kind);
    const metadata = objectAt(template.metadata);
    const annotations = stringMapAt(metadata.annotations);
    const optOut = optedOut({ ...stringMapAt(objectAt(object.metadata).annotations), ...annotations });
    if (optOut !== undefined) return { kind: 'skipped', reason: `${optOut}: "false"` };
    const spec = objectAt(template.spec);
    const containers = listAt(spec.containers);
    const initContainers = listAt(spec.initContainers);
    if (containers.length === 0) refuse('the pod has no containers');
    const hasProxy = containers.some((c) => c.name === PROXY_CONTAINER);
    if (annotations[INJECTED_ANNOTATION] === 'true') {
      if (!hasProxy) refuse(`the pod is marked ${INJECTED_ANNOTATION} but has no "${PROXY_CONTAINER}" container; remove the annotation`);
      const appContainers = containers.filter((c) => c.name !== PROXY_CONTAINER);
      return { kind: 'already-injected', generated: meshResources(describeWorkload(object, template, options, appContainers), options) };
    }
    checkConflicts(spec, containers, initContainers);
    const workload = describeWorkload(object, template, options, containers);
    const injectedTemplate: JsonObject = {
      ...template,
      metadata: {
        ...metadata,
        annotations: {
          ...annotations,
          [INJECTED_ANNOTATION]: 'true',
          [APP_PORT_ANNOTATION]: annotations[APP_PORT_ANNOTATION] ?? String(workload.appPort),
          // Istio's scrape annotations, unless the app already publishes its own.
          ...(annotations['prometheus.io/scrape'] === undefined
            ? { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(SIDECAR_PORTS.metrics), 'prometheus.io/path': '/stats/prometheus' }
            : {}),
        },
      },
      spec: {
        ...spec,
        containers: [proxyContainer(options, `${workload.namespace}/${workload.name}`), ...containers.map(withEnvironment)],
        volumes: [
          ...listAt(spec.volumes),
          { name: CONFIG_VOLUME, configMap: { name: options.configMap } },
          { name: IDENTITY_VOLUME, secret: { secretName: `${options.identitySecretPrefix}${workload.serviceAccount}` } },
          { name: TMP_VOLUME, emptyDir: {} },
        ],
      },
    };
    const injected = kind === 'Pod' ? injectedTemplate : { ...object, spec: { ...objectAt(object.spec), template: injectedTemplate } };
    return { kind: 'injected', object: injected, generated: meshResources(workload, options) };
  } catch (error) {
    if (error instanceof Refusal) return { kind: 'refused', reason: error.message };
    throw error;
  }
}
