/**
 * The access log's part of the request path: copy the request's values into a reused RawRecord, cut
 * client-controlled ones to their bounds and count each cut. What is deliberately never captured: the
 * query string (tokens such as `access_token=` travel there), `authorization`, `cookie` and every other
 * header except user-agent and x-forwarded-for. A hostile client cannot inflate log storage, and the
 * operator can see that it tried.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ConnectionRecord, SettledDelivery } from '../../gateway/pipeline/types.js';
import { BoundedCounter } from '../../gateway/metrics/registry.js';
import { wireBytes } from '../../gateway/pipeline/wire-bytes.js';
import { BOUNDED_FIELDS, NumberField, StringField } from './record.js';
import type { RawRecord } from './record.js';
import type { AccessLogLimits } from './schema.js';

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

/** Cuts every bounded field over its bound, marks each cut in `truncated` and counts it. */
function cutToBounds(record: RawRecord, limits: AccessLogLimits): void {
  const strings = record.strings;
  record.truncated = 0;
  for (let index = 0; index < BOUNDED_FIELDS.length; index++) {
    const { name, field } = BOUNDED_FIELDS[index] as (typeof BOUNDED_FIELDS)[number];
    const value = strings[field] as string | null;
    const max = field === StringField.path ? limits.maxPathLength : limits.maxHeaderValueLength;
    if (value === null || value.length <= max) continue;
    strings[field] = value.slice(0, max);
    record.truncated |= 1 << index;
    truncations.inc({ field: name });
  }
}

/**
 * Copies the request's raw values into `record` (reused from one request to the next). Everything that
 * only shapes the line (addresses with ports, the timestamp, the protocol name) is left to the encoder.
 */
export function captureRecord(request: FastifyRequest, reply: FastifyReply, limits: AccessLogLimits, record: RawRecord): void {
  const mesh = request.mesh;
  const attrs = mesh.attrs;
  const durationMs = Math.round(mesh.responseEndMs - mesh.startMs);
  const rawUrl = request.raw.url ?? '/';
  const queryAt = rawUrl.indexOf('?');
  const bytes = wireBytes(request, reply);
  const socket = request.raw.socket as { remotePort?: number } | null;
  const localReply = mesh.localReply;
  const strings = record.strings;
  const numbers = record.numbers;
  numbers[NumberField.startEpochMs] = Date.now() - Math.round(performance.now() - mesh.startMs);
  numbers[NumberField.durationMs] = durationMs;
  numbers[NumberField.upstreamServiceTimeMs] = mesh.upstreamServiceTimeMs ?? NaN;
  numbers[NumberField.bytesReceived] = bytes.received;
  numbers[NumberField.bytesSent] = bytes.sent;
  numbers[NumberField.responseCode] = reply.statusCode;
  // The trusted client address; the socket port only belongs to it when no proxy hop stood between.
  numbers[NumberField.remotePort] = attrs.remoteIp === attrs.sourceIp ? (socket?.remotePort ?? NaN) : NaN;
  numbers[NumberField.localPort] = attrs.destinationPort ?? NaN;
  strings[StringField.method] = request.method;
  strings[StringField.authority] = attrs.authority;
  strings[StringField.path] = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  // Envoy's %PROTOCOL% says HTTP/2 where node's parser says 2.0.
  strings[StringField.httpVersion] = request.raw.httpVersion === '2.0' ? '2' : request.raw.httpVersion;
  strings[StringField.responseFlags] = mesh.responseFlags.length === 0 ? '-' : mesh.responseFlags.join(',');
  strings[StringField.details] = localReply !== null ? localReply.details : mesh.upstreamHost !== '' ? 'via_upstream' : '-';
  strings[StringField.routeName] = emptyToNull(mesh.routeName);
  strings[StringField.upstreamCluster] = emptyToNull(mesh.upstreamCluster);
  strings[StringField.upstreamHost] = emptyToNull(mesh.upstreamHost);
  strings[StringField.requestId] = mesh.requestId;
  strings[StringField.traceId] = emptyToNull(mesh.trace?.traceId ?? '');
  strings[StringField.remoteIp] = attrs.remoteIp;
  strings[StringField.localIp] = attrs.destinationIp;
  strings[StringField.serverName] = emptyToNull(attrs.sni);
  strings[StringField.peerPrincipal] = attrs.peer?.uri ?? null;
  strings[StringField.requestPrincipal] = mesh.auth?.principal ?? null;
  strings[StringField.userAgent] = headerValue(request.headers['user-agent']);
  strings[StringField.forwardedFor] = headerValue(request.headers['x-forwarded-for']);
  cutToBounds(record, limits);
}

