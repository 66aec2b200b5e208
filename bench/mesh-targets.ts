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
import { CLIENT_WORKLOAD, SERVER_WORKLOAD, SERVICE_HOST, meshCa, writeMeshConfig } from './mesh-config.js';
import type { MeshConfigOptions, SidecarPorts } from './mesh-config.js';
import { treeRssBytes } from './proc-stats.js';
import { LOAD_GENERATOR_CPU, SERVICE_CPU } from './processes.js';
import type { ChildService } from './processes.js';
import { freePort } from '../test/helpers/ports.js';
import { startMeshgate, startUpstream } from './targets.js';
import type { BenchTarget, ComponentProcess, TargetContext } from './targets.js';

export const MESH_PAIR = 'mesh-sidecar-pair';
export const INGRESS_TO_SIDECAR = 'ingress-to-sidecar';
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

export const MESH_TARGETS: readonly BenchTarget[] = [sidecarPair, ingressToSidecar];
