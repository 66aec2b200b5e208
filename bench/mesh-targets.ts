/**
 * The `mesh` suite's targets: the sidecar hop and the ingress → sidecar hop, each proxy reported
 * apart (CPU per request, peak and idle RSS).
 *
 * Pinning follows bench/README.md#method for mesh configs: the client-side proxy (sidecar A, or
 * the ingress) shares CPU 0 with wrk, the "client app"; the server-side sidecar B shares CPU 1 with
 * the upstream, the app it fronts.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HOT_HOST, HOT_PATH } from './config.js';
import { CLIENT_WORKLOAD, MESH_NAMESPACE, MESH_TRUST_DOMAIN, SERVER_WORKLOAD, SERVICE_HOST, meshCa, writeMeshConfig, writeWorkloadCertificate } from './mesh-config.js';
import type { MeshConfigOptions, SidecarPorts } from './mesh-config.js';
import { treeRssBytes } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU } from './processes.js';
import type { ChildService } from './processes.js';
import { freePort } from '../test/helpers/ports.js';
import { startBenchScript, startMeshgate, startUpstream } from './targets.js';
import type { BenchTarget, ComponentProcess, TargetContext } from './targets.js';

export const MESH_PAIR = 'mesh-sidecar-pair';
export const INGRESS_TO_SIDECAR = 'ingress-to-sidecar';
export const NODE_FLOOR_PAIR = 'node-floor-pair';
export const SIDECAR_A_LABEL = 'sidecar A (client side, CPU 0)';
export const SIDECAR_B_LABEL = 'sidecar B (server side, CPU 1)';
export const INGRESS_LABEL = 'ingress (CPU 0)';

async function sidecarPorts(): Promise<SidecarPorts> {
  return { inbound: await freePort(), outbound: await freePort(), admin: await freePort() };
}

export async function startSidecar(
  context: TargetContext,
  name: string,
  configPath: string,
  workload: string,
  admin: number,
  cpu: number,
  build: { readonly cli?: string; readonly nodeArgs?: readonly string[] } = {},
): Promise<ChildService> {
  return startMeshgate(context, name, configPath, admin, 'sidecar', {
    cpu,
    ...build,
    extraArgs: ['--workload', workload, '--admin-address', `127.0.0.1:${admin}`],
  });
}

export function component(label: string, service: ChildService): ComponentProcess {
  return { label, pid: service.pid, idleRssBytes: treeRssBytes(service.pid) };
}

export interface MeshLayout {
  readonly configPath: string;
  readonly options: MeshConfigOptions;
}

/** Writes the shared mesh file for a target whose app is `appPort`. */
export async function meshLayout(context: TargetContext, name: string, appPort: number, withIngress: boolean): Promise<MeshLayout> {
  const directory = join(context.workDirectory, name);
  await mkdir(directory, { recursive: true });
  const options: MeshConfigOptions = {
    directory,
    ca: await meshCa(context.workDirectory),
    appPort,
    client: await sidecarPorts(),
    server: await sidecarPorts(),
    ingress: withIngress ? { listenerPort: await freePort(), adminPort: await freePort(), tls: context.serverCertificate } : null,
  };
  return { configPath: await writeMeshConfig(options), options };
}

const sidecarPair: BenchTarget = {
  name: MESH_PAIR,
  description: `wrk → sidecar A egress (HTTP, Host: ${SERVICE_HOST}) → mTLS ISTIO_MUTUAL → sidecar B inbound → upstream; STRICT`,
  async start(context) {
    const upstream = await startUpstream(context);
    const { configPath, options } = await meshLayout(context, MESH_PAIR, upstream.ports[0], false);
    // Each idle RSS is read as soon as that proxy is ready, before any request reaches it.
    const serverSidecar = await startSidecar(context, `${MESH_PAIR}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU);
    const serverComponent = component(SIDECAR_B_LABEL, serverSidecar);
    const clientSidecar = await startSidecar(context, `${MESH_PAIR}-a`, configPath, CLIENT_WORKLOAD, options.client.admin, LOAD_GENERATOR_CPU);
    const clientComponent = component(SIDECAR_A_LABEL, clientSidecar);
    return {
      url: `http://127.0.0.1:${options.client.outbound}${HOT_PATH}`,
      host: SERVICE_HOST,
      proxyPid: null,
      upstreamPid: upstream.service.pid,
      components: [clientComponent, serverComponent],
      stop: () => context.processes.stop([clientSidecar, serverSidecar, upstream.service]),
    };
  },
};

