/**
 * TLS for one HTTPS listener: every Gateway server on the port gets ONE SecureContext (rebuilt only when
 * its files change) and the SNICallback picks it: exact host, then the longest `*.suffix`, then a `*`
 * server; an unknown SNI fails the handshake (docs/routing.md#gateways-and-listeners).
 *
 * Node applies only the certificate and CA store of an SNI context; protocol versions, ciphers and
 * `requestCert` are per listener. So the listener is opened with the loosest settings of its servers and
 * each connection is then checked against the settings of the server its SNI selected (`secureConnection`);
 * a connection that falls short is closed before any request is read. Certificates that name an OCSP
 * responder get their status stapled (ocsp-stapling.ts).
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext, type SecureContextOptions, type SecureVersion, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { CertificateFileError } from '../identity/cert-store.js';
import { splitPemCertificates } from '../identity/pem.js';
import { watchFiles, type ConfigWatcher } from '../config/watch.js';
import { certificateNames, clientCertHash } from './client-cert.js';
import { createOcspStapler } from './ocsp-stapling.js';
import type { ListenerPlan, PlannedServer, ServerTlsPlan } from './plan.js';

export type TlsLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

export const ALPN_PROTOCOLS = ['h2', 'http/1.1'];
const VERSION_ORDER: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
/** Node caps a context at TLS 1.2 when a cipher list names no TLS 1.3 suite; Envoy's cipherSuites only restrict ≤1.2. */
const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];
/** One ticket key set per listener so that tickets survive certificate rotation. */
const TICKET_KEY_BYTES = 48;

interface ServerEntry {
  readonly server: PlannedServer;
  readonly tls: ServerTlsPlan;
  readonly pem: { readonly cert: string; readonly key: string; readonly ca: string | null };
  readonly contextOptions: SecureContextOptions;
  readonly context: SecureContext;
  readonly served: ServedCertificate;
}

export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly validFrom: Date;
  readonly validTo: Date;
  readonly fingerprint256: string;
}

/** A certificate a Gateway server presents, with the client CAs it trusts (MUTUAL), as the admin `/certs` lists it. */
export interface ServedCertificate extends CertificateSummary {
  /** `<bind>:<port>` of the listener. */
  readonly listener: string;
  /** The Gateway server's name (`server.name`, else `<namespace>/<gateway>/<index>`). */
  readonly server: string;
  readonly hosts: readonly string[];
  readonly certPath: string;
  readonly subjectAltNames: readonly string[];
  /** Certificates after the leaf in the served chain. */
  readonly chain: readonly CertificateSummary[];
  readonly clientCaPath: string | null;
  readonly clientCertificateAuthorities: readonly CertificateSummary[];
}

interface SniTable {
  readonly exact: ReadonlyMap<string, ServerEntry>;
  /** `[".suffix", entry]`, longest suffix first. */
  readonly wildcards: readonly (readonly [string, ServerEntry])[];
  readonly fallback: ServerEntry | null;
  readonly entries: readonly ServerEntry[];
  /** One server on the port, serving `*`: every name resolves to it, so no request can be misdirected (no lookup per request). */
  readonly onlyServerForAnyHost: boolean;
}

export interface TlsListener {
  /** For `https.createServer` / `http2.createSecureServer`. */
  readonly options: TlsOptions & { readonly ALPNProtocols: string[]; readonly allowHTTP1: true };
  /** Hooks the per-connection checks and default-context updates onto the created server. Call once. */
  attach(server: TlsServer): void;
  /** The Gateway server whose SNI entry handled the connection. */
  serverFor(socket: TLSSocket): PlannedServer | null;
  /**
   * Whether a request for `host` on a connection whose handshake named `servername` (null: no SNI)
   * belongs to another server of this port than the one the handshake selected: that server may have
   * other TLS settings (MUTUAL where the handshake was SIMPLE), so the request gets 421 (RFC 9110
   * §15.5.20) rather than its routes. Also catches HTTP/2 connection reuse for another host.
   */
  misdirected(servername: string | null, host: string): boolean;
  /** What each server presents now; changes only when `reload` takes new files. */
  certificates(): readonly ServedCertificate[];
  /** Re-reads certificate files; unchanged files keep their context, bad files keep the previous one. */
  reload(): Promise<void>;
  close(): void;
}

async function readPem(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new CertificateFileError(path, (error as NodeJS.ErrnoException).code ?? (error as Error).message);
  }
}

function ciphersOption(tls: ServerTlsPlan): string | undefined {
  return tls.cipherSuites.length === 0 ? undefined : [...TLS13_SUITES, ...tls.cipherSuites].join(':');
}

function summary(cert: X509Certificate): CertificateSummary {
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serialNumber: cert.serialNumber,
    validFrom: new Date(cert.validFrom),
    validTo: new Date(cert.validTo),
    fingerprint256: cert.fingerprint256,
  };
}

