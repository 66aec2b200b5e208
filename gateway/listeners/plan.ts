/**
 * Gateway resources → the listeners this proxy opens (docs/routing.md#gateways-and-listeners). Pure apart from checking which
 * credential layout exists on disk; runs once per config snapshot. Servers are grouped by bind address
 * and port; HTTPS servers sharing a port are later told apart by SNI (tls-server.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { getCiphers, type SecureVersion } from 'node:tls';
import { makeDiagnostic, type DiagnosticCode } from '../config/diagnostics.js';
import type { GatewaySpec, Server, ServerTLSSettings } from '../config/kinds/gateway.js';
import type { Diagnostic, FieldPath, Resource } from '../config/resource.js';
import { labelsMatch } from '../config/labels.js';
import { INTERMEDIATE_CIPHER_SUITES } from '../identity/tls-profile.js';

/**
 * `passthrough`: TLS not terminated, routed by the ClientHello's SNI through VirtualService `tls` rules;
 * `tcp`: opaque TCP and `tls`: TLS terminated here, both routed through VirtualService `tcp` rules (docs/tcp.md).
 */
export type ListenerProtocol = 'http' | 'https' | 'passthrough' | 'tcp' | 'tls';
export type TerminatingTlsMode = 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL';

export interface ServerHost {
  /** `*` (any namespace) or a namespace name (`.` already resolved to the Gateway's namespace). */
  readonly namespace: string;
  /** Lower-cased FQDN, `*.suffix` or `*`. */
  readonly dnsName: string;
}

export interface CertificateSource {
  readonly certPath: string;
  readonly keyPath: string;
  /** Client CA bundle (MUTUAL / OPTIONAL_MUTUAL), else null. */
  readonly caPath: string | null;
}

export interface ServerTlsPlan {
  readonly mode: TerminatingTlsMode;
  readonly certificate: CertificateSource;
  readonly minVersion: SecureVersion;
  readonly maxVersion: SecureVersion;
  /** OpenSSL names of the allowed TLS ≤1.2 suites; empty = OpenSSL defaults. */
  readonly cipherSuites: readonly string[];
  readonly subjectAltNames: readonly string[];
  /** Lower-case hex SHA-256 of the client certificate DER, without `:`. */
  readonly verifyCertificateHash: readonly string[];
  /** Base64 SHA-256 of the client certificate SPKI. */
  readonly verifyCertificateSpki: readonly string[];
  readonly insecureSkipVerify: boolean;
}

export interface PlannedServer {
  /** `<namespace>/<name>` of the Gateway. */
  readonly gateway: string;
  readonly gatewayNamespace: string;
  readonly serverIndex: number;
  /** `server.name`, else `<namespace>/<gateway>/<index>` (stats, logs). */
  readonly name: string;
  readonly portName: string;
  readonly hosts: readonly ServerHost[];
  readonly httpsRedirect: boolean;
  readonly tls: ServerTlsPlan | null;
  /** `tls.mode: AUTO_PASSTHROUGH`: connections go to the cluster their SNI names, no VirtualService needed. */
  readonly autoPassthrough: boolean;
}

export interface ListenerPlan {
  /** `<bind>:<port>` */
  readonly key: string;
  readonly bind: string;
  readonly port: number;
  readonly protocol: ListenerProtocol;
  readonly servers: readonly PlannedServer[];
}

export interface ListenerPlanInput {
  readonly gateways: readonly Resource<GatewaySpec>[];
  readonly proxyLabels: Readonly<Record<string, string>>;
  /** MeshConfig `credentialsDirectory`, already resolved against the config file location. */
  readonly credentialsDirectory: string;
}

export interface ListenerPlanResult {
  readonly listeners: ListenerPlan[];
  readonly diagnostics: Diagnostic[];
}

export const DEFAULT_BIND = '0.0.0.0';
export const DEFAULT_MIN_TLS_VERSION: SecureVersion = 'TLSv1.2';
export const DEFAULT_MAX_TLS_VERSION: SecureVersion = 'TLSv1.3';

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);
/** TLS not terminated: routed by SNI through `tls` rules, or (AUTO_PASSTHROUGH) to the cluster the SNI names. */
const PASSTHROUGH_MODES: ReadonlySet<string> = new Set(['PASSTHROUGH', 'AUTO_PASSTHROUGH']);
/** Gateway protocols Istio serves as opaque TCP (Envoy's tcp_proxy). */
const OPAQUE_PROTOCOLS = new Set(['TCP', 'MONGO', 'REDIS', 'MYSQL']);
const TLS_VERSIONS: Readonly<Record<string, SecureVersion>> = { TLSV1_0: 'TLSv1', TLSV1_1: 'TLSv1.1', TLSV1_2: 'TLSv1.2', TLSV1_3: 'TLSv1.3' };
const VERSION_ORDER: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const KNOWN_CIPHERS = new Set(getCiphers().map((name) => name.toUpperCase()));

interface PlanContext {
  readonly gateway: Resource<GatewaySpec>;
  readonly diagnostics: Diagnostic[];
  readonly credentialsDirectory: string;
}

