/**
 * Loop prevention. Two guards, because a proxy that forwards to itself amplifies one request into
 * thousands (each hop opens a new request, log line and buffer) until something times out:
 * - every forwarded request carries `x-meshgate-hops`, incremented by each proxy it crosses (ingress and
 *   sidecars alike); a request that arrives having crossed MAX_PROXY_HOPS proxies is answered 508 at
 *   once, whatever the loop's shape (a passthrough to itself, two sidecars pointing at each other, a
 *   route back to the ingress);
 * - a sidecar's outbound listener refuses a passthrough destination that is its own outbound listener
 *   (a loopback name or its own address on that port, snapshot/own-outbound.ts): that loop is certain,
 *   so it is not left to the hop count.
 * The header is trusted from anyone: a client can only make its own request fail sooner.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { LocalReply } from '../pipeline/types.js';

export const HOPS_HEADER = 'x-meshgate-hops';
/** Proxies a request may cross. A call chain through apps restarts the count (apps do not forward it). */
export const MAX_PROXY_HOPS = 16;

export const LOOP_DETECTED: LocalReply = Object.freeze({
  status: 508,
  flag: '',
  details: 'loop_detected',
  message: `loop detected: the request already crossed ${MAX_PROXY_HOPS} proxies (${HOPS_HEADER})`,
});

export const OWN_LISTENER: LocalReply = Object.freeze({
  status: 508,
  flag: '',
  details: 'destination_is_own_listener',
  message: 'loop detected: the destination is this sidecar\'s own outbound listener',
});

/** Hops crossed before this proxy: 0 when absent; a malformed value counts as the limit (fail closed). */
export function hopsOf(headers: IncomingHttpHeaders): number {
  const value = headers[HOPS_HEADER];
  if (value === undefined) return 0;
  if (typeof value !== 'string' || !/^\d{1,3}$/.test(value)) return MAX_PROXY_HOPS;
  return Number(value);
}