function describeServed(listener: string, server: PlannedServer, tls: ServerTlsPlan, certPem: string, caPem: string | null): ServedCertificate {
  const [leaf, ...chain] = splitPemCertificates(certPem).map((pem) => new X509Certificate(pem));
  if (leaf === undefined) throw new CertificateFileError(tls.certificate.certPath, 'no certificate in the file');
  return {
    ...summary(leaf),
    listener,
    server: server.name,
    hosts: server.hosts.map((host) => host.dnsName),
    certPath: tls.certificate.certPath,
    subjectAltNames: leaf.subjectAltName === undefined ? [] : leaf.subjectAltName.split(', '),
    chain: chain.map(summary),
    clientCaPath: tls.certificate.caPath,
    clientCertificateAuthorities: caPem === null ? [] : splitPemCertificates(caPem).map((pem) => summary(new X509Certificate(pem))),
  };
}

async function loadEntry(listener: string, server: PlannedServer, tls: ServerTlsPlan, previous: ServerEntry | undefined): Promise<ServerEntry> {
  const { certPath, keyPath, caPath } = tls.certificate;
  const [cert, key, ca] = await Promise.all([readPem(certPath), readPem(keyPath), caPath === null ? null : readPem(caPath)]);
  if (previous !== undefined && previous.pem.cert === cert && previous.pem.key === key && previous.pem.ca === ca) return previous;
  const contextOptions: SecureContextOptions = {
    cert,
    key,
    ...(ca === null ? {} : { ca }),
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    ...(tls.cipherSuites.length === 0 ? {} : { ciphers: ciphersOption(tls) }),
  };
  const context = createSecureContext(contextOptions);
  return { server, tls, pem: { cert, key, ca }, contextOptions, context, served: describeServed(listener, server, tls, cert, ca) };
}

function buildSniTable(entries: readonly ServerEntry[]): SniTable {
  const exact = new Map<string, ServerEntry>();
  const wildcards: [string, ServerEntry][] = [];
  let fallback: ServerEntry | null = null;
  for (const entry of entries) {
    for (const { dnsName } of entry.server.hosts) {
      if (dnsName === '*') fallback ??= entry;
      else if (dnsName.startsWith('*.')) {
        if (!wildcards.some(([suffix]) => suffix === dnsName.slice(1))) wildcards.push([dnsName.slice(1), entry]);
      } else if (!exact.has(dnsName)) exact.set(dnsName, entry);
    }
  }
  wildcards.sort((a, b) => b[0].length - a[0].length);
  return { exact, wildcards, fallback, entries, onlyServerForAnyHost: entries.length === 1 && fallback !== null };
}

function lookup(table: SniTable, servername: string | null): ServerEntry | null {
  if (servername === null || servername === '') return table.fallback;
  const name = servername.toLowerCase().replace(/\.$/, '');
  const exact = table.exact.get(name);
  if (exact !== undefined) return exact;
  for (const [suffix, entry] of table.wildcards) {
    if (name.endsWith(suffix) && name.length > suffix.length) return entry;
  }
  return table.fallback;
}

function spkiPin(cert: X509Certificate): string {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** Why the connection does not satisfy the server's TLS settings, or null. */
export function connectionProblem(socket: TLSSocket, tls: ServerTlsPlan): string | null {
  const protocol = socket.getProtocol();
  const rank = VERSION_ORDER.indexOf(protocol as SecureVersion);
  if (rank < VERSION_ORDER.indexOf(tls.minVersion) || rank > VERSION_ORDER.indexOf(tls.maxVersion)) {
    return `protocol ${protocol ?? 'unknown'} outside ${tls.minVersion}..${tls.maxVersion}`;
  }
  if (tls.cipherSuites.length > 0 && protocol !== 'TLSv1.3' && !tls.cipherSuites.includes(socket.getCipher().name.toUpperCase())) {
    return `cipher ${socket.getCipher().name} not allowed`;
  }
  if (tls.mode === 'SIMPLE') return null;
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return tls.mode === 'MUTUAL' ? 'client certificate required' : null;
  if (!socket.authorized && !tls.insecureSkipVerify) return `client certificate rejected: ${String(socket.authorizationError)}`;
  return pinProblem(peer, tls);
}

function pinProblem(peer: X509Certificate, tls: ServerTlsPlan): string | null {
  if (tls.subjectAltNames.length > 0) {
    const names = certificateNames(peer);
    const all = [...names.uris, ...names.dnsNames, ...names.ipAddresses, ...names.emails];
    if (!tls.subjectAltNames.some((wanted) => all.includes(wanted))) return 'client certificate SAN not in subjectAltNames';
  }
  const pinned = tls.verifyCertificateHash.length > 0 || tls.verifyCertificateSpki.length > 0;
  if (pinned && !tls.verifyCertificateHash.includes(clientCertHash(peer)) && !tls.verifyCertificateSpki.includes(spkiPin(peer))) {
    return 'client certificate matches neither verifyCertificateHash nor verifyCertificateSpki';
  }
  return null;
}

function listenerOptions(table: SniTable, ticketKeys: Buffer): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  const plans = table.entries.map((entry) => entry.tls);
  const ranks = (pick: (tls: ServerTlsPlan) => SecureVersion) => plans.map((tls) => VERSION_ORDER.indexOf(pick(tls)));
  const everyRestrictsCiphers = plans.every((tls) => tls.cipherSuites.length > 0);
  const fallback = table.fallback?.contextOptions ?? {};
  return {
    ...fallback,
    ticketKeys,
    minVersion: VERSION_ORDER[Math.min(...ranks((tls) => tls.minVersion))] as SecureVersion,
    maxVersion: VERSION_ORDER[Math.max(...ranks((tls) => tls.maxVersion))] as SecureVersion,
    ciphers: everyRestrictsCiphers ? [...TLS13_SUITES, ...new Set(plans.flatMap((tls) => tls.cipherSuites))].join(':') : undefined,
    requestCert: plans.some((tls) => tls.mode !== 'SIMPLE'),
    // Only when every server demands a verified certificate can the handshake itself refuse; else the per-connection check does.
    rejectUnauthorized: plans.every((tls) => tls.mode === 'MUTUAL' && !tls.insecureSkipVerify),
  };
}

