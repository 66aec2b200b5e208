/**
 * Shared pieces of the ingress end-to-end tests: YAML builders for the resources every scenario
 * needs, a gateway started from YAML text and torn down with the test, and small HTTP clients that
 * report exactly what came back over the socket.
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { connect } from 'node:net';
import type { Test } from 'tap';
import type { TLSSocket } from 'node:tls';
import { configDir, freePort, startGateway } from '../helpers/gateway.js';
import type { RunningGateway, StartGatewayOptions } from '../helpers/gateway.js';

export interface EndpointSpec {
  readonly port: number;
  readonly labels?: Readonly<Record<string, string>>;
}

/** MeshConfig for tests: admin on a free port, reasons in headers, no access log on stdout. */
export function meshConfigYaml(adminPort: number, extra = ''): string {
  return `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  adminAddress: 127.0.0.1:${adminPort}
  debugHeaders: true
  accessLog:
    enabled: false
${extra}`;
}

/** A Gateway in istio-system serving `servers` (YAML list items, already indented by 4). */
export function gatewayYaml(name: string, servers: string): string {
  return `---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: ${name}
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
${servers}`;
}

export function httpServerYaml(port: number, hosts: readonly string[], tls = ''): string {
  return `    - port: {number: ${port}, name: http-${port}, protocol: HTTP}
      hosts: [${hosts.map((h) => `"${h}"`).join(', ')}]
${tls}`;
}

/** A STATIC ServiceEntry on loopback with one HTTP port 80 mapped to each endpoint's port. */
export function serviceEntryYaml(name: string, host: string, endpoints: readonly EndpointSpec[]): string {
  const items = endpoints
    .map((endpoint) => {
      const labels = endpoint.labels === undefined ? '' : `\n      labels: {${Object.entries(endpoint.labels).map(([k, v]) => `${k}: "${v}"`).join(', ')}}`;
      return `    - address: 127.0.0.1\n      ports: {http: ${endpoint.port}}${labels}`;
    })
    .join('\n');
  return `---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: ${name}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - {number: 80, name: http, protocol: HTTP}
  endpoints:
${items}
`;
}

/** A VirtualService bound to `gateway` (istio-system), `http` being the YAML list items indented by 4. */
export function virtualServiceYaml(name: string, hosts: readonly string[], gateway: string, httpRules: string): string {
  return `---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [${hosts.map((h) => `"${h}"`).join(', ')}]
  gateways: [istio-system/${gateway}]
  http:
${httpRules}`;
}

/** Writes `yaml` to a fresh directory, starts an in-process gateway on it and stops both at teardown. */
export async function startScenario(t: Test, yaml: string, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const dir = await configDir(yaml);
  t.teardown(() => dir.remove());
  const gateway = await startGateway(dir.file, options);
  t.teardown(() => gateway.stop());
  return gateway;
}

/** Admin port + ports for `count` listeners, all free a moment ago. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  return ports;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  readonly agent?: http.Agent | false;
  readonly timeoutMs?: number;
}

/** A bound for a broken run, not a measurement: on a loaded machine (load 25 on 2 cores) answers take seconds. */
const DEFAULT_TIMEOUT_MS = 60_000;

/** One HTTP/1.1 request to 127.0.0.1:`port`; the whole response body is read as text. */
export function request(port: number, path: string, options: RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: options.host ?? 'example.com', ...options.headers };
    const req = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: options.agent ?? false, timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no response within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface HttpsRequestOptions extends RequestOptions {
  readonly servername: string;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  readonly minVersion?: 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export function httpsRequest(port: number, path: string, options: HttpsRequestOptions): Promise<HttpResult & { readonly peerSubjectAltName: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { host: options.host ?? options.servername, ...options.headers },
        servername: options.servername,
        ca: options.ca,
        ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
        ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
        ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
        agent: false,
        timeout: options.timeoutMs ?? 5000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peerSubjectAltName = socket.getPeerCertificate().subjectaltname ?? '';
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peerSubjectAltName }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no response within the timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Writes raw bytes on a fresh connection and returns everything the gateway sent back until it closed
 * the connection or `quietMs` passed without data (a keep-alive connection stays open).
 */
export function rawExchange(port: number, bytes: string | Buffer, quietMs = 300): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let timer = setTimeout(() => finish(), 5000);
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(timer);
      timer = setTimeout(finish, quietMs);
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (error) => {
      if (chunks.length > 0) finish();
      else {
        clearTimeout(timer);
        reject(error);
      }
    });
  });
}

/** Status code of the first response in a raw exchange, or 0 when the gateway answered nothing. */
export function rawStatus(response: string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(response);
  return match === null ? 0 : Number(match[1]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
