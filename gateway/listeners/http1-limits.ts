/**
 * node's HTTP/1 limits on a server (an http.Server, or the HTTP/1.1 fallback of an HTTP/2 server,
 * which reads them from the HTTP/2 server): the request-head deadline and the largest head. node reads
 * them when it sets up a connection, and checks the deadline only on servers that are listening (its
 * connection tracking starts on 'listening'), so they are set before `listen`.
 */

/** How often node checks the request-head deadline: its 30 s default would let a slowloris client stay up to 30 s longer. */
const HEADERS_CHECK_INTERVAL_MS = 1000;

export interface Http1Limits {
  /** 0 = no deadline. */
  readonly requestHeadersTimeoutMs: number;
  readonly maxHeaderBytes: number;
}

export function applyHttp1Limits(server: unknown, limits: Http1Limits): void {
  const target = server as { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number; maxHeaderSize?: number };
  const timeoutMs = limits.requestHeadersTimeoutMs;
  target.headersTimeout = timeoutMs;
  // node refuses a head deadline beyond the whole-request deadline; that one stays as it was unless it would cut the head first.
  if (timeoutMs > 0 && target.requestTimeout > 0 && target.requestTimeout < timeoutMs) target.requestTimeout = timeoutMs;
  target.connectionsCheckingInterval = Math.min(HEADERS_CHECK_INTERVAL_MS, timeoutMs > 0 ? timeoutMs : HEADERS_CHECK_INTERVAL_MS);
  // Without it node's 16 KiB default would silently override MeshConfig.maxRequestHeadersKb.
  target.maxHeaderSize = limits.maxHeaderBytes;
}