export interface TlsListenerOptions {
  readonly logger: TlsLogger;
  /** Called after `reload` replaced a certificate. */
  readonly onCertificatesChanged?: () => void;
  readonly debounceMs?: number;
}

export async function createTlsServerOptions(plan: ListenerPlan, { logger, onCertificatesChanged, debounceMs }: TlsListenerOptions): Promise<TlsListener> {
  const servers = plan.servers.filter((server): server is PlannedServer & { tls: ServerTlsPlan } => server.tls !== null);
  if (servers.length === 0) throw new Error(`listener ${plan.key} has no TLS server`);
  let table = buildSniTable(await Promise.all(servers.map((server) => loadEntry(plan.key, server, server.tls, undefined))));
  const ticketKeys = randomBytes(TICKET_KEY_BYTES);
  const attached: TlsServer[] = [];
  const watchers: ConfigWatcher[] = [];
  const bySocket = new WeakMap<TLSSocket, ServerEntry>();
  const stapler = createOcspStapler({ logger });

  const initial = listenerOptions(table, ticketKeys);
  const options = {
    ...initial,
    ALPNProtocols: [...ALPN_PROTOCOLS],
    allowHTTP1: true as const,
    SNICallback: (servername: string, callback: (error: Error | null, context?: SecureContext) => void): void => {
      const entry = lookup(table, servername);
      if (entry === null) callback(new Error(`no server for SNI "${servername}" on ${plan.key}`));
      else callback(null, entry.context);
    },
  };

  const onSecureConnection = (socket: TLSSocket): void => {
    const servername = typeof socket.servername === 'string' ? socket.servername : null;
    const entry = lookup(table, servername);
    const problem = entry === null ? 'no server for this SNI' : connectionProblem(socket, entry.tls);
    if (entry === null || problem !== null) {
      logger.warn({ sni: servername, server: entry?.server.name, reason: problem }, 'TLS connection refused');
      socket.destroy();
      return;
    }
    bySocket.set(socket, entry);
  };

  let reloading: Promise<void> | undefined;
  const reloadOnce = async (): Promise<void> => {
    const previous = new Map(table.entries.map((entry) => [entry.server, entry]));
    let entries: ServerEntry[];
    try {
      entries = await Promise.all(servers.map((server) => loadEntry(plan.key, server, server.tls, previous.get(server))));
    } catch (error) {
      logger.error({ reason: (error as Error).message }, 'new listener certificates refused; keeping the current ones');
      return;
    }
    if (entries.every((entry, index) => entry === table.entries[index])) return;
    table = buildSniTable(entries);
    const next = listenerOptions(table, ticketKeys);
    for (const server of attached) server.setSecureContext(next);
    logger.info('listener certificates reloaded');
    onCertificatesChanged?.();
  };
  const reload = (): Promise<void> => {
    reloading ??= reloadOnce().finally(() => {
      reloading = undefined;
    });
    return reloading;
  };

  const paths = servers.flatMap(({ tls }) => [tls.certificate.certPath, tls.certificate.keyPath, tls.certificate.caPath].filter((path): path is string => path !== null));
  watchers.push(watchFiles(paths, () => void reload(), debounceMs));

  return {
    options,
    attach(server: TlsServer): void {
      attached.push(server);
      server.on('secureConnection', onSecureConnection);
      server.on('OCSPRequest', stapler.onOcspRequest);
    },
    serverFor: (socket) => bySocket.get(socket)?.server ?? null,
    misdirected: (servername, host) => !table.onlyServerForAnyHost && lookup(table, servername) !== lookup(table, host),
    certificates: () => table.entries.map((entry) => entry.served),
    reload,
    close(): void {
      for (const watcher of watchers) watcher.close();
      stapler.close();
    },
  };
}

