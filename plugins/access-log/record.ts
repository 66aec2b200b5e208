/**
 * One access-log line, Envoy-style field names, and its two formats. This module runs on the writer
 * thread: it turns the raw values the request path captured (capture.ts) into the line's fields.
 */
import { BOUNDED_FIELDS, StringField } from './record-codec.js';
import type { RawRecord } from './record-codec.js';

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

function withPort(ip: string, port: number | null): string {
  if (port === null) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `HTTP/<version>` without building the string for the versions Node speaks. */
const PROTOCOLS: Readonly<Record<string, string>> = { '1.1': 'HTTP/1.1', '1.0': 'HTTP/1.0', '2.0': 'HTTP/2.0' };

let lastLocalIp = '';
let lastLocalPort: number | null = -1;
let lastLocalAddress = '';

/** A listener's own address, which most requests in a row share: the string is built when it changes. */
function localAddress(ip: string, port: number | null): string {
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

/** The line's fields from the captured raw values (the writer thread's side of captureRecord). */
export function toAccessLogRecord(raw: RawRecord): AccessLogRecord {
  const strings = raw.strings;
  const httpVersion = strings[StringField.httpVersion] as string;
  const record: AccessLogRecord = {
    start_time: isoTimestamp(raw.startEpochMs),
    method: strings[StringField.method] as string,
    authority: strings[StringField.authority] as string,
    path: strings[StringField.path] as string,
    protocol: PROTOCOLS[httpVersion] ?? `HTTP/${httpVersion}`,
    response_code: raw.responseCode,
    response_flags: strings[StringField.responseFlags] as string,
    response_code_details: strings[StringField.details] as string,
    route_name: strings[StringField.routeName] ?? null,
    upstream_cluster: strings[StringField.upstreamCluster] ?? null,
    upstream_host: strings[StringField.upstreamHost] ?? null,
    duration_ms: raw.durationMs,
    upstream_service_time_ms: raw.upstreamServiceTimeMs,
    bytes_received: raw.bytesReceived,
    bytes_sent: raw.bytesSent,
    request_id: strings[StringField.requestId] as string,
    trace_id: strings[StringField.traceId] ?? null,
    downstream_remote_address: withPort(strings[StringField.remoteIp] as string, raw.remotePort),
    downstream_local_address: localAddress(strings[StringField.localIp] as string, raw.localPort),
    requested_server_name: strings[StringField.serverName] ?? null,
    peer_principal: strings[StringField.peerPrincipal] ?? null,
    request_principal: strings[StringField.requestPrincipal] ?? null,
    user_agent: strings[StringField.userAgent] ?? null,
    x_forwarded_for: strings[StringField.forwardedFor] ?? null,
  };
  if (raw.truncated !== 0) record.truncated_fields = BOUNDED_FIELDS.filter((_, index) => (raw.truncated & (1 << index)) !== 0).map(({ name }) => name);
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