const ingressToSidecar: BenchTarget = {
  name: INGRESS_TO_SIDECAR,
  description: `wrk → ingress (HTTPS, TLS 1.3 keep-alive) → mTLS → sidecar B inbound → upstream; STRICT`,
  async start(context) {
    const upstream = await startUpstream(context);
    const { configPath, options } = await meshLayout(context, INGRESS_TO_SIDECAR, upstream.ports[0], true);
    const ingressOptions = options.ingress;
    if (ingressOptions === null) throw new Error('ingress layout missing');
    const serverSidecar = await startSidecar(context, `${INGRESS_TO_SIDECAR}-b`, configPath, SERVER_WORKLOAD, options.server.admin, SERVICE_CPU);
    const serverComponent = component(SIDECAR_B_LABEL, serverSidecar);
    const ingress = await startMeshgate(context, `${INGRESS_TO_SIDECAR}-ingress`, configPath, ingressOptions.adminPort, 'ingress', { cpu: LOAD_GENERATOR_CPU });
    const ingressComponent = component(INGRESS_LABEL, ingress);
    return {
      url: `https://127.0.0.1:${ingressOptions.listenerPort}${HOT_PATH}`,
      host: HOT_HOST,
      proxyPid: null,
      upstreamPid: upstream.service.pid,
      components: [ingressComponent, serverComponent],
      stop: () => context.processes.stop([ingress, serverSidecar, upstream.service]),
    };
  },
};

/**
 * What Node.js alone costs the sidecar pair's path: node-floor-proxy.ts in sidecar A's place (HTTP in,
 * mTLS out, CPU 0) and in sidecar B's (mTLS in with a required client certificate, HTTP to the app,
 * CPU 1), each with a mesh SVID from the run's CA; no routing, policy, metrics or identity beyond
 * the certificate checks. The pair's bar is read against it.
 */
const nodeFloorPair: BenchTarget = {
  name: NODE_FLOOR_PAIR,
  description: 'wrk → node:http + undici (mTLS) → node:https (client certificate required) + undici → upstream: what Node.js alone costs the sidecar pair',
  async start(context) {
    const upstream = await startUpstream(context);
    const directory = join(context.workDirectory, NODE_FLOOR_PAIR);
    await mkdir(directory, { recursive: true });
    const ca = await meshCa(context.workDirectory);
    const serverIdentity = await writeWorkloadCertificate(directory, ca, 'server');
    const clientIdentity = await writeWorkloadCertificate(directory, ca, 'client');
    const server = await startBenchScript(context, 'node-floor-proxy', [
      '--upstream', `http://127.0.0.1:${upstream.ports[0]}`,
      '--cert', serverIdentity.chainPath, '--key', serverIdentity.keyPath, '--ca', ca.certPath,
    ]);
    const client = await startBenchScript(
      context,
      'node-floor-proxy',
      [
        '--upstream', `https://127.0.0.1:${server.ports[0]}`,
        '--client-cert', clientIdentity.chainPath, '--client-key', clientIdentity.keyPath, '--ca', ca.certPath,
        '--upstream-identity', `spiffe://${MESH_TRUST_DOMAIN}/ns/${MESH_NAMESPACE}/sa/server`,
      ],
      LOAD_GENERATOR_CPU,
    );
    return {
      url: `http://127.0.0.1:${client.ports[0]}${HOT_PATH}`,
      host: null,
      proxyPid: null,
      upstreamPid: upstream.service.pid,
      components: [component(`${NODE_FLOOR_PAIR} A (CPU 0)`, client.service), component(`${NODE_FLOOR_PAIR} B (CPU 1)`, server.service)],
      stop: () => context.processes.stop([client.service, server.service, upstream.service]),
    };
  },
};

export const MESH_TARGETS: readonly BenchTarget[] = [sidecarPair, ingressToSidecar, nodeFloorPair];
