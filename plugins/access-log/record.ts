/**
 * One access-log record, Envoy-style field names. What is deliberately never written: the query string
 * (tokens such as `access_token=` travel there), `authorization`, `cookie` and every other header
 * except user-agent and x-forwarded-for. Client-controlled values are cut to bounds and each cut is
 * counted, so a hostile client cannot inflate log storage and the operator can see that it tried.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BoundedCounter } from '../metrics/registry.js';
import { wireBytes } from '../metrics/wire-bytes.js';
import { traceIdOf } from '../tracing/request-span.js';
import type { AccessLogLimits } from './schema.js';

export interface AccessLogRecord {
  start_time: string;
  method: string;
  authority: string;
  path: string;
  protocol: string;
  response_code: number;
  response_flags: string;
  response_code_details: string;
  route_name: string | null;
  upstream_cluster: string | null;
  upstream_host: string | null;
  duration_ms: number;
  upstream_service_time_ms: number | null;
  bytes_received: number;
  bytes_sent: number;
  request_id: string;
  trace_id: string | null;
  downstream_remote_address: string;
  downstream_local_address: string;
  requested_server_name: string | null;
  peer_principal: string | null;
  request_principal: string | null;
  user_agent: string | null;
  x_forwarded_for: string | null;
  /** Names of fields cut to their bound, present only when something was cut. */
  truncated_fields?: string[];
}

const truncations = new BoundedCounter({
  name: 'meshgate_access_log_truncated_fields_total',
  help: 'Access-log values cut to their configured bound, by field.',
  labelNames: ['field'],
  maxSeries: 16,
});

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}

function emptyToNull(value: string): string | null {
  return value === '' ? null : value;
}

