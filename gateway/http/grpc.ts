/**
 * gRPC on the proxy's own answers and deadlines (docs/grpc.md): a request is gRPC when its content-type
 * is application/grpc (or +proto, +json…); its local replies are gRPC errors — HTTP 200, trailers-only,
 * `grpc-status` mapped from the HTTP status as Envoy maps it, `grpc-message` the reply's text — and its
 * `grpc-timeout` shortens the route timeout (Istio's max_grpc_timeout: the route timeout, 0 = none).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export function isGrpcRequest(headers: IncomingHttpHeaders): boolean {
  return headers['content-type']?.startsWith('application/grpc') === true;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus (the gRPC project's HTTP-to-gRPC mapping). */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** gRPC's percent-encoding of grpc-message: printable ASCII except '%' stays, every other byte is %XX. */
export function encodeGrpcMessage(message: string): string {
  let encoded = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout` (1–8 digits and a unit) in ms, rounded up so that a tiny deadline is not "none"; null when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string') return null;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return null;
  return Math.ceil(Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number));
}

/** The timeout a gRPC request runs under: its grpc-timeout capped by the route's (0 = no route timeout). */
export function effectiveGrpcTimeoutMs(routeTimeoutMs: number, headers: IncomingHttpHeaders): number {
  const requested = grpcTimeoutMs(headers['grpc-timeout']);
  if (requested === null) return routeTimeoutMs;
  const deadline = Math.max(requested, 1);
  return routeTimeoutMs === 0 ? deadline : Math.min(deadline, routeTimeoutMs);
}

interface Http2Response {
  readonly stream?: { readonly headersSent: boolean; respond(headers: OutgoingHttpHeaders, options: { endStream: boolean }): void };
}

/**
 * A gRPC trailers-only answer over HTTP/2: the HEADERS frame ends the stream, which is how a gRPC client
 * knows the status is in those headers (a HEADERS frame followed by an empty DATA frame reads as
 * metadata and then a call without status). False when the response is not HTTP/2 or its headers are
 * out; the caller then writes them its usual way. Either way the caller ends the response.
 */
export function respondTrailersOnly(response: unknown, status: number, headers: OutgoingHttpHeaders): boolean {
  const stream = (response as Http2Response).stream;
  if (stream === undefined || stream.headersSent) return false;
  stream.respond({ ...headers, ':status': status }, { endStream: true });
  return true;
}
