/**
 * Sends one request to a cluster, with the route's retry policy and timeouts (docs/routing.md#timeouts-and-retries): picks an endpoint, passes the circuit breaker, sends the try with `x-envoy-attempt-count`,
 * records the result for outlier detection, and retries what the policy allows with full-jitter
 * backoff, all within the route timeout. The final response body is streamed, never buffered; the
 * endpoint and circuit-breaker slots are released when that body ends, fails or is destroyed.
 * `exchange` hands the body over unread, to relay straight into the client's response; `forward`
 * hands it over as a Readable.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { LocalReply } from '../pipeline/types.js';
import type { Cluster } from './cluster.js';
import type { UpstreamEndpoint } from './endpoint.js';
import type { RequestTrailers, UpstreamDispatchOptions } from './h2-pool.js';
import { NO_HASH_KEY, computeHashKey } from './hash-key.js';
import * as replies from './replies.js';
import { NO_BODY, prepareBody, streamBody } from './request-body.js';
import type { PreparedBody } from './request-body.js';
import { backoffMs, failureIsRetriable, responseIsRetriable } from './retry-decision.js';
import type { TryFailure } from './retry-decision.js';
import type { RetryPolicy } from '../router/retry-policy.js';
import { isConnectFailure } from './tls-origination.js';
import { Cancellation } from './cancellation.js';
import type { CancelSignal } from './cancellation.js';
import { TryExchange } from './try-exchange.js';
import type { TryResponse, UpstreamBody } from './try-exchange.js';

export type HeaderMap = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface UpstreamRequest {
  readonly method: string;
  /** Path and query as sent upstream. */
  readonly path: string;
  /** Final request headers; the forwarder adds only `x-envoy-attempt-count` (hop-by-hop headers are dropped). */
  readonly headers: HeaderMap;
  readonly body: Readable | null;
  /** The client's request trailers, read once its body has ended (relayed to HTTP/2 upstreams). */
  readonly trailers?: () => RequestTrailers;
  /** Send the body as it arrives instead of buffering its start first (gRPC: a stream's messages may wait for replies). */
  readonly streamBody?: boolean;
  readonly retry: RetryPolicy;
  /** Route timeout covering all tries and backoff; 0 = none. */
  readonly timeoutMs: number;
  /** Client IP, for `useSourceIp` hashing and generated affinity cookies. */
  readonly sourceIp: string;
  /** Aborts when the client goes away. */
  readonly signal: CancelSignal | null;
  /** The client's response: its `close` before the response finished means the client went away. */
  readonly client?: ClientResponse;
  /** Passthrough clusters: where to connect (default: the cluster's own host and port). */
  readonly destination?: { readonly host: string; readonly port: number };
}

export interface ForwardOptions {
  /** Backoff jitter source (tests pass a seeded one). */
  readonly random?: () => number;
}

/**
 * The part of node's ServerResponse (HTTP/1 or HTTP/2) the forwarder watches. `writableEnded` rather
 * than `writableFinished`: node's HTTP/2 compatibility layer marks the response of a stream the client
 * reset (RST_STREAM) as finished, but nobody ended it.
 */
export interface ClientResponse {
  readonly writableEnded: boolean;
  /** HTTP/1.1: the client's socket closed. */
  readonly destroyed?: boolean;
  /** HTTP/2: the client's stream, destroyed once it is closed or reset. */
  readonly stream?: { readonly destroyed: boolean };
  once(event: 'close', listener: () => void): unknown;
  removeListener(event: 'close', listener: () => void): unknown;
}

type Outcome<Body> =
  | {
      readonly kind: 'response';
      readonly statusCode: number;
      readonly headers: HeaderMap;
      readonly body: Body;
      readonly endpoint: string;
      readonly attempts: number;
      readonly flags: string[];
      /** `Set-Cookie` for a generated consistent-hash cookie, to add to the response. */
      readonly setCookie?: string;
    }
  | {
      readonly kind: 'local';
      readonly reply: LocalReply;
      readonly extraHeaders?: Readonly<Record<string, string>>;
      readonly attempts: number;
      readonly flags: string[];
      readonly endpoint?: string;
    };

