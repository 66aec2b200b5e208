/**
 * HTTP/2 over plaintext (h2c) with prior knowledge on listeners that also serve HTTP/1.1: a client that
 * knows the port speaks HTTP/2 (a gRPC client calling its sidecar, a proxy upgrading its upstream hop)
 * opens with the connection preface, which no HTTP/1.x request starts with. The first bytes of each
 * connection decide which server parses it, as Envoy's codec `AUTO` does; node's `allowHTTP1` is not
 * available for plaintext servers on every node version meshgate supports.
 */
import http2 from 'node:http2';
import type { Http2Server, Http2Session } from 'node:http2';
import http from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type ConnectionProtocol = 'h2c' | 'http1' | 'undecided';

/** What the bytes a connection sent first say about its protocol (`undecided`: a prefix of the preface, read more). */
export function sniffProtocol(head: Buffer): ConnectionProtocol {
  const length = Math.min(head.length, PREFACE.length);
  if (head.compare(PREFACE, 0, length, 0, length) !== 0) return 'http1';
  return length === PREFACE.length ? 'h2c' : 'undecided';
}

export interface SniffOptions {
  /** A client that sends nothing decisive within this is closed (0: no limit); the HTTP/1 head deadline only starts once its parser has the socket. */
  readonly firstBytesTimeoutMs: number;
  readonly http1: (socket: Socket) => void;
  readonly h2c: (socket: Socket) => void;
}

/** Reads until the protocol is known, puts the bytes back and hands the socket over. */
export function sniffConnection(socket: Socket, options: SniffOptions): void {
  let head: Buffer = Buffer.alloc(0);
  const timer = options.firstBytesTimeoutMs > 0 ? setTimeout(() => socket.destroy(), options.firstBytesTimeoutMs) : null;
  const onError = (): void => {
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const protocol = sniffProtocol(head);
    if (protocol === 'undecided') return;
    if (timer !== null) clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    socket.pause();
    socket.unshift(head);
    // The HTTP/2 session takes the buffered bytes over itself; the HTTP/1 parser reads them from the resumed stream.
    if (protocol === 'h2c') options.h2c(socket);
    else {
      options.http1(socket);
      socket.resume();
    }
  };
  socket.on('error', onError);
  socket.on('data', onData);
  socket.once('close', () => {
    if (timer !== null) clearTimeout(timer);
  });
}

export interface H2cServerOptions {
  readonly maxConcurrentStreams: number;
  /** A session idle this long is closed (0: never). */
  readonly idleTimeoutMs: number;
  /** Each new session, for the listener's connection tracking (drain, abuse limits). */
  readonly onSession: (session: Http2Session) => void;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** The HTTP/2 server sniffed connections are handed to (`emit('connection', socket)`); it never listens itself. */
export function createH2cServer(handler: Handler, options: H2cServerOptions): Http2Server {
  const server = http2.createServer({ settings: { maxConcurrentStreams: options.maxConcurrentStreams } }, handler as never);
  server.on('session', (session: Http2Session) => {
    if (options.idleTimeoutMs > 0) session.setTimeout(options.idleTimeoutMs, () => session.close());
    options.onSession(session);
  });
  return server;
}

type ConnectionListener = (this: unknown, socket: Duplex) => void;

/**
 * node's HTTP/1 connection setup (`http._connectionListener`, stable since node 0.x), the one its
 * HTTP/2 server also uses for its HTTP/1.1 fallback: how a socket is handed to HTTP/1 parsing after
 * sniffing, or back to it after an upgrade was refused. Without it (a node that no longer exposes it)
 * plaintext listeners serve HTTP/1 only and a refused upgrade's connection is closed after its response.
 */
export const httpConnectionListener = (http as unknown as { _connectionListener?: ConnectionListener })._connectionListener;

/**
 * Makes a plaintext HTTP/1 server also serve h2c with prior knowledge: its connections are sniffed
 * first, and those that open with the preface go to an HTTP/2 server calling the same request handler,
 * whose sessions the HTTP/1 server emits as `session` (as an HTTP/2 server would). False when node's
 * HTTP/1 connection listener cannot be found (the server is then left as it was).
 */
export function serveH2cBeside(server: HttpServer, options: Omit<H2cServerOptions, 'onSession'> & { readonly firstBytesTimeoutMs: number }): boolean {
  const handler = server.listeners('request')[0] as Handler | undefined;
  if (httpConnectionListener === undefined || handler === undefined || !server.listeners('connection').includes(httpConnectionListener)) return false;
  const h2c = createH2cServer(handler, { ...options, onSession: (session) => server.emit('session', session) });
  server.removeListener('connection', httpConnectionListener);
  server.prependListener('connection', (socket: Socket) =>
    sniffConnection(socket, {
      firstBytesTimeoutMs: options.firstBytesTimeoutMs,
      http1: (accepted) => httpConnectionListener.call(server, accepted),
      h2c: (accepted) => h2c.emit('connection', accepted),
    }),
  );
  return true;
}
