/**
 * The client connections of one listener: HTTP/1.x sockets and HTTP/2 sessions, tracked per connection
 * (never per request) for two jobs.
 *
 * Drains: a draining listener tells its clients before it closes, as Envoy does: HTTP/1.1 responses
 * still to be written carry `Connection: close` (fastify adds it to requests that arrive while closing)
 * and HTTP/2 sessions get a GOAWAY, so a client never sends a request on a connection that is about to
 * be cut. At the drain deadline whatever is still open is closed.
 *
 * HTTP/2 abuse: streams reset before their response completed — by the client (RST_STREAM, Rapid Reset,
 * CVE-2023-44487) or by the server because of a client frame error (the "MadeYouReset" family,
 * CVE-2025-8671) — are counted per session. A session with `http2MaxPrematureResets` such resets that
 * make up at least half of its streams (Envoy's premature-reset rule) is closed with GOAWAY
 * ENHANCE_YOUR_CALM. Invalid frames and refused streams are bounded by node itself
 * (`maxSessionInvalidFrames`, `maxSessionRejectedStreams`).
 */
import http2 from 'node:http2';
import type { Http2Session, Http2Stream } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ClientConnectionSettings } from './listener-spec.js';

export interface AbusiveSessionReport {
  readonly resets: number;
  readonly streams: number;
}

/** The response node's HTTP/1 server is writing on a socket (`socket._httpMessage`, stable since node 0.x). */
interface Http1Socket extends Socket {
  readonly _httpMessage?: { readonly headersSent: boolean; shouldKeepAlive: boolean } | null;
}

/** How long an abusive session may take to flush its GOAWAY before its socket is cut. */
const ABUSIVE_CLOSE_GRACE_MS = 1000;

/**
 * GOAWAY ENHANCE_YOUR_CALM, then close: new streams are refused at once, and the socket is cut shortly
 * after whatever happens. Destroying at once could drop the GOAWAY before it is flushed.
 */
function closeAbusive(session: Http2Session): void {
  session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  session.close();
  setTimeout(() => session.destroy(), ABUSIVE_CLOSE_GRACE_MS).unref();
}

export class ClientConnections {
  private readonly sockets = new Set<Http1Socket>();
  private readonly sessions = new Set<Http2Session>();
  private draining = false;

  constructor(
    private readonly settings: ClientConnectionSettings,
    private readonly onAbusive: (report: AbusiveSessionReport) => void,
  ) {}

  /**
   * Tracks what `server` accepts: its HTTP/1.x sockets (on a TLS server, once ALPN has not chosen h2)
   * and the HTTP/2 sessions it emits. A listener may serve through several servers (the sidecar's
   * inbound port: mTLS, plaintext HTTP/1 and h2c); each is watched.
   */
  watch(server: NetServer, secure: boolean): this {
    if (secure) {
      server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol !== 'h2') this.trackSocket(socket);
      });
    } else {
      server.on('connection', (socket: Socket) => this.trackSocket(socket));
    }
    // Plaintext listeners emit the sessions of their h2c connections too (h2c.ts).
    server.on('session', (session: Http2Session) => this.trackSession(session));
    return this;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Every open connection is told to close after what it is doing now. */
  startDrain(): void {
    this.draining = true;
    for (const socket of this.sockets) {
      const response = socket._httpMessage;
      if (response != null && !response.headersSent) response.shouldKeepAlive = false;
    }
    for (const session of this.sessions) if (!session.closed && !session.destroyed) session.close();
  }

  /** Past the drain deadline: cut what is left. */
  closeAll(): void {
    for (const socket of this.sockets) socket.destroy();
    for (const session of this.sessions) session.destroy();
  }

  private trackSocket(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  trackSession(session: Http2Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    if (this.draining) session.close();
    const limit = this.settings.http2MaxPrematureResets;
    let streams = 0;
    let resets = 0;
    session.on('stream', (stream: Http2Stream) => {
      streams += 1;
      stream.once('close', () => {
        // NO_ERROR is how a completed stream closes; any other code is a reset by one side or the other.
        if (stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) return;
        resets += 1;
        if (resets >= limit && resets * 2 >= streams && !session.closed && !session.destroyed) {
          this.onAbusive({ resets, streams });
          closeAbusive(session);
        }
      });
    });
  }
}
