/** Semantic checks of Gateway servers (docs/routing.md#gateways-and-listeners, Istio's `validateServer`/`validateTLSOptions`). */
import type { GatewaySpec, Server, ServerTLSSettings } from './kinds/gateway.js';
import { isDns1123Label } from './envelope.js';
import { hostProblem } from './hosts.js';
import type { FieldPath, Resource } from './resource.js';
import type { ValidationContext } from './validate-context.js';

const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS']);
const PLAINTEXT_HTTP = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);
const KNOWN_PROTOCOLS = new Set([...TLS_PROTOCOLS, ...PLAINTEXT_HTTP, 'TCP', 'MONGO', 'REDIS', 'MYSQL']);
const CERTIFICATE_FIELDS = ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName', 'credentialNames', 'tlsCertificates', 'caCertCredentialName'] as const;

function serverHostProblem(entry: string): string | null {
  const slash = entry.indexOf('/');
  if (slash >= 0) {
    const namespace = entry.slice(0, slash);
    if (namespace !== '*' && namespace !== '.' && !isDns1123Label(namespace)) return `"${namespace}" is not a namespace, "*" or "."`;
  }
  return hostProblem(entry.slice(slash + 1), true);
}

function checkTls(ctx: ValidationContext, gateway: Resource, tls: ServerTLSSettings, path: FieldPath): void {
  const mode = tls.mode ?? 'PASSTHROUGH';
  const hasFiles = tls.serverCertificate !== undefined || tls.privateKey !== undefined;
  const credentials = (['credentialName', 'credentialNames', 'tlsCertificates'] as const).filter((key) => tls[key] !== undefined);
  if (credentials.length > 1 || (hasFiles && credentials.length > 0)) {
    ctx.report(gateway, 'MG0402', path, 'certificate files, credentialName, credentialNames and tlsCertificates are mutually exclusive');
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (credentials.length === 0 && (tls.serverCertificate === undefined || tls.privateKey === undefined)) {
      ctx.report(gateway, 'MG0402', path, `${mode} needs serverCertificate and privateKey, or a credential`);
    }
  }
  if (mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    const hasCa = tls.caCertificates !== undefined || tls.caCertCredentialName !== undefined || credentials.length > 0;
    if (!hasCa) ctx.report(gateway, 'MG0402', path, `${mode} needs caCertificates to verify client certificates`);
  }
  if (mode === 'ISTIO_MUTUAL') {
    const present = CERTIFICATE_FIELDS.filter((key) => tls[key] !== undefined);
    if (present.length > 0) ctx.report(gateway, 'MG0402', [...path, present[0] as string], `ISTIO_MUTUAL uses the mesh certificate; remove ${present.join(', ')}`);
  }
}

function checkServer(ctx: ValidationContext, gateway: Resource, server: Server, path: FieldPath): void {
  const protocol = server.port.protocol.toUpperCase();
  if (!KNOWN_PROTOCOLS.has(protocol)) {
    ctx.report(gateway, 'MG0404', [...path, 'port', 'protocol'], `unknown protocol "${server.port.protocol}"`);
  }
  server.hosts.forEach((entry, index) => {
    const problem = serverHostProblem(entry);
    if (problem !== null) ctx.report(gateway, 'MG0404', [...path, 'hosts', index], problem);
  });
  const tls = server.tls;
  if (TLS_PROTOCOLS.has(protocol)) {
    if (tls === undefined) ctx.report(gateway, 'MG0401', path, `${protocol} server needs a tls block`);
    else checkTls(ctx, gateway, tls, [...path, 'tls']);
  } else if (tls !== undefined) {
    const set = Object.entries(tls)
      .filter(([key, value]) => key !== 'httpsRedirect' && !(key === 'mode' && value === 'PASSTHROUGH'))
      .map(([key]) => key);
    if (protocol !== 'HTTP' || set.length > 0) {
      ctx.report(gateway, 'MG0403', [...path, 'tls'], protocol === 'HTTP' ? `an HTTP server may only set tls.httpsRedirect (found ${set.join(', ')})` : `${protocol} servers cannot have tls settings`);
    }
  }
}

function checkGateway(ctx: ValidationContext, gateway: Resource<GatewaySpec>): void {
  const names = new Set<string>();
  const protocolsByListener = new Map<string, { tls: boolean; index: number }>();
  gateway.spec.servers.forEach((server, index) => {
    const path = ['spec', 'servers', index];
    checkServer(ctx, gateway, server, path);
    if (server.name !== undefined) {
      if (names.has(server.name)) ctx.report(gateway, 'MG0404', [...path, 'name'], `server name "${server.name}" is used twice`);
      names.add(server.name);
    }
    const listener = `${server.bind ?? ''}:${server.port.number}`;
    const tls = TLS_PROTOCOLS.has(server.port.protocol.toUpperCase());
    const previous = protocolsByListener.get(listener);
    if (previous === undefined) protocolsByListener.set(listener, { tls, index });
    else if (previous.tls !== tls) {
      ctx.report(gateway, 'MG0405', [...path, 'port'], `port ${server.port.number} mixes TLS and plaintext servers (see servers[${previous.index}])`);
    }
  });
}

export function validateGateways(ctx: ValidationContext): void {
  for (const gateway of ctx.ofKind<GatewaySpec>('Gateway')) checkGateway(ctx, gateway);
}