/**
 * A TCP connection's line: no method, path, HTTP version (the protocol is written as TCP), headers or
 * request id; response code 0, as Envoy writes it for TCP. Nothing in it is client-controlled text.
 */
export function captureConnection(connection: ConnectionRecord, record: RawRecord): void {
  const attrs = connection.attrs;
  const strings = record.strings;
  const numbers = record.numbers;
  strings.fill(null);
  record.truncated = 0;
  numbers[NumberField.startEpochMs] = connection.startEpochMs;
  numbers[NumberField.durationMs] = Math.round(connection.endMs - connection.startMs);
  numbers[NumberField.upstreamServiceTimeMs] = NaN;
  numbers[NumberField.bytesReceived] = connection.receivedBytes;
  numbers[NumberField.bytesSent] = connection.sentBytes;
  numbers[NumberField.responseCode] = 0;
  numbers[NumberField.remotePort] = attrs.sourcePort;
  numbers[NumberField.localPort] = attrs.destinationPort;
  strings[StringField.responseFlags] = connection.responseFlags.length === 0 ? '-' : connection.responseFlags.join(',');
  strings[StringField.details] = connection.details === '' ? (connection.upstreamHost === '' ? '-' : 'via_upstream') : connection.details;
  strings[StringField.routeName] = emptyToNull(connection.routeName);
  strings[StringField.upstreamCluster] = emptyToNull(connection.upstreamCluster);
  strings[StringField.upstreamHost] = emptyToNull(connection.upstreamHost);
  strings[StringField.remoteIp] = attrs.sourceIp;
  strings[StringField.localIp] = attrs.destinationIp;
  strings[StringField.serverName] = emptyToNull(attrs.sni);
  strings[StringField.peerPrincipal] = attrs.peer?.uri ?? null;
}

/**
 * A message the sidecar delivered to its app: the request the sidecar made (POST of the CloudEvent to
 * the app's path), with the app's last answer, the CloudEvent id as the request id, the subscription as
 * the route, and what became of the message as the details (`pubsub_delivered`, `pubsub_returned-to-broker`, …).
 */
export function captureDelivery(delivery: SettledDelivery, record: RawRecord): void {
  const strings = record.strings;
  const numbers = record.numbers;
  strings.fill(null);
  record.truncated = 0;
  numbers[NumberField.startEpochMs] = delivery.startEpochMs;
  numbers[NumberField.durationMs] = Math.round(delivery.endMs - delivery.startMs);
  numbers[NumberField.upstreamServiceTimeMs] = NaN;
  numbers[NumberField.bytesReceived] = delivery.receivedBytes;
  numbers[NumberField.bytesSent] = delivery.sentBytes;
  numbers[NumberField.responseCode] = delivery.status;
  numbers[NumberField.remotePort] = NaN;
  numbers[NumberField.localPort] = NaN;
  strings[StringField.method] = delivery.attempts === 0 ? null : 'POST';
  strings[StringField.authority] = delivery.appAddress;
  strings[StringField.path] = emptyToNull(delivery.path);
  strings[StringField.httpVersion] = delivery.attempts === 0 ? null : '1.1';
  strings[StringField.responseFlags] = '-';
  strings[StringField.details] = `pubsub_${delivery.result}`;
  strings[StringField.routeName] = `pubsub/${delivery.pubsubName}/${delivery.topic}`;
  strings[StringField.upstreamHost] = delivery.appAddress;
  strings[StringField.requestId] = emptyToNull(delivery.eventId);
  strings[StringField.traceId] = delivery.trace?.traceId ?? null;
}
