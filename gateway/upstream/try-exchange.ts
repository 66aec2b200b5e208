/**
 * One try on undici's dispatch API: the status and headers resolve `response` before any body byte is
 * taken, so the retry decision is made on them; the body is then either relayed straight into the
 * client's response (no intermediate stream), turned into a Readable, or discarded before a retry.
 * Until one of those is chosen (a few microtasks later) the chunks undici already read are held; undici
 * is paused only if they exceed HELD_LIMIT, because pausing its parser and resuming it costs more than
 * holding the small body of a typical response.
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface TryResponse {
  readonly statusCode: number;
  readonly headers: ResponseHeaders;
  readonly body: UpstreamBody;
}

/** What a relayed body is written to: node's ServerResponse and Http2ServerResponse both fit. */
export interface RelayTarget {
  write(chunk: Buffer): boolean;
  /** Trailers the upstream sent after the body (gRPC's grpc-status), relayed before the end. */
  addTrailers(trailers: ResponseHeaders): unknown;
  end(): unknown;
  destroy(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

interface BodySink {
  write(chunk: Buffer): boolean;
  end(trailers: ResponseHeaders | null): void;
  fail(error: Error): void;
}

/** Bytes read from a response that is thrown away before a retry; beyond it the connection is closed instead. */
const DISCARD_LIMIT = 128 * 1024;
/** Bytes held while no consumer is attached, before undici is paused. */
const HELD_LIMIT = 64 * 1024;

export class UpstreamBody {
  private sink: BodySink | null = null;
  private queued: Buffer[] | null = null;
  private queuedBytes = 0;
  private state: 'open' | 'ended' | 'failed' = 'open';
  private failure: Error | null = null;
  private trailers: ResponseHeaders | null = null;
  private settled: (() => void) | null = null;

  constructor(private readonly controller: Dispatcher.DispatchController) {}

  /** Runs once the body has ended or failed (or at once if it already has). */
  whenSettled(callback: () => void): void {
    if (this.state === 'open') this.settled = callback;
    else callback();
  }

  /** Writes the body into `target` with backpressure and ends it; an upstream failure destroys it. */
  relayTo(target: RelayTarget): void {
    let awaitingDrain = false;
    const resume = (): void => {
      awaitingDrain = false;
      this.resume();
    };
    this.attach({
      write: (chunk) => {
        if (target.write(chunk)) return true;
        // Several held chunks may each be refused before the first drain: one listener is enough.
        if (!awaitingDrain) {
          awaitingDrain = true;
          target.once('drain', resume);
        }
        return false;
      },
      end: (trailers) => {
        if (trailers !== null) target.addTrailers(trailers);
        target.end();
      },
      // As fastify does for a failed stream payload: destroy without an error, the client sees a cut response.
      fail: () => target.destroy(),
    });
  }

  toReadable(): Readable {
    const readable = new Readable({
      read: () => this.resume(),
      destroy: (error, callback) => {
        if (this.state === 'open') this.controller.abort(error ?? new Error('response body destroyed'));
        callback(error);
      },
    });
    this.attach({ write: (chunk) => readable.push(chunk), end: () => readable.push(null), fail: (error) => readable.destroy(error) });
    return readable;
  }

  /** Reads and drops the body (a response about to be retried); resolves once it is gone. */
  discard(): Promise<void> {
    return new Promise((resolve) => {
      let read = 0;
      this.attach({
        write: (chunk) => {
          read += chunk.length;
          if (read > DISCARD_LIMIT) this.controller.abort(new Error('discarded response too large'));
          return true;
        },
        end: () => resolve(),
        fail: () => resolve(),
      });
    });
  }

  onData(chunk: Buffer): void {
    if (this.sink !== null) {
      if (!this.sink.write(chunk)) this.controller.pause();
      return;
    }
    (this.queued ??= []).push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HELD_LIMIT) this.controller.pause();
  }

  onEnd(trailers: ResponseHeaders | null): void {
    this.state = 'ended';
    this.trailers = trailers;
    this.sink?.end(trailers);
    this.settle();
  }

  onError(error: Error): void {
    this.state = 'failed';
    this.failure = error;
    this.sink?.fail(error);
    this.settle();
  }

  private settle(): void {
    const settled = this.settled;
    this.settled = null;
    settled?.();
  }

  private resume(): void {
    if (this.state === 'open') this.controller.resume();
  }

  private attach(sink: BodySink): void {
    if (this.sink !== null) throw new Error('an upstream body is consumed once');
    this.sink = sink;
    const queued = this.queued;
    this.queued = null;
    let flowing = true;
    if (queued !== null) for (const chunk of queued) flowing = sink.write(chunk) && flowing;
    if (this.state === 'ended') sink.end(this.trailers);
    else if (this.state === 'failed') sink.fail(this.failure as Error);
    else if (flowing) this.resume();
    else this.controller.pause();
  }
}

function hasTrailers(trailers: ResponseHeaders | undefined): trailers is ResponseHeaders {
  if (trailers === undefined || trailers === null) return false;
  for (const _name in trailers) return true;
  return false;
}

/** `overflowed`: it got a connection but the circuit breaker refused to let it run (already accounted). */
export type TrySlot = 'active' | 'pending' | 'overflowed';

export interface PendingTry {
  attach(): boolean;
  readonly overflowReason: unknown;
}

/**
 * The undici handler of one try. `cancel` works at any point: before undici starts the request (it is
 * aborted as soon as it does), while waiting for headers, and while the body streams.
 */
export class TryExchange implements Dispatcher.DispatchHandler {
  readonly response: Promise<TryResponse>;
  cancelled = false;
  cancelReason: unknown = undefined;
  private controller: Dispatcher.DispatchController | null = null;
  private body: UpstreamBody | null = null;
  private resolve!: (response: TryResponse) => void;
  private reject!: (error: Error) => void;
  private finished = false;

  /** Where the try stands with the circuit breaker when it ends. */
  private slot: TrySlot;

  /**
   * `release` runs exactly once, when the try is over: failed, or its body ended or failed. A try that
   * waits for a connection passes `pending`: undici starts it once it has one, and `pending.attach()`
   * then decides whether it may run (false: circuit-breaker overflow, the try is cancelled with
   * `pending.overflowReason`).
   */
  constructor(
    private readonly release: (slot: TrySlot) => void,
    private readonly pending: PendingTry | null = null,
  ) {
    this.slot = pending === null ? 'active' : 'pending';
    this.response = new Promise<TryResponse>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  cancel(reason: unknown): void {
    if (this.cancelled || this.finished) return;
    this.cancelled = true;
    this.cancelReason = reason;
    this.controller?.abort(new Error('upstream try cancelled'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cancelled) {
      controller.abort(new Error('upstream try cancelled'));
      return;
    }
    if (this.slot !== 'pending' || this.pending === null) return;
    if (this.pending.attach()) {
      this.slot = 'active';
      return;
    }
    this.slot = 'overflowed';
    this.cancel(this.pending.overflowReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: ResponseHeaders): void {
    // 1xx informational answers precede the real one.
    if (statusCode < 200 || this.body !== null) return;
    this.body = new UpstreamBody(controller);
    this.resolve({ statusCode, headers, body: this.body });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body?.onData(chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: ResponseHeaders): void {
    this.finish();
    this.body?.onEnd(hasTrailers(trailers) ? trailers : null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.finish();
    if (this.body === null) this.reject(error);
    else this.body.onError(error);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.release(this.slot);
  }
}