export type UpstreamOutcome = Outcome<Readable>;
/** Like UpstreamOutcome, with the body not read yet: relay it (`relayTo`) or stream it (`toReadable`). */
export type UpstreamExchange = Outcome<UpstreamBody>;

/** Headers undici refuses or that belong to one hop only. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'expect', 'x-envoy-attempt-count']);

const ROUTE_TIMEOUT = Symbol('route timeout');
const PER_TRY_TIMEOUT = Symbol('per-try timeout');
const CLIENT_GONE = Symbol('client gone');
/** The try waited for a connection and got one while http2MaxRequests requests were active. */
const OVERFLOW_ON_ATTACH = Symbol('overflow on attach');

/** The headers of the first try, as undici's flat name/value list ending with `x-envoy-attempt-count: 1`. */
function flattenHeaders(headers: HeaderMap): string[] {
  const flat: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (typeof value === 'string') flat.push(name, value);
    else for (const item of value) flat.push(name, item);
  }
  flat.push('x-envoy-attempt-count', '1');
  return flat;
}

function withAttemptCount(firstTryHeaders: readonly string[], attempt: number): string[] {
  const headers = firstTryHeaders.slice();
  headers[headers.length - 1] = String(attempt);
  return headers;
}

function sleep(ms: number, signal: CancelSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

type TryResult =
  | { readonly kind: 'response'; readonly response: TryResponse }
  | { readonly kind: 'failure'; readonly failure: TryFailure | typeof ROUTE_TIMEOUT | typeof CLIENT_GONE | typeof OVERFLOW_ON_ATTACH };

function local(reply: LocalReply, attempts: number, flags: string[], endpoint?: string): UpstreamExchange {
  if (!flags.includes(reply.flag)) flags.unshift(reply.flag);
  return endpoint === undefined ? { kind: 'local', reply, attempts, flags } : { kind: 'local', reply, attempts, flags, endpoint };
}

function overflow(attempts: number, flags: readonly string[]): UpstreamExchange {
  return { kind: 'local', reply: replies.OVERFLOW, extraHeaders: replies.OVERFLOW_HEADERS, attempts, flags: ['UO', ...flags] };
}

function bodyForTry(body: PreparedBody): Buffer | Readable | null {
  if (body.kind === 'none') return null;
  return body.kind === 'buffered' ? body.data : body.view();
}

/** Whether this body can be sent again after `failure` (or after a response, when `failure` is null). */
function canResend(body: PreparedBody, failure: TryFailure | null): boolean {
  if (body.kind !== 'stream') return true;
  return (failure === 'connect-failure' && !body.started()) || body.replayable();
}

function endpointFor(cluster: Cluster, request: UpstreamRequest, hash: number | null, tried: UpstreamEndpoint[]): UpstreamEndpoint | null {
  if (!cluster.passthrough) return cluster.pick(hash, request.retry.retryIgnorePreviousHosts ? tried : null);
  if (request.destination !== undefined) return cluster.passthroughEndpoint(request.destination.host, request.destination.port);
  return cluster.host.startsWith('*') ? null : cluster.passthroughEndpoint(cluster.host, cluster.port);
}

/** A try admitted by the circuit breaker: running, or pending (and whether it reserved a new connection). */
type TrySlotAdmission = 'active' | 'pending' | 'pending-opens';

async function sendTry(
  cluster: Cluster,
  endpoint: UpstreamEndpoint,
  request: UpstreamRequest,
  headers: string[],
  body: PreparedBody,
  route: Cancellation,
  admission: TrySlotAdmission,
): Promise<TryResult> {
  const perTry = request.retry.perTryTimeoutMs;
  let perTryTimer: NodeJS.Timeout | null = null;
  endpoint.active += 1;
  endpoint.totalRequests += 1;
  const breaker = cluster.breaker;
  const opened = admission === 'pending-opens';
  const exchange = new TryExchange(
    (slot) => {
      if (perTryTimer !== null) clearTimeout(perTryTimer);
      route.removeEventListener('abort', onRouteAbort);
      endpoint.active -= 1;
      if (slot === 'active') breaker.releaseActive();
      else if (slot === 'pending') breaker.releasePending(opened);
    },
    admission === 'active' ? null : { attach: () => breaker.attach(opened), overflowReason: OVERFLOW_ON_ATTACH },
  );
  const onRouteAbort = (): void => exchange.cancel(route.reason);
  route.addEventListener('abort', onRouteAbort);
  if (perTry > 0) perTryTimer = setTimeout(() => exchange.cancel(PER_TRY_TIMEOUT), perTry);
  const dispatch: UpstreamDispatchOptions = {
    method: request.method as Dispatcher.HttpMethod,
    path: request.path,
    headers,
    body: bodyForTry(body),
    ...(request.trailers === undefined ? {} : { requestTrailers: request.trailers }),
  };
  endpoint.pool.dispatch(dispatch, exchange);
  try {
    return { kind: 'response', response: await exchange.response };
  } catch (error) {
    const reason: unknown = exchange.cancelled ? exchange.cancelReason : null;
    if (reason === OVERFLOW_ON_ATTACH) return { kind: 'failure', failure: OVERFLOW_ON_ATTACH };
    endpoint.totalFailures += 1;
    if (reason === ROUTE_TIMEOUT || reason === CLIENT_GONE) return { kind: 'failure', failure: reason };
    if (reason === PER_TRY_TIMEOUT) return { kind: 'failure', failure: 'per-try-timeout' };
    if (!isConnectFailure(error)) return { kind: 'failure', failure: 'reset' };
    cluster.connectFailures += 1;
    return { kind: 'failure', failure: 'connect-failure' };
  }
}

function failureReply(failure: TryFailure): LocalReply {
  if (failure === 'per-try-timeout') return replies.PER_TRY_TIMEOUT;
  return failure === 'connect-failure' ? replies.CONNECT_FAILURE : replies.CONNECTION_TERMINATED;
}

export async function forward(cluster: Cluster, request: UpstreamRequest, options: ForwardOptions = {}): Promise<UpstreamOutcome> {
  const outcome = await exchange(cluster, request, options);
  return outcome.kind === 'response' ? { ...outcome, body: outcome.body.toReadable() } : outcome;
}

export async function exchange(cluster: Cluster, request: UpstreamRequest, options: ForwardOptions = {}): Promise<UpstreamExchange> {
  const random = options.random ?? Math.random;
  const route = new Cancellation();
  const routeTimer = request.timeoutMs > 0 ? setTimeout(() => route.abort(ROUTE_TIMEOUT), request.timeoutMs) : null;
  const onClientGone = (): void => route.abort(CLIENT_GONE);
  const client = request.client;
  const onClientClose = (): void => {
    if (client !== undefined && !client.writableEnded) route.abort(CLIENT_GONE);
  };
  client?.once('close', onClientClose);
  // The stream may be gone already (a rapid reset lands before the pipeline reaches the upstream): then nothing is sent.
  if (client !== undefined && (client.destroyed === true || client.stream?.destroyed === true) && !client.writableEnded) route.abort(CLIENT_GONE);
  request.signal?.addEventListener('abort', onClientGone, { once: true });
  if (request.signal?.aborted === true) route.abort(CLIENT_GONE);
  let handedOver = false;
  const finish = (): void => {
    if (routeTimer !== null) clearTimeout(routeTimer);
    client?.removeListener('close', onClientClose);
    request.signal?.removeEventListener('abort', onClientGone);
  };
  try {
    const outcome = await forwardWithRetries(cluster, request, route, random);
    if (outcome.kind === 'response') {
      handedOver = true;
      // The route timeout keeps running until the response body is complete, as in Envoy.
      outcome.body.whenSettled(finish);
    }
    return outcome;
  } finally {
    if (!handedOver) finish();
  }
}

async function forwardWithRetries(cluster: Cluster, request: UpstreamRequest, route: Cancellation, random: () => number): Promise<UpstreamExchange> {
  cluster.totalRequests += 1;
  const policy = request.retry;
  const flags: string[] = [];
  const hashSource = cluster.policy.loadBalancer.hashKey;
  const { hash, setCookie } =
    hashSource === null ? NO_HASH_KEY : computeHashKey(hashSource, { headers: request.headers, sourceIp: request.sourceIp, path: request.path });
  let body: PreparedBody;
  try {
    body = request.body === null ? NO_BODY : request.streamBody === true ? streamBody(request.body) : await prepareBody(request.body, route);
  } catch {
    return local(route.reason === ROUTE_TIMEOUT ? replies.ROUTE_TIMEOUT : replies.DOWNSTREAM_DISCONNECT, 0, flags);
  }
  const firstTryHeaders = flattenHeaders(request.headers);
  const tried: UpstreamEndpoint[] = [];
  const maxTries = 1 + policy.attempts;
  let last: UpstreamExchange | null = null;
  let retrySlotTaken = false;
  for (let attempt = 1; attempt <= maxTries; attempt++) {
    let holdsRetrySlot = retrySlotTaken;
    retrySlotTaken = false;
    if (attempt > 1) {
      // Over maxRetries concurrent retries the retry is skipped and the previous result stands.
      if (!holdsRetrySlot && last !== null && !cluster.breaker.tryStartRetry()) return last;
      holdsRetrySlot = true;
      await sleep(backoffMs(policy, attempt - 1, random), route);
    }
    try {
      if (route.aborted) {
        return route.reason === ROUTE_TIMEOUT ? local(replies.ROUTE_TIMEOUT, attempt - 1, flags) : local(replies.DOWNSTREAM_DISCONNECT, attempt - 1, flags);
      }
      const endpoint = endpointFor(cluster, request, hash, tried);
      if (endpoint === null) return local(replies.NO_HEALTHY_UPSTREAM, attempt - 1, flags);
      tried.push(endpoint);
      const breaker = cluster.breaker;
      const first = breaker.admit(endpoint.readiness());
      const admission = first === 'wait' ? await breaker.waitForConnection(() => endpoint.readiness(), route) : first;
      if (admission === 'overflow') return overflow(attempt - 1, flags);
      if (admission === 'cancelled') {
        return local(route.reason === ROUTE_TIMEOUT ? replies.ROUTE_TIMEOUT : replies.DOWNSTREAM_DISCONNECT, attempt - 1, flags);
      }
      // undici copies the headers when the try is dispatched, and a retry starts only after the previous try is over.
      const headers = attempt === 1 ? firstTryHeaders : withAttemptCount(firstTryHeaders, attempt);
      const result = await sendTry(cluster, endpoint, request, headers, body, route, admission);
      const retriesLeft = attempt < maxTries;
      if (result.kind === 'failure') {
        const failure = result.failure;
        if (failure === OVERFLOW_ON_ATTACH) return overflow(attempt - 1, flags);
        if (failure === CLIENT_GONE) return local(replies.DOWNSTREAM_DISCONNECT, attempt, flags, endpoint.key);
        cluster.outlier?.record(endpoint, failure === 'per-try-timeout' || failure === ROUTE_TIMEOUT ? 504 : 503);
        if (failure === ROUTE_TIMEOUT) return local(replies.ROUTE_TIMEOUT, attempt, flags, endpoint.key);
        const retriable = failureIsRetriable(policy, failure) && canResend(body, failure);
        last = local(failureReply(failure), attempt, [...flags], endpoint.key);
        if (retriable && retriesLeft) continue;
        if (retriable && policy.attempts > 0) last.flags.push('URX');
        return last;
      }
      const { response } = result;
      cluster.outlier?.record(endpoint, response.statusCode);
      const retriable = responseIsRetriable(policy, response.statusCode, response.headers, request.headers) && canResend(body, null);
      if (retriable && retriesLeft && cluster.breaker.tryStartRetry()) {
        retrySlotTaken = true;
        await response.body.discard();
        continue;
      }
      const outcomeFlags = retriable && policy.attempts > 0 && !retriesLeft ? [...flags, 'URX'] : [...flags];
      return {
        kind: 'response',
        statusCode: response.statusCode,
        headers: response.headers,
        body: response.body,
        endpoint: endpoint.key,
        attempts: attempt,
        flags: outcomeFlags,
        ...(setCookie === undefined ? {} : { setCookie }),
      };
    } finally {
      if (holdsRetrySlot) cluster.breaker.endRetry();
    }
  }
  return last as UpstreamExchange;
}
