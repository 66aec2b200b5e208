/**
 * The listening socket of a TCP port (docs/tcp.md). A sidecar's inbound TCP port accepts mesh mTLS and,
 * when PeerAuthentication allows it, plaintext on the same port, told apart by the first byte as the
 * HTTP inbound port does (gateway/proxy/inbound-server.ts); the mTLS is terminated here and the peer's
 * SPIFFE identity checked before a byte goes on. A sidecar's egress TCP port takes the app's plaintext.
 * A Gateway PASSTHROUGH port reads the ClientHello's SNI without terminating: the bytes read go on
 * unchanged to the backend, which completes the handshake with the client. A Gateway TLS port in mode
 * SIMPLE/MUTUAL terminates with the servers' certificates (chosen by SNI, client certificates checked as
 * on an HTTPS port: gateway/listeners/tls-server.ts) and relays the decrypted bytes.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { ConnectionAttributes } from '../pipeline/types.js';
import type { MtlsMode } from '../policy/peer-authentication.js';
import type { TlsListener } from '../listeners/tls-server.js';
import { checkPeerCertificate, inboundHandshakeErrorLogger, presentedCertificate } from '../identity/peer.js';
import type { PeerIdentity } from '../pipeline/types.js';
import { proxyConnection } from './proxy.js';
import type { TcpProxyContext } from './proxy.js';
import { readClientHelloSni } from './sni.js';

const TLS_HANDSHAKE = 0x16;

export interface MeshTlsOptions {
  readonly tlsOptions: () => Readonly<SecureContextOptions>;
  /** Keeps the TLS server's certificate current across rotations. */
  readonly keepCurrent: (server: tls.Server) => void;
  readonly mode: () => MtlsMode;
  readonly trustDomain: () => string;
}

export interface TcpListenerOptions {
  readonly proxy: TcpProxyContext;
  readonly logger: FastifyBaseLogger;
  /** Sidecar inbound ports only. */
  readonly meshTls: MeshTlsOptions | null;
  /** Gateway PASSTHROUGH ports: route by the ClientHello's SNI. */
  readonly peekSni: boolean;
  /** Gateway TLS ports that terminate (SIMPLE, MUTUAL, OPTIONAL_MUTUAL). */
  readonly terminate: TlsListener | null;
  /** How long a passthrough client may take to send its ClientHello. */
  readonly clientHelloTimeoutMs: number;
}

/** The most a ClientHello may take before the SNI is given up on (TLS records are at most 16 KiB + header). */
const MAX_CLIENT_HELLO_BYTES = 16_389;

