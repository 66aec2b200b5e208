/**
 * The access-log line written the obvious way, with JSON.stringify and template strings: the oracle the
 * byte encoder (plugins/access-log/line-encoder.ts) is checked against. One difference is by design: a
 * lone surrogate (only a config value can hold one) is written as U+FFFD, the character it became when
 * the request path encoded the value as UTF-8, where JSON.stringify would escape it.
 */
import { BOUNDED_FIELDS, NumberField, StringField } from '../../plugins/access-log/record.js';
import type { RawRecord } from '../../plugins/access-log/record.js';

export interface AccessLogRecord {
  start_time: string;
  method: string | null;
  authority: string | null;
  path: string | null;
  protocol: string;
  response_code: number | null;
  response_flags: string | null;
  response_code_details: string | null;
  route_name: string | null;
  upstream_cluster: string | null;
  upstream_host: string | null;
  duration_ms: number | null;
  upstream_service_time_ms: number | null;
  bytes_received: number | null;
  bytes_sent: number | null;
  request_id: string | null;
  trace_id: string | null;
  downstream_remote_address: string | null;
  downstream_local_address: string | null;
  requested_server_name: string | null;
  peer_principal: string | null;
  request_principal: string | null;
  user_agent: string | null;
  x_forwarded_for: string | null;
  truncated_fields?: string[];
}

const orNull = (value: number): number | null => (Number.isNaN(value) ? null : value);

function address(ip: string | null, port: number): string | null {
  if (ip === null || ip === '' || Number.isNaN(port)) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** U+FFFD for every lone surrogate (String.prototype.toWellFormed, not yet in the ES2023 typings). */
function wellFormed(value: string | null): string | null {
  return value === null ? null : value.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

export function referenceRecord(raw: RawRecord): AccessLogRecord {
  const strings = raw.strings.map(wellFormed);
  const numbers = raw.numbers;
  const record: AccessLogRecord = {
    start_time: new Date(numbers[NumberField.startEpochMs] as number).toISOString(),
    method: strings[StringField.method] ?? null,
    authority: strings[StringField.authority] ?? null,
    path: strings[StringField.path] ?? null,
    protocol: `HTTP/${strings[StringField.httpVersion] ?? ''}`,
    response_code: orNull(numbers[NumberField.responseCode] as number),
    response_flags: strings[StringField.responseFlags] ?? null,
    response_code_details: strings[StringField.details] ?? null,
    route_name: strings[StringField.routeName] ?? null,
    upstream_cluster: strings[StringField.upstreamCluster] ?? null,
    upstream_host: strings[StringField.upstreamHost] ?? null,
    duration_ms: orNull(numbers[NumberField.durationMs] as number),
    upstream_service_time_ms: orNull(numbers[NumberField.upstreamServiceTimeMs] as number),
    bytes_received: orNull(numbers[NumberField.bytesReceived] as number),
    bytes_sent: orNull(numbers[NumberField.bytesSent] as number),
    request_id: strings[StringField.requestId] ?? null,
    trace_id: strings[StringField.traceId] ?? null,
    downstream_remote_address: address(strings[StringField.remoteIp] ?? null, numbers[NumberField.remotePort] as number),
    downstream_local_address: address(strings[StringField.localIp] ?? null, numbers[NumberField.localPort] as number),
    requested_server_name: strings[StringField.serverName] ?? null,
    peer_principal: strings[StringField.peerPrincipal] ?? null,
    request_principal: strings[StringField.requestPrincipal] ?? null,
    user_agent: strings[StringField.userAgent] ?? null,
    x_forwarded_for: strings[StringField.forwardedFor] ?? null,
  };
  if (raw.truncated !== 0) record.truncated_fields = BOUNDED_FIELDS.filter((_, index) => (raw.truncated & (1 << index)) !== 0).map(({ name }) => name);
  return record;
}

export function referenceJsonLine(raw: RawRecord): string {
  return `${JSON.stringify(referenceRecord(raw))}\n`;
}

const dash = (value: string | number | null): string => (value === null || value === '' ? '-' : String(value));

/** Istio's default text line, `-` for every absent or empty value. */
export function referenceTextLine(raw: RawRecord): string {
  const r = referenceRecord(raw);
  return (
    `[${r.start_time}] "${dash(r.method)} ${dash(r.path)} ${r.protocol}" ${dash(r.response_code)} ${dash(r.response_flags)} ` +
    `${dash(r.response_code_details)} - "-" ${dash(r.bytes_received)} ${dash(r.bytes_sent)} ${dash(r.duration_ms)} ` +
    `${dash(r.upstream_service_time_ms)} "${dash(r.x_forwarded_for)}" "${dash(r.user_agent)}" "${dash(r.request_id)}" ` +
    `"${dash(r.authority)}" "${dash(r.upstream_host)}" ${dash(r.upstream_cluster)} - ${dash(r.downstream_local_address)} ` +
    `${dash(r.downstream_remote_address)} ${dash(r.requested_server_name)} ${dash(r.route_name)}\n`
  );
}
