/**
 * A sidecar's inbound port accepts mesh mTLS and — when PeerAuthentication allows it — plaintext on the
 * SAME port, like Envoy's TLS inspector: the first byte of a connection tells a TLS ClientHello (0x16)
 * from HTTP. The mode is read per connection from the current snapshot, so a reload from PERMISSIVE
 * to STRICT takes effect for the next connection without reopening the port.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { MtlsMode } from '../policy/peer-authentication.js';
import { checkPeerCertificate, inboundHandshakeErrorLogger, presentedCertificate, rememberPeerIdentity } from './peer.js';

const TLS_HANDSHAKE = 0x16;

export interface InboundServerOptions {
  readonly tlsOptions: () => Readonly<SecureContextOptions>;
  /** Keeps the TLS server's certificate current across rotations. */
  readonly keepCurrent: (server: https.Server) => void;
  readonly mode: () => MtlsMode;
  readonly trustDomain: () => string;
  readonly logger: FastifyBaseLogger;
  /** Idle keep-alive timeout of client connections (mesh peers keep pooled connections open). */
  readonly keepAliveTimeoutMs: number;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** The listening socket fastify sees; it hands each connection to the plaintext or the TLS HTTP server. */
export class InboundServer extends net.Server {
  readonly plain: http.Server;
  readonly secure: https.Server;

  constructor(handler: Handler, private readonly options: InboundServerOptions) {
    // Set here because the inner HTTP servers never see the accept: without it Nagle holds a response's
    // last segment until the peer's delayed ACK (~40 ms) whenever headers and body go out as two writes.
    super({ noDelay: true });
    this.plain = http.createServer(handler);
    this.secure = https.createServer({ ...options.tlsOptions(), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] }, handler);
    options.keepCurrent(this.secure);
    this.plain.keepAliveTimeout = options.keepAliveTimeoutMs;
    this.secure.keepAliveTimeout = options.keepAliveTimeoutMs;
    this.secure.on('tlsClientError', inboundHandshakeErrorLogger(options.logger));
    // The chain is verified by TLS; the identity must also be a valid SPIFFE ID of this trust domain,
    // otherwise the connection is closed before a request is read (it would otherwise look anonymous).
    // Prepended: it must run before the HTTP server attaches its parser to the socket.
    this.secure.prependListener('secureConnection', (socket: TLSSocket) => {
      const cert = presentedCertificate(socket);
      const result = cert === undefined ? { ok: false as const, reason: 'no client certificate' } : checkPeerCertificate(cert, options.trustDomain());
      if (result.ok) {
        rememberPeerIdentity(socket, result.identity);
      } else {
        options.logger.warn({ reason: result.reason, peer: socket.remoteAddress }, 'inbound mTLS peer refused');
        socket.destroy();
      }
    });
    this.on('connection', (socket: Socket) => this.dispatch(socket));
  }

  private dispatch(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    // STRICT takes mTLS only: the TLS server reads the ClientHello itself, as a plain TLS listener does
    // (reading the first byte here first cost ~15 % of a resumed handshake, measured), and a plaintext
    // client fails its handshake (inboundHandshakeErrorLogger says so).
    if (this.options.mode() === 'STRICT') {
      this.secure.emit('connection', socket);
      return;
    }
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const mode = this.options.mode();
      const isTls = chunk[0] === TLS_HANDSHAKE;
      if (isTls && mode === 'DISABLE') return this.refuse(socket, 'TLS connection refused: PeerAuthentication mode is DISABLE');
      if (!isTls && mode === 'STRICT') return this.refuse(socket, 'plaintext connection refused: PeerAuthentication mode is STRICT');
      if (isTls) {
        // The TLS socket takes over reading (including the unshifted ClientHello); resuming here would race it.
        this.secure.emit('connection', socket);
      } else {
        this.plain.emit('connection', socket);
        socket.resume();
      }
    });
  }

  private refuse(socket: Socket, reason: string): void {
    this.options.logger.warn({ peer: socket.remoteAddress }, reason);
    socket.destroy();
  }

  closeIdleConnections(): void {
    this.plain.closeIdleConnections();
    this.secure.closeIdleConnections();
  }

  closeAllConnections(): void {
    this.plain.closeAllConnections();
    this.secure.closeAllConnections();
  }

  override close(callback?: (error?: Error) => void): this {
    this.plain.close();
    this.secure.close();
    return super.close(callback);
  }
}