function report(ctx: PlanContext, code: DiagnosticCode, path: FieldPath, message: string): void {
  const { metadata } = ctx.gateway;
  ctx.diagnostics.push(
    makeDiagnostic(code, message, ctx.gateway.at(path), { kind: 'Gateway', namespace: metadata.namespace, name: metadata.name, field: path.join('.') }),
  );
}

function parseHost(entry: string, gatewayNamespace: string): ServerHost {
  const slash = entry.indexOf('/');
  if (slash < 0) return { namespace: '*', dnsName: entry.toLowerCase() };
  const namespace = entry.slice(0, slash);
  return { namespace: namespace === '.' ? gatewayNamespace : namespace, dnsName: entry.slice(slash + 1).toLowerCase() };
}

function versionOf(value: string | undefined, fallback: SecureVersion): SecureVersion {
  return value === undefined || value === 'TLS_AUTO' ? fallback : (TLS_VERSIONS[value] ?? fallback);
}

/**
 * Istio ignores invalid and duplicate entries with a warning (docs/routing.md#gateways-and-listeners). With no entry (or
 * none left), Mozilla's intermediate profile applies rather than OpenSSL's defaults, which offer CBC suites.
 */
function cipherSuites(ctx: PlanContext, suites: readonly string[], path: FieldPath): readonly string[] {
  const accepted: string[] = [];
  suites.forEach((suite, index) => {
    const name = suite.toUpperCase();
    if (!KNOWN_CIPHERS.has(name)) report(ctx, 'MG0408', [...path, index], `cipher suite "${suite}" is not supported; ignored`);
    else if (accepted.includes(name)) report(ctx, 'MG0408', [...path, index], `cipher suite "${suite}" is listed twice; ignored`);
    else accepted.push(name);
  });
  return accepted.length === 0 ? INTERMEDIATE_CIPHER_SUITES : accepted;
}

/** `<name>/tls.crt|tls.key|ca.crt` (Kubernetes secret mounted as a directory) or flat `<name>.crt|.key`, `<name>-cacert.crt`. */
function credentialFiles(directory: string, name: string): CertificateSource | null {
  const nested = join(directory, name);
  if (existsSync(join(nested, 'tls.crt'))) {
    const ca = join(nested, 'ca.crt');
    return { certPath: join(nested, 'tls.crt'), keyPath: join(nested, 'tls.key'), caPath: existsSync(ca) ? ca : null };
  }
  const flatCert = join(directory, `${name}.crt`);
  if (existsSync(flatCert)) {
    const ca = join(directory, `${name}-cacert.crt`);
    return { certPath: flatCert, keyPath: join(directory, `${name}.key`), caPath: existsSync(ca) ? ca : null };
  }
  return null;
}

