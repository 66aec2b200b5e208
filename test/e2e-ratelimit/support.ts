/** Config and clients shared by the rate-limit end-to-end tests (real gateways, a private redis-server). */
import http from 'node:http';

export interface RateLimitScenario {
  readonly adminPort: number;
  readonly gatewayPort: number;
  readonly upstreamPort: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
}

/**
 * An ingress routing `/api/…` (case-insensitively) and `/closed/…` to one upstream, with two Redis
 * limits keyed by route + client IP: `open-limit` (failureMode open, insurance 3) on api.example.com and
 * `closed-limit` (failureMode closed) on closed.example.com. The windows are a minute long: every burst of a
 * test falls in one window however slow the machine, and a test that needs a fresh counter uses another key.
 */
export function rateLimitYaml(scenario: RateLimitScenario): string {
  return `apiVersion: meshgate.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: istio-system }
spec:
  adminAddress: 127.0.0.1:${scenario.adminPort}
  debugHeaders: true
  numTrustedProxies: 0
  accessLog: { enabled: false }
  drainDuration: 1s
  # Far above what a loaded machine needs on loopback: decisions are never left to the failureMode by a slow run.
  redis: { url: "${scenario.redisUrl}", keyPrefix: "${scenario.keyPrefix}", connectTimeout: 10s, commandTimeout: 10s }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: ${scenario.gatewayPort}, name: http, protocol: HTTP }, bind: 127.0.0.1, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: app, namespace: istio-system }
spec:
  hosts: [app.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${scenario.upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: istio-system }
spec:
  hosts: [api.example.com, closed.example.com]
  gateways: [edge]
  http:
    - name: api
      match: [{ uri: { prefix: /api/ }, ignoreUriCase: true }]
      route: [{ destination: { host: app.internal } }]
    - name: other
      route: [{ destination: { host: app.internal } }]
---
apiVersion: meshgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: open-limit, namespace: istio-system }
spec:
  backend: redis
  failureMode: open
  rules:
    - match: { hosts: [api.example.com] }
      key: [{ route: {} }, { remoteIp: {} }]
      limits: [{ requests: 10, per: 1m, insuranceLimit: 3 }]
---
apiVersion: meshgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: closed-limit, namespace: istio-system }
spec:
  backend: redis
  failureMode: closed
  rules:
    - match: { hosts: [closed.example.com] }
      key: [{ route: {} }, { remoteIp: {} }]
      limits: [{ requests: 10, per: 1m }]
`;
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export function get(port: number, path: string, headers: Record<string, string>, agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, headers, agent, timeout: 30_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from 127.0.0.1:${port}${path}`)));
    request.on('error', reject);
  });
}

export const countOf = (replies: readonly Reply[], status: number): number => replies.filter((reply) => reply.status === status).length;

/** Sum of the samples of `metric` whose label set contains every `labels` pair. */
export function metricSum(text: string, metric: string, labels: Readonly<Record<string, string>>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const labelText = line.slice(metric.length + 1, line.lastIndexOf('}'));
    if (!Object.entries(labels).every(([name, value]) => labelText.includes(`${name}="${value}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
