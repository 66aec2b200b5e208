/**
 * Generates the meshgate configs the benchmark runs: a realistic route table rather than one
 * catch-all route, so the numbers include host selection and walking a first-match rule list.
 *
 * - 20 service hosts × 4 rules (prefix + header, RE2 regex, exact + method, prefix + header presence);
 * - the hot host `api.bench.local` with 24 rules that do not match the hot request, then the hot route
 *   (`/api/products`, canary 90/10 across subsets v1/v2 with the seed's retries and timeout), then a
 *   catch-all: 106 rules in total;
 * - a DestinationRule with subsets by `version` label, a STATIC ServiceEntry whose two endpoints are the
 *   upstream's two listeners (labels v1 / v2), one Gateway server (HTTP, or HTTPS SIMPLE with
 *   certificates issued by gateway/identity/ca.ts), a MeshConfig with the access log off.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createRootCa, issueServerCertificate } from '../gateway/identity/ca.js';

export const HOT_HOST = 'api.bench.local';
export const HOT_PATH = '/api/products/42';
export const UPSTREAM_HOST = 'bench-upstream.local';
export const GATEWAY_NAME = 'bench-gateway';
export const SERVICE_HOST_COUNT = 20;
export const HOT_HOST_DECOY_RULES = 24;
export const CANARY_WEIGHTS = { v1: 90, v2: 10 } as const;

export interface ServerCertificateFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface IngressConfigOptions {
  readonly directory: string;
  /** The upstream's two listeners: endpoint v1 and endpoint v2 of the canary. */
  readonly upstreamPorts: readonly [number, number];
  readonly listenerPort: number;
  readonly adminPort: number;
  /** null = plain HTTP server; otherwise an HTTPS SIMPLE server with these files. */
  readonly tls: ServerCertificateFiles | null;
  /** The table's size (default: the 106-rule table described above). */
  readonly table?: RouteTableShape;
}

/** How many rules surround the hot route: `serviceHosts` × `rulesPerServiceHost`, plus the hot host's decoys. */
export interface RouteTableShape {
  readonly serviceHosts: number;
  /** 4 to 10: the four shapes of serviceRules, then plain prefix rules. */
  readonly rulesPerServiceHost: number;
  readonly hotHostDecoys: number;
}

export const DEFAULT_TABLE: RouteTableShape = { serviceHosts: SERVICE_HOST_COUNT, rulesPerServiceHost: 4, hotHostDecoys: HOT_HOST_DECOY_RULES };

export type Document = Record<string, unknown>;
type HttpRoute = Record<string, unknown>;

function destination(subset: 'v1' | 'v2' | null, weight?: number): Record<string, unknown> {
  const target: Record<string, unknown> = { host: UPSTREAM_HOST };
  if (subset !== null) target.subset = subset;
  return weight === undefined ? { destination: target } : { destination: target, weight };
}

function virtualService(name: string, host: string, http: HttpRoute[]): Document {
  return {
    apiVersion: 'networking.istio.io/v1beta1',
    kind: 'VirtualService',
    metadata: { name },
    spec: { hosts: [host], gateways: [GATEWAY_NAME], http },
  };
}

function serviceRules(index: number, count: number): HttpRoute[] {
  const id = String(index).padStart(2, '0');
  const extra = Array.from({ length: Math.max(0, count - 4) }, (_, rule) => ({
    name: `svc-${id}-area-${rule}`,
    match: [{ uri: { prefix: `/svc-${id}/area-${rule}/` } }],
    route: [destination(rule % 2 === 0 ? 'v1' : 'v2')],
  }));
  return [
    ...extra,
    {
      name: `svc-${id}-tenant`,
      match: [{ uri: { prefix: `/svc-${id}/v1/` }, headers: { 'x-tenant': { exact: `tenant-${id}` } } }],
      route: [destination('v1')],
    },
    {
      name: `svc-${id}-items`,
      match: [{ uri: { regex: `/svc-${id}/items/[0-9]+(/reviews)?` } }],
      route: [destination(null)],
      timeout: '5s',
    },
    {
      name: `svc-${id}-health`,
      match: [{ uri: { exact: `/svc-${id}/health` }, method: { exact: 'GET' } }],
      route: [destination('v1')],
    },
    {
      name: `svc-${id}-debug`,
      match: [{ uri: { prefix: `/svc-${id}/` }, headers: { 'x-debug': {} } }],
      route: [destination('v2')],
    },
  ];
}

