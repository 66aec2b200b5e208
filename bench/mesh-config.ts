/**
 * Generates the mesh configs of the `mesh` suite: one file, shared by every process as in a real
 * mesh, describing two sidecars in namespace `bench` and, optionally, an HTTPS ingress in front of
 * the server side.
 *
 * - `bench/client` (sidecar A): the caller's sidecar; its egress listener is where the load goes, with
 *   `Host: bench-app`.
 * - `bench/server` (sidecar B): fronts the bench upstream (its inbound `defaultEndpoint`).
 * - `bench-app.bench.svc.cluster.local` (`bench-app` in namespace bench) is a MESH_INTERNAL ServiceEntry selecting B's WorkloadEntry; a DestinationRule sets
 *   ISTIO_MUTUAL and PeerAuthentication is STRICT, so every hop between proxies is mTLS over the
 *   client's pooled keep-alive connections.
 * - Identities are self-issued from one throwaway CA (MeshConfig `certificates.caCert/caKey`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createRootCa, issueWorkloadCertificate } from '../gateway/identity/ca.js';
import type { ServerCertificateFiles } from './config.js';

export const MESH_NAMESPACE = 'bench';
export const MESH_TRUST_DOMAIN = 'cluster.local';
export const SERVICE_HOST = 'bench-app';
/** The ServiceEntry's host in full: short hosts in VirtualService destinations (and DestinationRules) expand to it, as in Istio. */
const SERVICE_FQDN = `${SERVICE_HOST}.${MESH_NAMESPACE}.svc.cluster.local`;
export const CLIENT_WORKLOAD = `${MESH_NAMESPACE}/client`;
export const SERVER_WORKLOAD = `${MESH_NAMESPACE}/server`;
const INGRESS_GATEWAY = 'bench-ingress';

export interface MeshCaFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface WorkloadCertificateFiles {
  readonly chainPath: string;
  readonly keyPath: string;
  readonly caPath: string;
}

export interface SidecarPorts {
  readonly inbound: number;
  readonly outbound: number;
  readonly admin: number;
}

export interface MeshConfigOptions {
  readonly directory: string;
  readonly ca: MeshCaFiles;
  readonly appPort: number;
  readonly client: SidecarPorts;
  readonly server: SidecarPorts;
  /** An HTTPS ingress routing every host to `bench-app`; null = sidecars only. */
  readonly ingress: { readonly listenerPort: number; readonly adminPort: number; readonly tls: ServerCertificateFiles } | null;
}

type Document = Record<string, unknown>;

const caByDirectory = new Map<string, Promise<MeshCaFiles>>();

/** The run's mesh root CA, created once per scratch directory. */
export function meshCa(directory: string): Promise<MeshCaFiles> {
  let files = caByDirectory.get(directory);
  if (files === undefined) {
    files = (async () => {
      const ca = await createRootCa({ trustDomain: MESH_TRUST_DOMAIN });
      const written = { certPath: join(directory, 'mesh-ca.crt'), keyPath: join(directory, 'mesh-ca.key') };
      await writeFile(written.certPath, ca.certPem);
      await writeFile(written.keyPath, ca.keyPem, { mode: 0o600 });
      return written;
    })();
    caByDirectory.set(directory, files);
  }
  return files;
}

/**
 * A valid mesh SVID (`bench/sa/<serviceAccount>`) signed by the run's CA, for the handshake bench: the
 * client's identity, and the certificate of the bare node:tls server it is compared with.
 */
export async function writeWorkloadCertificate(directory: string, ca: MeshCaFiles, serviceAccount: string): Promise<WorkloadCertificateFiles> {
  const issued = await issueWorkloadCertificate({
    ca: { certPem: await readFile(ca.certPath, 'utf8'), keyPem: await readFile(ca.keyPath, 'utf8') },
    trustDomain: MESH_TRUST_DOMAIN,
    namespace: MESH_NAMESPACE,
    serviceAccount,
    validityHours: 1,
  });
  const files = { chainPath: join(directory, `${serviceAccount}-chain.pem`), keyPath: join(directory, `${serviceAccount}-key.pem`), caPath: ca.certPath };
  await writeFile(files.chainPath, issued.chainPem);
  await writeFile(files.keyPath, issued.keyPem, { mode: 0o600 });
  return files;
}

function workload(name: string, app: string, inboundPort: number): Document[] {
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name, namespace: MESH_NAMESPACE },
      spec: { address: '127.0.0.1', ports: { http: inboundPort }, labels: { app }, serviceAccount: app },
    },
  ];
}

function sidecar(name: string, app: string, ports: SidecarPorts, appPort: number): Document {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Sidecar',
    metadata: { name, namespace: MESH_NAMESPACE },
    spec: {
      workloadSelector: { labels: { app } },
      ingress: [{ port: { number: ports.inbound, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', defaultEndpoint: `127.0.0.1:${appPort}` }],
      egress: [{ port: { number: ports.outbound, protocol: 'HTTP', name: 'http' }, bind: '127.0.0.1', hosts: ['*/*'] }],
    },
  };
}

function ingressDocuments(ingress: NonNullable<MeshConfigOptions['ingress']>): Document[] {
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: INGRESS_GATEWAY, namespace: 'istio-system' },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [
          {
            port: { number: ingress.listenerPort, name: 'https', protocol: 'HTTPS' },
            hosts: ['*'],
            tls: { mode: 'SIMPLE', serverCertificate: ingress.tls.certPath, privateKey: ingress.tls.keyPath },
          },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'edge', namespace: 'istio-system' },
      spec: { hosts: ['*'], gateways: [INGRESS_GATEWAY], http: [{ route: [{ destination: { host: SERVICE_FQDN } }] }] },
    },
  ];
}

function meshDocuments(options: MeshConfigOptions): Document[] {
  return [
    {
      apiVersion: 'meshgate.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh', namespace: 'istio-system' },
      spec: {
        trustDomain: MESH_TRUST_DOMAIN,
        // Sidecars get their own --admin-address; this one is the ingress's (or unused).
        adminAddress: `127.0.0.1:${options.ingress?.adminPort ?? options.server.admin}`,
        accessLog: { enabled: false },
        certificates: { caCert: options.ca.certPath, caKey: options.ca.keyPath },
      },
    },
    ...(options.ingress === null ? [] : ingressDocuments(options.ingress)),
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: SERVICE_HOST, namespace: MESH_NAMESPACE },
      spec: {
        hosts: [SERVICE_FQDN],
        location: 'MESH_INTERNAL',
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        resolution: 'STATIC',
        workloadSelector: { labels: { app: SERVICE_HOST } },
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: SERVICE_HOST, namespace: MESH_NAMESPACE },
      spec: { host: SERVICE_HOST, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: MESH_NAMESPACE },
      spec: { mtls: { mode: 'STRICT' } },
    },
    ...workload('client', 'bench-client', options.client.inbound),
    ...workload('server', SERVICE_HOST, options.server.inbound),
    sidecar('client', 'bench-client', options.client, options.appPort),
    sidecar('server', SERVICE_HOST, options.server, options.appPort),
  ];
}

/** Writes `<directory>/mesh.yaml` and returns its path. */
export async function writeMeshConfig(options: MeshConfigOptions): Promise<string> {
  const path = join(options.directory, 'mesh.yaml');
  await writeFile(path, meshDocuments(options).map((document) => stringify(document)).join('---\n'));
  return path;
}
