/**
 * A sidecar's inbound port accepts mesh mTLS and — when PeerAuthentication allows it — plaintext on the
 * SAME port, like Envoy's TLS inspector: the first byte of a connection tells a TLS ClientHello (0x16)
 * from HTTP. The mode is read per connection from the current snapshot, so a reload from PERMISSIVE
 * to STRICT takes effect for the next connection without reopening the port.
 *
 * Both carry HTTP/2 as well as HTTP/1.1, so that the hop between two sidecars can be HTTP/2 (gRPC, and
 * `h2UpgradePolicy: UPGRADE`, docs/grpc.md): mTLS offers `h2` and `http/1.1` by ALPN, and a plaintext
 * connection that opens with the HTTP/2 preface is served as h2c. What the app behind it speaks is the
 * inbound cluster's business, not the peer's.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Http2SecureServer, Http2Server, Http2Session } from 'node:http2';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import { checkPeerCertificate, inboundHandshakeErrorLogger, presentedCertificate, rememberPeerIdentity } from '../identity/peer.js';
import type { ClientConnections } from '../listeners/client-connections.js';
import { applyHttp1Limits } from '../listeners/http1-limits.js';
import type { Http1Limits } from '../listeners/http1-limits.js';
import { ALPN_PROTOCOLS } from '../listeners/tls-server.js';
import { createH2cServer, sniffConnection } from '../listeners/h2c.js';
import type { MtlsMode } from '../policy/peer-authentication.js';

const TLS_HANDSHAKE = 0x16;

export interface InboundServerOptions {
  readonly tlsOptions: () => Readonly<SecureContextOptions>;
  /** Keeps the TLS server's certificate current across rotations. */
  readonly keepCurrent: (server: TlsServer) => void;
  readonly mode: () => MtlsMode;
  readonly trustDomain: () => string;
  readonly logger: FastifyBaseLogger;
  /** Idle keep-alive timeout of client connections (mesh peers keep pooled connections open). */
  readonly keepAliveTimeoutMs: number;
  readonly http2MaxConcurrentStreams: number;
  /** The request-head deadline and largest head, for the plaintext and mTLS HTTP/1 servers. */
  readonly http1Limits: Http1Limits;
  /**
   * The listener's client connections, for its drain (Connection: close, GOAWAY, the cut at the
   * deadline): the inner servers' connections are tracked there. node's HTTP/2 secure server has no
   * closeAllConnections for the HTTP/1.1 connections of its fallback, and without this a mesh peer's
   * pooled connection kept a stopped sidecar's process alive until the peer let go.
   */
  readonly connections: ClientConnections;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** The listening socket fastify sees; it hands each connection to the plaintext or the TLS HTTP server. */
export class InboundServer extends net.Server {
  readonly plain: http.Server;
  readonly h2c: Http2Server;
  readonly secure: Http2SecureServer;

  constructor(handler: Handler, private readonly options: InboundServerOptions) {
    // Set here because the inner HTTP servers never see the accept: without it Nagle holds a response's
    // last segment until the peer's delayed ACK (~40 ms) whenever headers and body go out as two writes.
    super({ noDelay: true });
    const { connections } = options;
    const maxConcurrentStreams = options.http2MaxConcurrentStreams;
    this.plain = http.createServer(handler);
    this.h2c = createH2cServer(handler, { maxConcurrentStreams, idleTimeoutMs: options.keepAliveTimeoutMs, onSession: (session) => connections.trackSession(session) });
    this.secure = http2.createSecureServer(
      {
        ...options.tlsOptions(),
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: [...ALPN_PROTOCOLS],
        allowHTTP1: true,
        settings: { maxConcurrentStreams },
      },
      handler as never,
    );
    this.secure.on('session', (session: Http2Session) => session.setTimeout(options.keepAliveTimeoutMs, () => session.close()));
    connections.watch(this.secure, true).watch(this.plain, false);
    applyHttp1Limits(this.plain, options.http1Limits);
    applyHttp1Limits(this.secure, options.http1Limits);
    // node tracks an HTTP/1 server's connections (the request-head deadline, and which connections are
    // idle for closeIdleConnections) only once that server emits 'listening'. The inner servers never
    // listen themselves: without this, a slowloris client held an inbound connection forever and a
    // drain could not close idle ones.
    this.once('listening', () => {
      this.plain.emit('listening');
      this.secure.emit('listening');
    });
    options.keepCurrent(this.secure);
    this.plain.keepAliveTimeout = options.keepAliveTimeoutMs;
    // The HTTP/1.1 fallback of node's HTTP/2 server reads the HTTP/1 server settings from it.
    (this.secure as unknown as http.Server).keepAliveTimeout = options.keepAliveTimeoutMs;
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
        sniffConnection(socket, { firstBytesTimeoutMs: 0, http1: (accepted) => this.plain.emit('connection', accepted), h2c: (accepted) => this.h2c.emit('connection', accepted) });
        socket.resume();
      }
    });
  }

  private refuse(socket: Socket, reason: string): void {
    this.options.logger.warn({ peer: socket.remoteAddress }, reason);
    socket.destroy();
  }

  /** Called by fastify's close: HTTP/1.1 connections with no request in progress close now (HTTP/2 sessions get their GOAWAY from the drain). */
  closeIdleConnections(): void {
    this.plain.closeIdleConnections();
    (this.secure as unknown as http.Server).closeIdleConnections();
  }

  override close(callback?: (error?: Error) => void): this {
    this.plain.close();
    this.h2c.close();
    this.secure.close();
    return super.close(callback);
  }
}