function caFromCredential(directory: string, name: string): string | null {
  for (const candidate of [join(directory, name, 'ca.crt'), join(directory, `${name}.crt`)]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function certificateSource(ctx: PlanContext, tls: ServerTLSSettings, path: FieldPath): CertificateSource | null {
  let source: CertificateSource | null;
  if (tls.serverCertificate !== undefined && tls.privateKey !== undefined) {
    source = { certPath: tls.serverCertificate, keyPath: tls.privateKey, caPath: null };
  } else {
    const credential = tls.credentialName ?? tls.credentialNames?.[0] ?? null;
    const inline = tls.tlsCertificates?.[0];
    if ((tls.credentialNames?.length ?? 0) > 1 || (tls.tlsCertificates?.length ?? 0) > 1) {
      report(ctx, 'MG0409', path, 'only the first certificate of credentialNames/tlsCertificates is served (one key type per server)');
    }
    if (credential !== null) {
      source = credentialFiles(ctx.credentialsDirectory, credential);
      if (source === null) {
        report(ctx, 'MG0406', path, `credential "${credential}" not found in ${ctx.credentialsDirectory} (looked for ${credential}/tls.crt and ${credential}.crt)`);
        return null;
      }
    } else if (inline?.serverCertificate !== undefined && inline.privateKey !== undefined) {
      source = { certPath: inline.serverCertificate, keyPath: inline.privateKey, caPath: inline.caCertificates ?? null };
    } else {
      report(ctx, 'MG0402', path, 'no server certificate: set serverCertificate and privateKey, or a credentialName');
      return null;
    }
  }
  const caPath = tls.caCertificates ?? (tls.caCertCredentialName !== undefined ? caFromCredential(ctx.credentialsDirectory, tls.caCertCredentialName) : null) ?? source.caPath;
  return { ...source, caPath };
}

function planTls(ctx: PlanContext, tls: ServerTLSSettings | undefined, path: FieldPath): ServerTlsPlan | null {
  const mode = tls?.mode ?? 'PASSTHROUGH';
  if (tls === undefined || (mode !== 'SIMPLE' && mode !== 'MUTUAL' && mode !== 'OPTIONAL_MUTUAL')) {
    report(ctx, 'MG0407', [...path, 'mode'], `TLS mode ${mode} is not supported yet; this server is not served`);
    return null;
  }
  if (tls.caCrl !== undefined) report(ctx, 'MG0409', [...path, 'caCrl'], 'caCrl is not supported yet; revocation is not checked');
  const certificate = certificateSource(ctx, tls, path);
  if (certificate === null) return null;
  if (mode !== 'SIMPLE' && certificate.caPath === null) {
    report(ctx, 'MG0402', path, `${mode} needs caCertificates to verify client certificates`);
    return null;
  }
  const minVersion = versionOf(tls.minProtocolVersion, DEFAULT_MIN_TLS_VERSION);
  const maxVersion = versionOf(tls.maxProtocolVersion, DEFAULT_MAX_TLS_VERSION);
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    report(ctx, 'MG0402', [...path, 'minProtocolVersion'], `minProtocolVersion ${minVersion} is above maxProtocolVersion ${maxVersion}`);
    return null;
  }
  return {
    mode,
    certificate,
    minVersion,
    maxVersion,
    cipherSuites: cipherSuites(ctx, tls.cipherSuites ?? [], [...path, 'cipherSuites']),
    subjectAltNames: tls.subjectAltNames ?? [],
    verifyCertificateHash: (tls.verifyCertificateHash ?? []).map((hash) => hash.replaceAll(':', '').toLowerCase()),
    verifyCertificateSpki: tls.verifyCertificateSpki ?? [],
    insecureSkipVerify: tls.insecureSkipVerify === true,
  };
}

function protocolOf(server: Server): ListenerProtocol | null {
  const protocol = server.port.protocol.toUpperCase();
  if (HTTP_PROTOCOLS.has(protocol)) return 'http';
  if (OPAQUE_PROTOCOLS.has(protocol)) return 'tcp';
  if ((protocol === 'HTTPS' || protocol === 'TLS') && PASSTHROUGH_MODES.has(server.tls?.mode ?? 'PASSTHROUGH')) return 'passthrough';
  if (protocol === 'HTTPS') return 'https';
  if (protocol === 'TLS') return 'tls';
  return null;
}

interface ListenerDraft {
  readonly key: string;
  readonly bind: string;
  readonly port: number;
  readonly protocol: ListenerProtocol;
  readonly servers: PlannedServer[];
}

function planServer(ctx: PlanContext, server: Server, serverIndex: number, listeners: Map<string, ListenerDraft>): void {
  const path = ['spec', 'servers', serverIndex];
  const { namespace, name } = ctx.gateway.metadata;
  const protocol = protocolOf(server);
  if (protocol === null) {
    report(ctx, 'MG0407', [...path, 'port', 'protocol'], `protocol ${server.port.protocol} is not supported yet; this server is not served`);
    return;
  }
  const bind = server.bind ?? DEFAULT_BIND;
  if (bind.startsWith('unix://')) {
    report(ctx, 'MG0407', [...path, 'bind'], 'unix socket binds are not supported yet; this server is not served');
    return;
  }
  const terminates = protocol === 'https' || protocol === 'tls';
  const tls = terminates ? planTls(ctx, server.tls, [...path, 'tls']) : null;
  if (terminates && tls === null) return;
  const key = `${bind}:${server.port.number}`;
  let listener = listeners.get(key);
  if (listener === undefined) {
    listener = { key, bind, port: server.port.number, protocol, servers: [] };
    listeners.set(key, listener);
  } else if (listener.protocol !== protocol) {
    report(ctx, 'MG0405', [...path, 'port'], `port ${key} is already served as ${listener.protocol} by ${listener.servers[0]?.gateway ?? 'another Gateway'}; this ${protocol} server is not served`);
    return;
  }
  listener.servers.push({
    gateway: `${namespace}/${name}`,
    gatewayNamespace: namespace,
    serverIndex,
    name: server.name ?? `${namespace}/${name}/${serverIndex}`,
    portName: server.port.name,
    hosts: server.hosts.map((entry) => parseHost(entry, namespace)),
    httpsRedirect: protocol === 'http' && server.tls?.httpsRedirect === true,
    tls,
    autoPassthrough: protocol === 'passthrough' && server.tls?.mode === 'AUTO_PASSTHROUGH',
  });
}

/** Gateways are taken in config order, so on conflicts the oldest (first in file order) wins. */
export function buildListenerPlans(input: ListenerPlanInput): ListenerPlanResult {
  const diagnostics: Diagnostic[] = [];
  const listeners = new Map<string, ListenerDraft>();
  const gateways = [...input.gateways].sort((a, b) => a.source.order - b.source.order);
  for (const gateway of gateways) {
    if (!labelsMatch(gateway.spec.selector, input.proxyLabels)) continue;
    const ctx: PlanContext = { gateway, diagnostics, credentialsDirectory: input.credentialsDirectory };
    gateway.spec.servers.forEach((server, index) => planServer(ctx, server, index, listeners));
  }
  return { listeners: [...listeners.values()], diagnostics };
}