function withPort(ip: string, port: number | undefined): string {
  if (port === undefined) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The client-controlled fields with a bound, in the order `truncated_fields` lists them. */
const BOUNDED_FIELDS = ['authority', 'path', 'user_agent', 'x_forwarded_for'] as const;

function boundOf(field: (typeof BOUNDED_FIELDS)[number], limits: AccessLogLimits): number {
  return field === 'path' ? limits.maxPathLength : limits.maxHeaderValueLength;
}

/** Cuts every bounded field over its bound, notes each cut in `truncated_fields` (created only then) and counts it. */
function cutToBounds(record: AccessLogRecord, limits: AccessLogLimits): void {
  for (const field of BOUNDED_FIELDS) {
    const value = record[field];
    const max = boundOf(field, limits);
    if (value === null || value.length <= max) continue;
    record[field] = value.slice(0, max);
    (record.truncated_fields ??= []).push(field);
    truncations.inc({ field });
  }
}

/** `HTTP/<version>` without building the string for the versions Node speaks. */
const PROTOCOLS: Readonly<Record<string, string>> = { '1.1': 'HTTP/1.1', '1.0': 'HTTP/1.0', '2.0': 'HTTP/2.0' };

let lastLocalIp = '';
let lastLocalPort: number | undefined = -1;
let lastLocalAddress = '';

/** A listener's own address, which most requests in a row share: the string is built when it changes. */
function localAddress(ip: string, port: number | undefined): string {
  if (ip !== lastLocalIp || port !== lastLocalPort) {
    lastLocalIp = ip;
    lastLocalPort = port;
    lastLocalAddress = withPort(ip, port);
  }
  return lastLocalAddress;
}

let isoSecondStart = -1;
let isoSecondPrefix = '';

/** `Date#toISOString()` of `epochMs`, with the formatting done once per second rather than once per request. */
function isoTimestamp(epochMs: number): string {
  const millis = epochMs % 1000;
  const secondStart = epochMs - millis;
  if (secondStart !== isoSecondStart) {
    isoSecondStart = secondStart;
    isoSecondPrefix = new Date(secondStart).toISOString().slice(0, -4);
  }
  return `${isoSecondPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

export function buildRecord(request: FastifyRequest, reply: FastifyReply, limits: AccessLogLimits): AccessLogRecord {
  const mesh = request.mesh;
  const attrs = mesh.attrs;
  const durationMs = Math.round(performance.now() - mesh.startMs);
  const rawUrl = request.raw.url ?? '/';
  const queryAt = rawUrl.indexOf('?');
  const bytes = wireBytes(request, reply);
  const socket = request.raw.socket as { remotePort?: number; localPort?: number } | null;
  const localReply = mesh.localReply;
  const record: AccessLogRecord = {
    start_time: isoTimestamp(Date.now() - durationMs),
    method: request.method,
    authority: attrs.authority,
    path: queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt),
    protocol: PROTOCOLS[request.raw.httpVersion] ?? `HTTP/${request.raw.httpVersion}`,
    response_code: reply.statusCode,
    response_flags: mesh.responseFlags.length === 0 ? '-' : mesh.responseFlags.join(','),
    response_code_details: localReply !== null ? localReply.details : mesh.upstreamHost !== '' ? 'via_upstream' : '-',
    route_name: emptyToNull(mesh.routeName),
    upstream_cluster: emptyToNull(mesh.upstreamCluster),
    upstream_host: emptyToNull(mesh.upstreamHost),
    duration_ms: durationMs,
    upstream_service_time_ms: mesh.upstreamServiceTimeMs,
    bytes_received: bytes.received,
    bytes_sent: bytes.sent,
    request_id: mesh.requestId,
    trace_id: emptyToNull(traceIdOf(request)),
    // The trusted client address; the socket port only belongs to it when no proxy hop stood between.
    downstream_remote_address: attrs.remoteIp === attrs.sourceIp ? withPort(attrs.remoteIp, socket?.remotePort) : attrs.remoteIp,
    downstream_local_address: localAddress(attrs.destinationIp, attrs.destinationPort),
    requested_server_name: emptyToNull(attrs.sni),
    peer_principal: attrs.peer?.uri ?? null,
    request_principal: mesh.auth?.principal ?? null,
    user_agent: headerValue(request.headers['user-agent']),
    x_forwarded_for: headerValue(request.headers['x-forwarded-for']),
  };
  cutToBounds(record, limits);
  return record;
}

/** What JSON must escape: a quote, a backslash, a control character or a surrogate. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be found
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** The usual string, with nothing to escape, is quoted as it is; the rest go through JSON.stringify. */
function jsonString(value: string | null): string {
  if (value === null) return 'null';
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/**
 * The JSON text of the value a field had on the previous line. Most fields repeat from one request to
 * the next (method, authority, route, cluster, upstream host, user agent), and comparing with the last
 * value is cheaper than looking for characters to escape again.
 */
class RepeatedField {
  private last: string | null = null;
  private json = 'null';

  quote(value: string | null): string {
    if (value !== this.last) {
      this.last = value;
      this.json = jsonString(value);
    }
    return this.json;
  }
}

/** One per field whose value usually repeats. */
const repeated = {
  method: new RepeatedField(),
  authority: new RepeatedField(),
  details: new RepeatedField(),
  routeName: new RepeatedField(),
  upstreamCluster: new RepeatedField(),
  upstreamHost: new RepeatedField(),
  localAddress: new RepeatedField(),
  serverName: new RepeatedField(),
  peerPrincipal: new RepeatedField(),
  requestPrincipal: new RepeatedField(),
  userAgent: new RepeatedField(),
  forwardedFor: new RepeatedField(),
};

/**
 * The record as one JSON line, same bytes as `JSON.stringify(record)` but written field by field: the
 * shape is fixed, so the generic serialiser's key walk and per-value type dispatch are wasted work.
 * start_time, protocol, response_flags and trace_id are built by meshgate from characters that never
 * need escaping (digits, letters, '-', ':', '.', ',', '/'), so they are quoted as they are.
 */
export function formatJson(record: AccessLogRecord): string {
  const truncated = record.truncated_fields === undefined ? '' : `,"truncated_fields":${JSON.stringify(record.truncated_fields)}`;
  const traceId = record.trace_id === null ? 'null' : `"${record.trace_id}"`;
  return (
    `{"start_time":"${record.start_time}","method":${repeated.method.quote(record.method)},"authority":${repeated.authority.quote(record.authority)}` +
    `,"path":${jsonString(record.path)},"protocol":"${record.protocol}","response_code":${record.response_code}` +
    `,"response_flags":"${record.response_flags}","response_code_details":${repeated.details.quote(record.response_code_details)}` +
    `,"route_name":${repeated.routeName.quote(record.route_name)},"upstream_cluster":${repeated.upstreamCluster.quote(record.upstream_cluster)}` +
    `,"upstream_host":${repeated.upstreamHost.quote(record.upstream_host)},"duration_ms":${record.duration_ms}` +
    `,"upstream_service_time_ms":${record.upstream_service_time_ms === null ? 'null' : record.upstream_service_time_ms}` +
    `,"bytes_received":${record.bytes_received},"bytes_sent":${record.bytes_sent},"request_id":${jsonString(record.request_id)}` +
    `,"trace_id":${traceId},"downstream_remote_address":${jsonString(record.downstream_remote_address)}` +
    `,"downstream_local_address":${repeated.localAddress.quote(record.downstream_local_address)},"requested_server_name":${repeated.serverName.quote(record.requested_server_name)}` +
    `,"peer_principal":${repeated.peerPrincipal.quote(record.peer_principal)},"request_principal":${repeated.requestPrincipal.quote(record.request_principal)}` +
    `,"user_agent":${repeated.userAgent.quote(record.user_agent)},"x_forwarded_for":${repeated.forwardedFor.quote(record.x_forwarded_for)}${truncated}}\n`
  );
}

const dash = (value: string | number | null): string => (value === null || value === '' ? '-' : String(value));

/** Istio's default text line (istio-semantics §8.3), fields Envoy has and meshgate does not print `-`. */
export function formatText(record: AccessLogRecord): string {
  return (
    `[${record.start_time}] "${record.method} ${record.path} ${record.protocol}" ${record.response_code} ${record.response_flags} ` +
    `${record.response_code_details} - "-" ${record.bytes_received} ${record.bytes_sent} ${record.duration_ms} ` +
    `${dash(record.upstream_service_time_ms)} "${dash(record.x_forwarded_for)}" "${dash(record.user_agent)}" "${record.request_id}" ` +
    `"${record.authority}" "${dash(record.upstream_host)}" ${dash(record.upstream_cluster)} - ${record.downstream_local_address} ` +
    `${record.downstream_remote_address} ${dash(record.requested_server_name)} ${dash(record.route_name)}\n`
  );
}
