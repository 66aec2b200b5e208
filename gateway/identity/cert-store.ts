/**
 * The proxy's own mesh identity: its certificate chain, key and the trust bundle, turned into ONE
 * server and ONE client `tls.SecureContext` per rotation (building a context per connection doubles
 * the client handshake cost, measured). Files are re-read when their directory
 * changes; invalid new material is refused and the previous material stays in service.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { INTERMEDIATE_CIPHERS_OPTION } from './tls-profile.js';
import type { PeerIdentity } from '../pipeline/types.js';
import { watchFiles, type ConfigWatcher } from '../config/watch.js';
import { createRootCa, issueWorkloadCertificate, type KeyAndCertificate } from './ca.js';
import { splitPemCertificates } from './pem.js';
import { peerIdentityFromCertificate } from './spiffe.js';

export type StoreLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface CertificateFiles {
  readonly certChain: string;
  readonly privateKey: string;
  readonly rootCert: string;
}

export interface CertificateStoreOptions {
  readonly files: CertificateFiles;
  readonly trustDomain: string;
  readonly logger: StoreLogger;
  /** Settle time after a directory event before re-reading (editors and Kubernetes write in several steps). */
  readonly debounceMs?: number;
}

export interface SelfIssuedOptions {
  readonly caCertPath: string;
  readonly caKeyPath: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly ttlHours: number;
  readonly logger: StoreLogger;
}

export type EphemeralOptions = Omit<SelfIssuedOptions, 'caCertPath' | 'caKeyPath'>;

export class CertificateFileError extends Error {
  readonly code = 'MG_ERR_CERT_FILE';
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`cannot read certificate file ${path}: ${detail}`);
  }
}

interface PemMaterial {
  readonly chainPem: string;
  readonly keyPem: string;
  readonly rootPem: string;
}

interface Material extends PemMaterial {
  readonly identity: PeerIdentity;
  readonly notBefore: Date;
  readonly expiresAt: Date;
  readonly trustBundle: readonly X509Certificate[];
  readonly contextOptions: Readonly<SecureContextOptions>;
  readonly serverContext: SecureContext;
  readonly clientContext: SecureContext;
}

const MESH_MIN_TLS_VERSION = 'TLSv1.2';
/** Istio renews workload certificates at half their lifetime. */
const RENEW_AT_FRACTION = 0.5;
/** setTimeout overflows beyond 2^31-1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
const MIN_RENEW_DELAY_MS = 1_000;

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/** The chain (leaf first, then intermediates) must end at a certificate of the trust bundle. */
function chainsToBundle(chain: readonly X509Certificate[], bundle: readonly X509Certificate[]): boolean {
  for (let index = 0; index < chain.length; index += 1) {
    const current = chain[index] as X509Certificate;
    if (bundle.some((root) => root.fingerprint256 === current.fingerprint256 || issuedBy(current, root))) return true;
    const next = chain[index + 1];
    if (next === undefined || !issuedBy(current, next)) return false;
  }
  return false;
}

function buildMaterial(pem: PemMaterial, trustDomain: string, now = new Date()): Material {
  const chain = splitPemCertificates(pem.chainPem).map((block) => new X509Certificate(block));
  const leaf = chain[0];
  if (leaf === undefined) throw new Error('certificate chain holds no certificate');
  const trustBundle = splitPemCertificates(pem.rootPem).map((block) => new X509Certificate(block));
  if (trustBundle.length === 0) throw new Error('root certificate file holds no certificate');
  if (!leaf.checkPrivateKey(createPrivateKey(pem.keyPem))) throw new Error('private key does not match the certificate');
  if (!chainsToBundle(chain, trustBundle)) throw new Error('certificate chain is not signed by the root certificate(s)');
  const result = peerIdentityFromCertificate(leaf, trustDomain, now);
  if (!result.ok) throw new Error(`own certificate is not a usable mesh identity: ${result.reason}`);
  // Mesh mTLS offers the same suites as the edge: forward-secret AEAD only (tls-profile.ts).
  const contextOptions = { cert: pem.chainPem, key: pem.keyPem, ca: pem.rootPem, minVersion: MESH_MIN_TLS_VERSION, ciphers: INTERMEDIATE_CIPHERS_OPTION } as const;
  return {
    ...pem,
    contextOptions,
    identity: result.identity,
    notBefore: new Date(leaf.validFrom),
    expiresAt: new Date(leaf.validTo),
    trustBundle,
    serverContext: createSecureContext(contextOptions),
    clientContext: createSecureContext(contextOptions),
  };
}

async function readRequired(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new CertificateFileError(path, (error as NodeJS.ErrnoException).code ?? (error as Error).message);
  }
}

async function readFiles(files: CertificateFiles): Promise<PemMaterial> {
  const [chainPem, keyPem, rootPem] = await Promise.all([readRequired(files.certChain), readRequired(files.privateKey), readRequired(files.rootCert)]);
  return { chainPem, keyPem, rootPem };
}

type MaterialSource = () => Promise<PemMaterial>;

/**
 * Events: `rotated` (identity: PeerIdentity) after new material is in service; `rejected` (reason: string)
 * when new material was refused and the previous one kept.
 */
export class CertificateStore extends EventEmitter {
  private material: Material;
  private readonly watchers: ConfigWatcher[] = [];
  private renewTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private closed = false;

  private constructor(
    material: Material,
    private readonly source: MaterialSource,
    private readonly trustDomain: string,
    private readonly logger: StoreLogger,
  ) {
    super();
    this.material = material;
  }

