/**
 * A compiled config rendered as plain, deterministic data for golden tests and reviews: listeners,
 * route tables, clusters with their resolved policy, the service registry and the sidecar plan. Paths
 * under the config directory become relative and nothing time-dependent is included.
 *
 * Route tables are closures (compiled once for the hot path), so they are described by asking them:
 * for each VirtualService rule a request is synthesised from its first match block and the table's
 * answer — the route it picked and what that route does — is recorded next to the match it came from.
 */
import type { HTTPMatchRequest, StringMatch, VirtualServiceSpec } from '../config/kinds/virtual-service.js';
import type { Resource } from '../config/resource.js';
import type { CompiledRoute, HeaderOps, MutableHeaders, RouteRequest } from '../router/types.js';
import type { HostRouteTable } from '../router/table.js';
import type { RegistryEndpoint } from '../upstream/registry.js';
import type { RetryPolicy } from '../router/retry-policy.js';
import type { CompiledConfig } from './snapshot.js';

type Plain = null | boolean | number | string | Plain[] | { [key: string]: Plain };

/** Weighted picks are sampled at this many evenly spaced points to recover the compiled shares. */
const WEIGHT_SAMPLES = 1000;

/** Sets become sorted arrays, Maps objects, functions and undefined vanish; strings lose `baseDir`. */
function plain(value: unknown, baseDir: string): Plain | undefined {
  if (value === null) return null;
  if (typeof value === 'string') return value.split(baseDir).join('.');
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value !== 'object') return undefined;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Set) return [...value].map((v) => plain(v, baseDir) ?? null).sort((a, b) => String(a).localeCompare(String(b)));
  if (Array.isArray(value)) return value.map((v) => plain(v, baseDir) ?? null);
  const entries: [string, unknown][] = value instanceof Map ? [...value].map(([k, v]) => [String(k), v]) : Object.entries(value);
  const result: { [key: string]: Plain } = {};
  for (const [key, inner] of entries) {
    const converted = plain(inner, baseDir);
    if (converted !== undefined) result[key] = converted;
  }
  return result;
}

function headerEffect(ops: HeaderOps): MutableHeaders | null {
  if (ops.isEmpty) return null;
  const headers: MutableHeaders = {};
  ops.apply(headers);
  return headers;
}

/** A value a StringMatch accepts, or null when none can be written down (regex). */
function sample(match: StringMatch | undefined, fallback: string): string | null {
  if (match === undefined) return fallback;
  if (match.exact !== undefined) return match.exact;
  if (match.prefix !== undefined) return match.prefix;
  return match.regex === undefined ? fallback : null;
}

function probeHost(host: string): string {
  if (host === '*') return 'any.probe.invalid';
  return host.startsWith('*.') ? `probe${host.slice(1)}` : host;
}

