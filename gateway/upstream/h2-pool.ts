/**
 * HTTP/2 to one upstream endpoint (docs/grpc.md#http2-upstreams): h2c in plain text, ALPN `h2` over
 * TLS (mesh mTLS included), requests multiplexed as streams on one connection, a second connection
 * opened only when every open one has no free stream. Built on node:http2 rather than undici's h2
 * client, which starts a POST (every gRPC call) only when no other request runs on the connection.
 * It speaks undici's dispatch API, so the forwarder drives it exactly as it drives an HTTP/1.1 pool.
 */
import http2 from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ConnectionReadiness } from './circuit-breaker.js';
import type { EndpointPool } from './endpoint.js';
import type { Connector } from './undici-core.js';

export interface H2PoolOptions {
  readonly address: string;
  readonly port: number;
  readonly secure: boolean;
  readonly connect: Connector;
  /** 0 = never close an idle connection. */
  readonly idleTimeoutMs: number;
  /** 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  /**
   * The endpoint's HTTP/1.1 pool, for a TLS endpoint that answers ALPN with `http/1.1` (a server without
   * HTTP/2): `connect` hands it the connection already open first.
   */
  readonly http1Pool: (connect: Connector) => EndpointPool;
  /**
   * The cluster's maxConnections (circuit-breaker.ts): asked before a connection is opened for requests
   * that waited on one that turned out too small (its SETTINGS allow fewer streams than wait). A request
   * admitted to open one has its slot reserved already.
   */
  readonly mayOpenConnection: () => boolean;
}

export type RequestTrailers = Readonly<Record<string, string | string[] | undefined>>;

/** A dispatch that may carry the client's request trailers, known once its body has ended (HTTP/2 upstreams send them). */
export interface UpstreamDispatchOptions extends Dispatcher.DispatchOptions {
  readonly requestTrailers?: () => RequestTrailers;
}

/** Streams a connection carries before the peer's SETTINGS arrive (RFC 9113 recommends allowing at least 100). */
const INITIAL_STREAM_LIMIT = 100;

interface Connection {
  readonly session: ClientHttp2Session;
  streams: number;
  requests: number;
}

interface Queued {
  readonly options: Dispatcher.DispatchOptions;
  readonly handler: Dispatcher.DispatchHandler;
}

class StreamController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  stream: ClientHttp2Stream | null = null;

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.stream?.close(http2.constants.NGHTTP2_CANCEL);
  }

  pause(): void {
    this.paused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream?.resume();
  }
}

function requestHeaders(options: Dispatcher.DispatchOptions, scheme: string, fallbackAuthority: string): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ':method': options.method, ':path': options.path, ':scheme': scheme };
  const flat = options.headers as readonly string[] | undefined;
  let authority = fallbackAuthority;
  if (flat !== undefined) {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = (flat[i] as string).toLowerCase();
      const value = flat[i + 1] as string;
      if (name === 'host') {
        authority = value;
        continue;
      }
      const existing = headers[name];
      if (existing === undefined) headers[name] = value;
      else headers[name] = Array.isArray(existing) ? [...(existing as string[]), value] : [String(existing), value];
    }
  }
  headers[':authority'] = authority;
  return headers;
}

/** Fields HTTP/2 forbids in trailers (connection-specific, RFC 9113 §8.2.2), which node would refuse to send. */
const NOT_IN_TRAILERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host']);

function trailersToSend(received: RequestTrailers): OutgoingHttpHeaders {
  const trailers: OutgoingHttpHeaders = {};
  for (const name in received) {
    const value = received[name];
    if (value !== undefined && !name.startsWith(':') && !NOT_IN_TRAILERS.has(name)) trailers[name] = value;
  }
  return trailers;
}

function responseHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const plain: IncomingHttpHeaders = {};
  for (const name in headers) if (!name.startsWith(':')) plain[name] = headers[name];
  return plain;
}

export class H2Pool implements EndpointPool {
  private readonly connections: Connection[] = [];
  private opening = false;
  private readonly queue: Queued[] = [];
  private closing = false;
  private readonly scheme: string;
  private readonly authority: string;
  /** Set once the endpoint negotiated HTTP/1.1: every request goes there from then on. */
  private http1: EndpointPool | null = null;

  constructor(private readonly options: H2PoolOptions) {
    this.scheme = options.secure ? 'https' : 'http';
    const host = options.address.includes(':') ? `[${options.address}]` : options.address;
    this.authority = `${host}:${options.port}`;
  }

