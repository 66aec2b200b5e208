/**
 * A TCP mesh on 127.0.0.1 for the L4 tests: a private redis-server behind the `cache` workload's
 * sidecar (ingress port of protocol TCP), called by the `client` workload through its sidecar's egress
 * TCP port. The ServiceEntry declares the egress port as the service port (Istio identifies TCP traffic
 * without a VIP by its port), and the WorkloadEntry maps it to the cache sidecar's inbound port.
 */
import net from 'node:net';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { TestPki } from '../helpers/pki.js';
import { startPrivateRedis } from '../helpers/redis-server.js';
import type { PrivateRedis } from '../helpers/redis-server.js';

export interface TcpMeshPorts {
  /** The client sidecar's egress TCP port = the redis service port. */
  readonly egress: number;
  readonly cacheInbound: number;
  readonly cacheHttpInbound: number;
  readonly clientInbound: number;
  readonly admins: readonly [number, number];
}

export interface TcpMeshOptions {
  readonly peerAuthentication?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  readonly extraYaml?: (ports: TcpMeshPorts) => string;
  readonly accessLogPath?: string;
  /** MeshConfig `metrics.tcpReportingInterval` (default 15s). */
  readonly tcpReportingInterval?: string;
}

export function tcpMeshYaml(pki: TestPki, ports: TcpMeshPorts, redisPort: number, httpAppPort: number, options: TcpMeshOptions): string {
  return `
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  debugHeaders: true
  accessLog: ${options.accessLogPath === undefined ? '{ enabled: false }' : `{ enabled: true, path: ${options.accessLogPath} }`}
  drainDuration: 1s
  metrics: { tcpReportingInterval: ${options.tcpReportingInterval ?? '15s'} }
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: my-app }
spec: { mtls: { mode: ${options.peerAuthentication ?? 'STRICT'} } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: redis, namespace: my-app }
spec:
  hosts: [redis.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: ${ports.egress}, name: tcp-redis, protocol: TCP }]
  resolution: STATIC
  workloadSelector: { labels: { app: cache } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: cache, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { tcp-redis: ${ports.cacheInbound} }
  labels: { app: cache, version: v1 }
  serviceAccount: cache
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: my-app }
spec:
  address: 127.0.0.1
  labels: { app: client }
  serviceAccount: client
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: cache, namespace: my-app }
spec:
  workloadSelector: { labels: { app: cache } }
  ingress:
    - { port: { number: ${ports.cacheHttpInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${httpAppPort}" }
    - { port: { number: ${ports.cacheInbound}, protocol: TCP, name: tcp-redis }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${redisPort}" }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: my-app }
spec:
  workloadSelector: { labels: { app: client } }
  ingress: [{ port: { number: ${ports.clientInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:1" }]
  egress: [{ port: { number: ${ports.egress}, protocol: TCP, name: tcp-redis }, bind: 127.0.0.1, hosts: ["*/*"] }]
${options.extraYaml?.(ports) ?? ''}`;
}

export interface TcpMesh {
  readonly pki: TestPki;
  readonly ports: TcpMeshPorts;
  readonly redis: PrivateRedis;
  readonly httpApp: net.Server & { readonly port: number };
  readonly config: ConfigDir;
  readonly client: RunningGateway;
  readonly cache: RunningGateway;
  close(): Promise<void>;
}

/** A plain-HTTP app that answers every request with its name (the cache workload's HTTP port). */
async function startHttpApp(): Promise<net.Server & { readonly port: number }> {
  const { createServer } = await import('node:http');
  const server = createServer((_request, response) => response.end('cache-http'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return Object.assign(server as unknown as net.Server, { port: address.port });
}

export async function startTcpMesh(options: TcpMeshOptions = {}): Promise<TcpMesh> {
  const pki = await makeTestPki();
  const ports: TcpMeshPorts = {
    egress: await freePort(),
    cacheInbound: await freePort(),
    cacheHttpInbound: await freePort(),
    clientInbound: await freePort(),
    admins: [await freePort(), await freePort()],
  };
  const redis = await startPrivateRedis();
  const httpApp = await startHttpApp();
  const config = await configDir(tcpMeshYaml(pki, ports, redis.port, httpApp.port, options));
  const cache = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/cache', adminAddress: `127.0.0.1:${ports.admins[0]}` });
  const client = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/client', adminAddress: `127.0.0.1:${ports.admins[1]}` });
  return {
    pki,
    ports,
    redis,
    httpApp,
    config,
    client,
    cache,
    async close() {
      await Promise.all([client.stop(), cache.stop()]);
      await new Promise<void>((resolve) => httpApp.close(() => resolve()));
      await redis.dispose();
      await config.remove();
    },
  };
}

export interface RawOutcome {
  /** Everything the server sent before the connection closed. */
  readonly received: string;
  /** Whether the connection was closed (by either side) before `timeoutMs`. */
  readonly closed: boolean;
}

/** Connects with a raw client, writes `payload`, and collects what comes back until the connection closes or `timeoutMs` passes. */
export function rawExchange(port: number, payload: string, timeoutMs = 5_000): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received, closed: false });
    }, timeoutMs);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, closed: true });
    });
  });
}

/** A plain TCP server that greets with its name, then echoes: which backend a connection reached is its first line. */
export interface Banner {
  readonly port: number;
  readonly server: net.Server;
}

export async function startBanner(name: string): Promise<Banner> {
  const server = net.createServer((socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, server };
}