  /** Reads `MeshConfig.certificates` files; throws `CertificateFileError` naming the path when one is missing. */
  static async fromFiles(options: CertificateStoreOptions): Promise<CertificateStore> {
    const source = (): Promise<PemMaterial> => readFiles(options.files);
    const store = await CertificateStore.create(source, options.trustDomain, options.logger, 'files');
    store.watchers.push(watchFiles([options.files.certChain, options.files.privateKey, options.files.rootCert], () => store.scheduleReload(), options.debounceMs));
    return store;
  }

  /** Development: issues its own short-lived SVID from a CA on disk and renews it at half its lifetime. */
  static async selfIssued(options: SelfIssuedOptions): Promise<CertificateStore> {
    const [certPem, keyPem] = await Promise.all([readRequired(options.caCertPath), readRequired(options.caKeyPath)]);
    return CertificateStore.issuingFrom({ certPem, keyPem }, options);
  }

  /** Development without any files: an in-memory root CA that lives as long as the process. */
  static async ephemeral(options: EphemeralOptions): Promise<CertificateStore> {
    return CertificateStore.issuingFrom(await createRootCa({ trustDomain: options.trustDomain }), options);
  }

  private static async issuingFrom(ca: KeyAndCertificate, options: EphemeralOptions): Promise<CertificateStore> {
    const source = async (): Promise<PemMaterial> => {
      const issued = await issueWorkloadCertificate({ ca, ...options, validityHours: options.ttlHours });
      return { chainPem: issued.chainPem, keyPem: issued.keyPem, rootPem: ca.certPem };
    };
    const store = await CertificateStore.create(source, options.trustDomain, options.logger, 'self-issued');
    store.scheduleRenewal();
    return store;
  }

  private static async create(source: MaterialSource, trustDomain: string, logger: StoreLogger, origin: string): Promise<CertificateStore> {
    const material = buildMaterial(await source(), trustDomain);
    logger.info({ principal: material.identity.principal, expiresAt: material.expiresAt.toISOString(), origin }, 'mesh certificate loaded');
    return new CertificateStore(material, source, trustDomain, logger);
  }

  get identity(): PeerIdentity {
    return this.material.identity;
  }

  get expiresAt(): Date {
    return this.material.expiresAt;
  }

  get trustBundle(): readonly X509Certificate[] {
    return this.material.trustBundle;
  }

  get trustBundlePem(): string {
    return this.material.rootPem;
  }

  /** For SNICallback-based inbound listeners: presents our chain, verifies clients against the trust bundle. */
  serverContext(): SecureContext {
    return this.material.serverContext;
  }

  /**
   * Options for `tls.createServer`/`https.createServer`: node ignores a `secureContext` option on servers,
   * so a listener is created from these and kept current with `keepServerCurrent`.
   */
  tlsOptions(): Readonly<SecureContextOptions> {
    return this.material.contextOptions;
  }

  /** Swaps the server's default context on every rotation; established connections keep theirs. Returns the unsubscribe. */
  keepServerCurrent(server: TlsServer): () => void {
    const onRotated = (): void => server.setSecureContext(this.material.contextOptions);
    this.on('rotated', onRotated);
    return () => this.off('rotated', onRotated);
  }

  /** For mTLS origination (ISTIO_MUTUAL): presents our chain, verifies servers against the trust bundle. */
  clientContext(): SecureContext {
    return this.material.clientContext;
  }

  /**
   * Checks the identity of a peer whose chain the TLS stack already verified against `trustBundle`.
   * Returns null when acceptable, otherwise the reason (for logs and the reply details).
   */
  verifyPeer(cert: X509Certificate, expectedPrincipals?: readonly string[]): string | null {
    const result = peerIdentityFromCertificate(cert, this.trustDomain);
    if (!result.ok) return result.reason;
    if (expectedPrincipals !== undefined && expectedPrincipals.length > 0 && !expectedPrincipals.includes(result.identity.principal)) {
      return `peer ${result.identity.principal} is not one of the expected identities (${expectedPrincipals.join(', ')})`;
    }
    return null;
  }

  /** Re-reads the material now; resolves once the attempt finished (successful or refused). */
  reload(): Promise<void> {
    if (this.reloading !== undefined) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain && !this.closed) {
        this.reloadAgain = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  close(): void {
    this.closed = true;
    for (const watcher of this.watchers) watcher.close();
    if (this.renewTimer !== undefined) clearTimeout(this.renewTimer);
  }

  private scheduleReload(): void {
    if (!this.closed) void this.reload();
  }

  private async reloadOnce(): Promise<void> {
    let next: Material;
    try {
      const pem = await this.source();
      const current = this.material;
      if (pem.chainPem === current.chainPem && pem.keyPem === current.keyPem && pem.rootPem === current.rootPem) return;
      next = buildMaterial(pem, this.trustDomain);
    } catch (error) {
      const reason = (error as Error).message;
      this.logger.error({ reason, principal: this.material.identity.principal }, 'new mesh certificate refused; keeping the current one');
      this.emit('rejected', reason);
      return;
    }
    if (this.closed) return;
    this.material = next;
    this.logger.info({ principal: next.identity.principal, expiresAt: next.expiresAt.toISOString() }, 'mesh certificate rotated');
    this.emit('rotated', next.identity);
  }

  private scheduleRenewal(): void {
    if (this.closed) return;
    const { notBefore, expiresAt } = this.material;
    const renewAt = notBefore.getTime() + (expiresAt.getTime() - notBefore.getTime()) * RENEW_AT_FRACTION;
    const delay = Math.min(MAX_TIMER_MS, Math.max(MIN_RENEW_DELAY_MS, renewAt - Date.now()));
    this.renewTimer = setTimeout(() => {
      void this.reload().finally(() => this.scheduleRenewal());
    }, delay);
    this.renewTimer.unref();
  }
}