/** Rules on the hot host that the hot request (`GET /api/products/42`, no special headers) must walk past. */
function decoyRules(count: number): HttpRoute[] {
  const rules: HttpRoute[] = [];
  for (let index = 0; index < count; index += 1) {
    const shape = index % 4;
    const match =
      shape === 0
        ? { uri: { prefix: `/api/orders/${index}` } }
        : shape === 1
          ? { uri: { regex: `/api/users/[0-9]+/carts/${index}` } }
          : shape === 2
            ? { uri: { prefix: '/api/products' }, headers: { 'x-canary-cohort': { exact: `cohort-${index}` } } }
            : { uri: { prefix: '/api/' }, queryParams: { experiment: { exact: `exp-${index}` } } };
    rules.push({ name: `api-decoy-${index}`, match: [match], route: [destination(index % 2 === 0 ? 'v1' : 'v2')] });
  }
  return rules;
}

function hotHostRules(decoys: number): HttpRoute[] {
  return [
    ...decoyRules(decoys),
    {
      name: 'api-products-canary',
      match: [{ uri: { prefix: '/api/products' } }],
      route: [destination('v1', CANARY_WEIGHTS.v1), destination('v2', CANARY_WEIGHTS.v2)],
      retries: { attempts: 3, perTryTimeout: '2s', retryOn: 'connect-failure,refused-stream,5xx' },
      timeout: '10s',
    },
    { name: 'api-default', route: [destination('v1')] },
  ];
}

/** Number of VirtualService http rules a table of this shape holds. */
export function routeRuleCount(table: RouteTableShape): number {
  return table.serviceHosts * Math.max(4, table.rulesPerServiceHost) + hotHostRules(table.hotHostDecoys).length;
}

export const ROUTE_RULE_COUNT = routeRuleCount(DEFAULT_TABLE);

function gatewayServer(options: IngressConfigOptions): Record<string, unknown> {
  if (options.tls === null) {
    return { port: { number: options.listenerPort, name: 'http', protocol: 'HTTP' }, hosts: ['*'] };
  }
  return {
    port: { number: options.listenerPort, name: 'https', protocol: 'HTTPS' },
    hosts: ['*'],
    tls: { mode: 'SIMPLE', serverCertificate: options.tls.certPath, privateKey: options.tls.keyPath },
  };
}

export function ingressDocuments(options: IngressConfigOptions): Document[] {
  const [v1Port, v2Port] = options.upstreamPorts;
  const table = options.table ?? DEFAULT_TABLE;
  return [
    {
      apiVersion: 'meshgate.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh' },
      spec: { adminAddress: `127.0.0.1:${options.adminPort}`, accessLog: { enabled: false } },
    },
    {
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'Gateway',
      metadata: { name: GATEWAY_NAME },
      spec: { selector: { istio: 'ingressgateway' }, servers: [gatewayServer(options)] },
    },
    {
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'ServiceEntry',
      metadata: { name: 'bench-upstream' },
      spec: {
        hosts: [UPSTREAM_HOST],
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        resolution: 'STATIC',
        endpoints: [
          { address: '127.0.0.1', ports: { http: v1Port }, labels: { version: 'v1' } },
          { address: '127.0.0.1', ports: { http: v2Port }, labels: { version: 'v2' } },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'DestinationRule',
      metadata: { name: 'bench-upstream' },
      spec: {
        host: UPSTREAM_HOST,
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
      },
    },
    virtualService('api', HOT_HOST, hotHostRules(table.hotHostDecoys)),
    ...Array.from({ length: table.serviceHosts }, (_, index) => {
      const id = String(index).padStart(2, '0');
      return virtualService(`svc-${id}`, `svc-${id}.bench.local`, serviceRules(index, table.rulesPerServiceHost));
    }),
  ];
}

/** Writes `<directory>/meshgate-<http|https>.yaml` and returns its path. */
export async function writeIngressConfig(options: IngressConfigOptions): Promise<string> {
  const path = join(options.directory, options.tls === null ? 'meshgate-http.yaml' : 'meshgate-https.yaml');
  const text = ingressDocuments(options)
    .map((document) => stringify(document))
    .join('---\n');
  await writeFile(path, text);
  return path;
}

/** A throwaway EC P-256 root and a server certificate for the hot host, 127.0.0.1 and localhost. */
export async function writeServerCertificate(directory: string): Promise<ServerCertificateFiles> {
  const ca = await createRootCa({ trustDomain: 'bench.local' });
  const server = await issueServerCertificate({ ca, dnsNames: [HOT_HOST, 'localhost'], ipAddresses: ['127.0.0.1'] });
  const files = { certPath: join(directory, 'server-chain.pem'), keyPath: join(directory, 'server-key.pem') };
  await writeFile(files.certPath, server.chainPem);
  await writeFile(files.keyPath, server.keyPem, { mode: 0o600 });
  return files;
}
