/**
 * A small mesh for end-to-end tests, all on 127.0.0.1 with free ports: an ingress, product-service
 * (app + sidecar) and order-service (app + sidecar), identities self-issued from the test CA.
 */
import http from 'node:http';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import type { ConfigDir, RunningGateway, Upstream } from '../helpers/gateway.js';
import { makeTestPki } from '../helpers/pki.js';
import type { TestPki } from '../helpers/pki.js';

export interface MeshPorts {
  readonly ingress: number;
  readonly productInbound: number;
  readonly productOutbound: number;
  readonly orderInbound: number;
  readonly orderOutbound: number;
  readonly admins: readonly number[];
}

export interface MeshOptions {
  readonly peerAuthentication?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** MeshConfig drainDuration; default 1s. */
  readonly drainDuration?: string;
  /** MeshConfig connections (client-connection limits), as YAML flow mapping, e.g. `{ requestHeadersTimeout: 1s }`. */
  readonly connections?: string;
  readonly extraYaml?: string;
}

export function meshYaml(pki: TestPki, ports: MeshPorts, apps: { product: number; order: number }, options: MeshOptions = {}): string {
  return `
apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${ports.admins[0]}
  debugHeaders: true
  accessLog: { enabled: false }
  drainDuration: ${options.drainDuration ?? '1s'}
${options.connections === undefined ? '' : `  connections: ${options.connections}\n`}  outboundTrafficPolicy: { mode: ${options.outboundTrafficPolicy ?? 'ALLOW_ANY'} }
  certificates: { caCert: ${pki.ca.certPath}, caKey: ${pki.ca.keyPath} }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: ${ports.ingress}, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: edge, namespace: istio-system }
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
    - match: [{ uri: { prefix: /orders } }]
      route: [{ destination: { host: order-service.my-app.svc.cluster.local } }]
    - route: [{ destination: { host: product-service.my-app.svc.cluster.local } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: product-service, namespace: my-app }
spec:
  host: product-service
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: my-app }
spec: { mtls: { mode: ${options.peerAuthentication ?? 'STRICT'} } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: product-service-policy, namespace: my-app }
spec:
  selector: { matchLabels: { app: product-service } }
  rules:
    - from: [{ source: { principals: [cluster.local/ns/my-app/sa/order-service] } }]
      to: [{ operation: { methods: [GET, POST], paths: [/api/products/*] } }]
    - to: [{ operation: { methods: [GET], paths: [/health/*] } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: product-service, namespace: my-app }
spec:
  hosts: [product-service.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: product-service } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: order-service, namespace: my-app }
spec:
  hosts: [order-service.my-app.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: order-service } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: product, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { http: ${ports.productInbound} }
  labels: { app: product-service, version: v1 }
  serviceAccount: product-service
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: order, namespace: my-app }
spec:
  address: 127.0.0.1
  ports: { http: ${ports.orderInbound} }
  labels: { app: order-service }
  serviceAccount: order-service
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: product, namespace: my-app }
spec:
  workloadSelector: { labels: { app: product-service } }
  ingress: [{ port: { number: ${ports.productInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${apps.product}" }]
  egress: [{ port: { number: ${ports.productOutbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, hosts: ["*/*"] }]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: order, namespace: my-app }
spec:
  workloadSelector: { labels: { app: order-service } }
  ingress: [{ port: { number: ${ports.orderInbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:${apps.order}" }]
  egress: [{ port: { number: ${ports.orderOutbound}, protocol: HTTP, name: http }, bind: 127.0.0.1, hosts: ["*/*"] }]
${options.extraYaml ?? ''}`;
}

export interface Mesh {
  readonly pki: TestPki;
  readonly ports: MeshPorts;
  readonly productApp: Upstream;
  readonly orderApp: Upstream;
  readonly config: ConfigDir;
  readonly ingress: RunningGateway;
  readonly productSidecar: RunningGateway;
  readonly orderSidecar: RunningGateway;
  close(): Promise<void>;
}

/** Free ports for the ingress, both sidecars and the three admin listeners. */
export async function allocateMeshPorts(): Promise<MeshPorts> {
  return {
    ingress: await freePort(),
    productInbound: await freePort(),
    productOutbound: await freePort(),
    orderInbound: await freePort(),
    orderOutbound: await freePort(),
    admins: [await freePort(), await freePort(), await freePort()],
  };
}

export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const pki = await makeTestPki();
  const ports = await allocateMeshPorts();
  const productApp = await startUpstream(undefined, 'product-service');
  const orderApp = await startUpstream(undefined, 'order-service');
  const config = await configDir(meshYaml(pki, ports, { product: productApp.port, order: orderApp.port }, options));
  const ingress = await startGateway(config.file);
  const productSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/product', adminAddress: `127.0.0.1:${ports.admins[1]}` });
  const orderSidecar = await startGateway(config.file, { mode: 'sidecar', workload: 'my-app/order', adminAddress: `127.0.0.1:${ports.admins[2]}` });
  return {
    pki,
    ports,
    productApp,
    orderApp,
    config,
    ingress,
    productSidecar,
    orderSidecar,
    async close() {
      await Promise.all([ingress.stop(), productSidecar.stop(), orderSidecar.stop()]);
      await Promise.all([productApp.close(), orderApp.close()]);
      await config.remove();
    },
  };
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A plain HTTP GET on 127.0.0.1 over a fresh connection. */
export function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('error', reject);
  });
}