  /** Null once the endpoint speaks HTTP/1.1: one request per connection, which the endpoint's counters tell. */
  readiness(): ConnectionReadiness | null {
    if (this.http1 !== null) return null;
    if (this.available() !== null) return 'ready';
    return this.opening ? 'opening' : 'none';
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.http1 !== null) return this.http1.dispatch(options, handler);
    if (this.closing) {
      handler.onResponseError?.(new StreamController(), new Error('upstream pool is closed'));
      return true;
    }
    const connection = this.available();
    if (connection !== null) this.start(connection, options, handler);
    else {
      this.queue.push({ options, handler });
      this.open();
    }
    return true;
  }

  /** Lets running streams finish, then closes the connections. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([
      ...this.connections.map((c) => new Promise<void>((resolve) => (c.session.closed ? resolve() : c.session.close(resolve)))),
      this.http1?.close(),
    ]);
  }

  private available(): Connection | null {
    for (const connection of this.connections) {
      const session = connection.session;
      if (session.closed || session.destroyed || !session.remoteSettings) continue;
      const limit = session.remoteSettings.maxConcurrentStreams ?? INITIAL_STREAM_LIMIT;
      if (connection.streams >= limit) continue;
      const perConnection = this.options.maxRequestsPerConnection;
      if (perConnection > 0 && connection.requests >= perConnection) continue;
      return connection;
    }
    return null;
  }

  private open(): void {
    if (this.opening) return;
    this.opening = true;
    const { address, port, secure } = this.options;
    this.options.connect(
      { hostname: address, host: address, protocol: secure ? 'https:' : 'http:', port: String(port), localAddress: null, httpSocket: undefined },
      (...args) => {
        if (args[0] !== null) {
          this.opening = false;
          this.failQueue(args[0]);
          return;
        }
        this.attachSession(args[1] as Socket);
      },
    );
  }

  private attachSession(socket: Socket): void {
    if (this.options.secure && (socket as TLSSocket).alpnProtocol !== 'h2') {
      this.switchToHttp1(socket);
      return;
    }
    const session = http2.connect(`${this.scheme}://${this.authority}`, { createConnection: () => socket });
    const connection: Connection = { session, streams: 0, requests: 0 };
    session.once('remoteSettings', () => {
      this.opening = false;
      this.connections.push(connection);
      this.drainQueue();
    });
    session.on('error', () => undefined);
    session.once('close', () => {
      const index = this.connections.indexOf(connection);
      if (index >= 0) {
        this.connections.splice(index, 1);
        this.drainQueue();
      } else {
        // Closed before its SETTINGS arrived: what waited for it fails as a connect failure.
        this.opening = false;
        this.failQueue(Object.assign(new Error('upstream closed the HTTP/2 connection before its SETTINGS'), { code: 'UND_ERR_SOCKET' }));
      }
    });
    if (this.options.idleTimeoutMs > 0) {
      session.setTimeout(this.options.idleTimeoutMs, () => {
        if (connection.streams === 0) session.close();
      });
    }
  }

  private switchToHttp1(socket: Socket): void {
    let opened: Socket | null = socket;
    const connect: Connector = (options, callback) => {
      const handed = opened;
      opened = null;
      // Asynchronously, as a connector answers: undici's client does not expect its connector to call back within the call.
      if (handed !== null && !handed.destroyed) queueMicrotask(() => callback(null, handed));
      else this.options.connect(options, callback);
    };
    const http1 = this.options.http1Pool(connect);
    this.http1 = http1;
    this.opening = false;
    for (const { options, handler } of this.queue.splice(0)) http1.dispatch(options, handler);
  }

  private failQueue(error: Error): void {
    for (const { handler } of this.queue.splice(0)) handler.onResponseError?.(new StreamController(), error);
  }

  private drainQueue(): void {
    while (this.queue.length > 0) {
      const connection = this.available();
      if (connection === null) {
        // Otherwise the queue waits for a stream to finish or a connection to close.
        if (this.options.mayOpenConnection()) this.open();
        return;
      }
      const { options, handler } = this.queue.shift() as Queued;
      this.start(connection, options, handler);
    }
  }

  private start(connection: Connection, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    const controller = new StreamController();
    handler.onRequestStart?.(controller, {});
    if (controller.aborted) {
      handler.onResponseError?.(controller, controller.reason ?? new Error('request aborted'));
      return;
    }
    const body = options.body as Buffer | Readable | null | undefined;
    const withBody = body !== null && body !== undefined;
    const requestTrailers = withBody ? (options as UpstreamDispatchOptions).requestTrailers : undefined;
    const stream = connection.session.request(requestHeaders(options, this.scheme, this.authority), {
      endStream: !withBody,
      waitForTrailers: requestTrailers !== undefined,
    });
    // No trailers is an empty DATA frame ending the stream (node sends that for an empty list).
    if (requestTrailers !== undefined) stream.once('wantTrailers', () => stream.sendTrailers(trailersToSend(requestTrailers())));
    controller.stream = stream;
    connection.streams += 1;
    connection.requests += 1;
    let trailers: IncomingHttpHeaders = {};
    let responded = false;
    let settled = false;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      connection.streams -= 1;
      if (error === null) handler.onResponseEnd?.(controller, trailers);
      else handler.onResponseError?.(controller, error);
      const perConnection = this.options.maxRequestsPerConnection;
      if (perConnection > 0 && connection.requests >= perConnection && connection.streams === 0) connection.session.close();
      this.drainQueue();
    };
    stream.on('response', (headers) => {
      const status = Number(headers[':status']);
      if (status < 200) return;
      responded = true;
      handler.onResponseStart?.(controller, status, responseHeaders(headers));
    });
    stream.on('data', (chunk: Buffer) => handler.onResponseData?.(controller, chunk));
    stream.on('trailers', (received: IncomingHttpHeaders) => {
      trailers = responseHeaders(received);
    });
    const cut = (): Error => controller.reason ?? new Error(`upstream stream closed (HTTP/2 code ${stream.rstCode ?? 0})${responded ? '' : ' before a response'}`);
    // Closing a stream (a cancelled try) ends its readable side too: only a response that ended on its own is complete.
    stream.once('end', () => settle(responded && !controller.aborted ? null : cut()));
    stream.on('error', (error: Error) => settle(error));
    // Only a stream that neither ended nor failed needs the error (building one captures a stack trace).
    stream.once('close', () => {
      if (!settled) settle(cut());
    });
    if (controller.paused) stream.pause();
    if (Buffer.isBuffer(body)) stream.end(body);
    else if (body !== null && body !== undefined) {
      body.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
      body.pipe(stream);
    }
  }
}