export class TcpListener extends net.Server {
  private readonly secure: tls.Server | null;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly options: TcpListenerOptions) {
    super({ noDelay: true, allowHalfOpen: true });
    const meshTls = options.meshTls;
    const terminate = options.terminate;
    if (terminate !== null) {
      // Opaque bytes after the handshake: no application protocol is negotiated.
      this.secure = tls.createServer({ ...terminate.options, ALPNProtocols: undefined, allowHalfOpen: true });
      terminate.attach(this.secure);
      this.secure.on('tlsClientError', (error, socket) => {
        options.logger.warn({ reason: error.message, peer: socket.remoteAddress }, 'TLS handshake refused');
      });
      this.secure.on('secureConnection', (socket: TLSSocket) => this.onTerminated(socket));
    } else if (meshTls === null) {
      this.secure = null;
    } else {
      this.secure = tls.createServer({ ...meshTls.tlsOptions(), requestCert: true, rejectUnauthorized: true, allowHalfOpen: true });
      meshTls.keepCurrent(this.secure);
      this.secure.on('tlsClientError', inboundHandshakeErrorLogger(options.logger));
      this.secure.on('secureConnection', (socket: TLSSocket) => this.onMeshTls(socket, meshTls));
    }
    this.on('connection', (socket: Socket) => this.accept(socket));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (this.options.terminate !== null) {
      (this.secure as tls.Server).emit('connection', socket);
      return;
    }
    const meshTls = this.options.meshTls;
    if (meshTls !== null) return this.dispatchInbound(socket, meshTls);
    if (this.options.peekSni) return this.peekClientHello(socket);
    proxyConnection(socket, attributesOf(socket, '', null, this.options.proxy), this.options.proxy);
  }

  private dispatchInbound(socket: Socket, meshTls: MeshTlsOptions): void {
    // DISABLE relays at once, TLS bytes included, untouched: nothing waits for the client's first
    // byte, so server-first protocols (MySQL, SMTP) work, as in Istio.
    if (meshTls.mode() === 'DISABLE') {
      proxyConnection(socket, attributesOf(socket, '', null, this.options.proxy), this.options.proxy);
      return;
    }
    // STRICT takes mTLS only: the TLS server reads the ClientHello itself (no first-byte read here).
    if (meshTls.mode() === 'STRICT') {
      (this.secure as tls.Server).emit('connection', socket);
      return;
    }
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const mode = meshTls.mode();
      const isTls = chunk[0] === TLS_HANDSHAKE;
      if (!isTls && mode === 'STRICT') {
        this.options.logger.warn({ peer: socket.remoteAddress }, 'plaintext connection refused: PeerAuthentication mode is STRICT');
        socket.destroy();
        return;
      }
      if (isTls && mode !== 'DISABLE') {
        // The TLS socket takes over reading (including the unshifted ClientHello).
        (this.secure as tls.Server).emit('connection', socket);
        return;
      }
      proxyConnection(socket, attributesOf(socket, '', null, this.options.proxy), this.options.proxy);
    });
  }

  private onMeshTls(socket: TLSSocket, meshTls: MeshTlsOptions): void {
    const cert = presentedCertificate(socket);
    const result = cert === undefined ? { ok: false as const, reason: 'no client certificate' } : checkPeerCertificate(cert, meshTls.trustDomain());
    if (!result.ok) {
      this.options.logger.warn({ reason: result.reason, peer: socket.remoteAddress }, 'inbound mTLS peer refused');
      socket.destroy();
      return;
    }
    socket.on('error', () => socket.destroy());
    const sni = typeof socket.servername === 'string' ? socket.servername : '';
    proxyConnection(socket, attributesOf(socket, sni, result.identity, this.options.proxy), this.options.proxy);
  }

  /** The server's own checks (SNI, client certificate pins) ran first and destroyed what they refused. */
  private onTerminated(socket: TLSSocket): void {
    if (socket.destroyed) return;
    socket.on('error', () => socket.destroy());
    const sni = typeof socket.servername === 'string' ? socket.servername : '';
    proxyConnection(socket, attributesOf(socket, sni, null, this.options.proxy), this.options.proxy);
  }

  private peekClientHello(socket: Socket): void {
    let buffered = Buffer.alloc(0);
    const giveUp = setTimeout(() => socket.destroy(), this.options.clientHelloTimeoutMs);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const sni = readClientHelloSni(buffered);
      if (sni === undefined && buffered.length < MAX_CLIENT_HELLO_BYTES) return;
      clearTimeout(giveUp);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(buffered);
      proxyConnection(socket, attributesOf(socket, sni ?? '', null, this.options.proxy), this.options.proxy);
    };
    socket.on('data', onData);
    socket.once('close', () => clearTimeout(giveUp));
  }

  /** Cuts every open connection (past the drain deadline). */
  closeAllConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  override close(callback?: (error?: Error) => void): this {
    this.secure?.close();
    return super.close(callback);
  }
}

function attributesOf(socket: Socket, sni: string, peer: PeerIdentity | null, proxy: TcpProxyContext): ConnectionAttributes {
  return {
    direction: proxy.spec.direction,
    sourceIp: socket.remoteAddress ?? '',
    sourcePort: socket.remotePort ?? 0,
    destinationIp: socket.localAddress ?? '',
    destinationPort: socket.localPort ?? proxy.spec.port,
    sni,
    peer,
  };
}