function probeRequest(match: HTTPMatchRequest | undefined, host: string, port: number): RouteRequest | null {
  const path = sample(match?.uri, '/');
  const method = sample(match?.method, 'GET');
  const authority = sample(match?.authority, host);
  if (path === null || method === null || authority === null) return null;
  const headers: Record<string, string> = { host: authority };
  for (const [name, condition] of Object.entries(match?.headers ?? {})) {
    const value = sample(condition, 'present');
    if (value === null || name.startsWith('@')) return null;
    headers[name] = value;
  }
  const query: string[] = [];
  for (const [name, condition] of Object.entries(match?.queryParams ?? {})) {
    const value = sample(condition, '');
    if (value === null) return null;
    query.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  const bare = authority.replace(/:\d+$/, '');
  return { method, authority, host: bare, path, query: query.join('&'), scheme: 'http', port: match?.port ?? port, headers };
}

function describeAction(route: CompiledRoute, request: RouteRequest): unknown {
  const { action } = route;
  if (action.kind === 'redirect') return { kind: 'redirect', status: action.status, location: action.location(request) };
  if (action.kind === 'direct-response') return { kind: 'direct-response', status: action.status, body: action.body };
  const shares = new Map<number, number>();
  for (let i = 0; i < WEIGHT_SAMPLES; i++) {
    const index = action.destinations.indexOf(action.pick((i + 0.5) / WEIGHT_SAMPLES));
    shares.set(index, (shares.get(index) ?? 0) + 1);
  }
  return {
    kind: 'forward',
    destinations: action.destinations.map((d, index) => ({
      to: `${d.host}${d.port === undefined ? '' : `:${d.port}`}${d.subset === undefined ? '' : ` subset ${d.subset}`}`,
      percent: ((shares.get(index) ?? 0) * 100) / WEIGHT_SAMPLES,
      ...(d.requestHeaders.isEmpty ? {} : { requestHeaders: headerEffect(d.requestHeaders) }),
      ...(d.responseHeaders.isEmpty ? {} : { responseHeaders: headerEffect(d.responseHeaders) }),
    })),
  };
}

function retrySummary(retry: RetryPolicy): string {
  if (retry.attempts === 0) return 'none';
  const codes = retry.retriableStatusCodes.size === 0 ? '' : ` [${[...retry.retriableStatusCodes].sort().join(',')}]`;
  const perTry = retry.perTryTimeoutMs === 0 ? '' : `, ${retry.perTryTimeoutMs} ms per try`;
  return `${retry.attempts} on ${[...retry.retryOn].sort().join(',')}${codes}${perTry}`;
}

/** Only what the route sets: absent fields are the defaults. */
function describeRoute(route: CompiledRoute, request: RouteRequest): unknown {
  const path = route.rewrite.path?.(request) ?? null;
  return {
    route: route.name,
    action: describeAction(route, request),
    ...(path === null ? {} : { rewritePath: path }),
    ...(route.rewrite.authority === null ? {} : { rewriteAuthority: route.rewrite.authority }),
    ...(route.requestHeaders.isEmpty ? {} : { requestHeaders: headerEffect(route.requestHeaders) }),
    ...(route.responseHeaders.isEmpty ? {} : { responseHeaders: headerEffect(route.responseHeaders) }),
    ...(route.timeoutMs === 0 ? {} : { timeoutMs: route.timeoutMs }),
    retry: retrySummary(route.retry),
    ...(route.fault === null ? {} : { fault: route.fault }),
    ...(route.mirrors.length === 0 ? {} : { mirrors: route.mirrors }),
    ...(route.cors === null ? {} : { cors: true }),
  };
}

function requestLine(request: RouteRequest): string {
  const headers = Object.entries(request.headers)
    .filter(([name]) => name !== 'host')
    .map(([name, value]) => ` ${name}=${String(value)}`)
    .join('');
  return `${request.method} ${request.authority}${request.path}${request.query === '' ? '' : `?${request.query}`}${headers}`;
}

function describeTable(table: HostRouteTable, virtualServices: readonly Resource<VirtualServiceSpec>[], port: number): unknown[] {
  const probes: unknown[] = [];
  for (const vs of virtualServices) {
    for (const host of vs.spec.hosts ?? []) {
      for (const [ruleIndex, rule] of (vs.spec.http ?? []).entries()) {
        const match = rule.match?.[0];
        const request = probeRequest(match, probeHost(host), port);
        const probe = { virtualService: `${vs.metadata.namespace}/${vs.metadata.name}`, host, rule: rule.name ?? ruleIndex, match: match ?? null };
        if (request === null) {
          probes.push({ ...probe, result: 'no request can be synthesised for this match' });
          continue;
        }
        const result = table.match(request);
        probes.push({ ...probe, request: requestLine(request), result: 'route' in result ? describeRoute(result.route, request) : { noRoute: result.noRoute } });
      }
    }
  }
  const unknown = table.match({ method: 'GET', authority: 'unknown.probe.invalid', host: 'unknown.probe.invalid', path: '/', query: '', scheme: 'http', port, headers: {} });
  probes.push({ request: 'GET unknown.probe.invalid/', result: 'route' in unknown ? unknown.route.name : { noRoute: unknown.noRoute } });
  return probes;
}

function endpointLine(endpoint: RegistryEndpoint): string {
  const labels = Object.entries(endpoint.labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  const identity = endpoint.serviceAccount === '' ? '' : ` sa=${endpoint.namespace}/${endpoint.serviceAccount}`;
  return `${endpoint.address}:${endpoint.port} weight=${endpoint.weight}${labels === '' ? '' : ` {${labels}}`}${identity}${endpoint.meshWorkload ? ' mesh-workload' : ''}`;
}

function boundToGateways(vs: Resource<VirtualServiceSpec>): boolean {
  return (vs.spec.gateways ?? []).some((gateway) => gateway !== 'mesh');
}

function boundToMesh(vs: Resource<VirtualServiceSpec>): boolean {
  const gateways = vs.spec.gateways ?? [];
  return gateways.length === 0 || gateways.includes('mesh');
}

/** `baseDir`: the config directory, printed as `.` so output does not depend on where the files live. */
export function describeIr(config: CompiledConfig, baseDir: string): unknown {
  const virtualServices = config.resources.filter((r) => r.kind === 'VirtualService') as Resource<VirtualServiceSpec>[];
  const gatewayRoutes = [...config.gatewayRoutes].sort(([a], [b]) => a - b);
  return plain(
    {
      files: config.files,
      workload: config.workload,
      resources: config.resources.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name} @ ${r.source.file}:${r.source.line}:${r.source.col}`),
      diagnostics: config.diagnostics.map((d) => `${d.position.file}:${d.position.line}:${d.position.col} ${d.code} ${d.severity}: ${d.message}`),
      listeners: config.listenerPlans,
      gatewayRoutes: gatewayRoutes.map(([port, table]) => ({ port, probes: describeTable(table, virtualServices.filter(boundToGateways), port) })),
      meshRoutes: describeTable(config.meshRoutes, virtualServices.filter(boundToMesh), config.sidecar?.outbound?.port ?? 80),
      services: config.registry.services.map((service) => ({
        ...service,
        endpoints: [...service.endpoints].map(([port, endpoints]) => ({ port, endpoints: endpoints.map(endpointLine) })),
      })),
      clusters: config.clusterDefinitions.map(({ policy: { key: _key, ...policy }, endpoints, ...cluster }) => ({ ...cluster, endpoints: endpoints.map(endpointLine), policy })),
      sidecar: config.sidecar,
      inboundMtls: config.inboundMtls,
      plugins: [...config.pluginStates.keys()],
    },
    baseDir,
  );
}
