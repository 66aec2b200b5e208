/**
 * The two line layouts, JSON (Envoy-like field names) and Istio's default text line, each compiled once
 * into a list of fields: the literal text before the field, what kind of value it writes and from which
 * raw values. line-encoder.ts walks a layout to write a line.
 */
import type { RecordView } from './record-codec.js';
import { NumberField, STRING_FIELD_COUNT, StringField } from './record.js';
import type { RecordFormat } from './record.js';

export const FieldKind = {
  /** A string field; JSON quotes and escapes it (`null` when absent), text writes it as it is (`-` when absent or empty). */
  string: 0,
  /** A number field; JSON writes `null` when absent, text `-`. */
  number: 1,
  /** The start time, ISO 8601 with milliseconds. */
  timestamp: 2,
  /** `HTTP/` and the request's version. */
  protocol: 3,
  /** An address: the IP (string field) and, when known, `:port` (number field); IPv6 in brackets. */
  address: 4,
  /** JSON's `truncated_fields`, present only when a bounded value was cut. */
  truncated: 5,
} as const;
export type FieldKind = (typeof FieldKind)[keyof typeof FieldKind];

export interface LayoutField {
  /** Latin-1 literal written before the value. */
  readonly prefix: Uint8Array;
  readonly kind: FieldKind;
  /** The string field (string, protocol, address) or number field (number, timestamp). */
  readonly source: number;
  /** The address's port (a number field), else -1. */
  readonly port: number;
}

/** Bytes a value may take beyond its strings' characters: a number, a timestamp, quotes, `null`, brackets. */
const VALUE_BYTES = 40;
/** A byte of a value takes at most 6 bytes in a line (`\u001f`). */
const MAX_BYTES_PER_VALUE_BYTE = 6;
const TRUNCATED_BYTES = 96;
/** The most fields a layout may have (the encoder keeps one offset per field). */
export const MAX_LAYOUT_FIELDS = 64;

export class LineLayout {
  /** Bytes of a line whatever its values, before MAX_BYTES_PER_VALUE_BYTE per byte of the record's strings. */
  private readonly fixedBytes: number;

  constructor(
    readonly format: RecordFormat,
    readonly fields: readonly LayoutField[],
    readonly suffix: Uint8Array,
  ) {
    this.fixedBytes = fields.reduce((sum, field) => sum + field.prefix.length + VALUE_BYTES, suffix.length + TRUNCATED_BYTES);
    if (fields.length > MAX_LAYOUT_FIELDS) throw new Error(`access-log layout ${format}: more than ${MAX_LAYOUT_FIELDS} fields`);
    // The encoder tells an unchanged field by its sources' previous values, so no source may feed two fields.
    const sources = fields.flatMap(sourcesOf);
    if (new Set(sources).size !== sources.length) throw new Error(`access-log layout ${format}: a value is written by two fields`);
  }

  get json(): boolean {
    return this.format === 'JSON';
  }

  /** Bytes `record` may take in this layout at most. */
  boundOf(record: RecordView): number {
    const lengths = record.lengths;
    let bytes = 0;
    for (let index = 0; index < STRING_FIELD_COUNT; index++) bytes += lengths[index] as number;
    return this.fixedBytes + bytes * MAX_BYTES_PER_VALUE_BYTE;
  }
}

function sourcesOf(field: LayoutField): string[] {
  switch (field.kind) {
    case FieldKind.string:
    case FieldKind.protocol:
      return [`string ${field.source}`];
    case FieldKind.number:
    case FieldKind.timestamp:
      return [`number ${field.source}`];
    case FieldKind.address:
      return [`string ${field.source}`, `number ${field.port}`];
    case FieldKind.truncated:
      return ['truncated'];
  }
}

const latin1 = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'latin1'));

function field(prefix: string, kind: FieldKind, source: number, port = -1): LayoutField {
  return { prefix: latin1(prefix), kind, source, port };
}

/** Field names and order of the JSON line (the order `JSON.stringify` of the same object would write). */
export const JSON_LAYOUT = new LineLayout(
  'JSON',
  [
    field('{"start_time":', FieldKind.timestamp, NumberField.startEpochMs),
    field(',"method":', FieldKind.string, StringField.method),
    field(',"authority":', FieldKind.string, StringField.authority),
    field(',"path":', FieldKind.string, StringField.path),
    field(',"protocol":', FieldKind.protocol, StringField.httpVersion),
    field(',"response_code":', FieldKind.number, NumberField.responseCode),
    field(',"response_flags":', FieldKind.string, StringField.responseFlags),
    field(',"response_code_details":', FieldKind.string, StringField.details),
    field(',"route_name":', FieldKind.string, StringField.routeName),
    field(',"upstream_cluster":', FieldKind.string, StringField.upstreamCluster),
    field(',"upstream_host":', FieldKind.string, StringField.upstreamHost),
    field(',"duration_ms":', FieldKind.number, NumberField.durationMs),
    field(',"upstream_service_time_ms":', FieldKind.number, NumberField.upstreamServiceTimeMs),
    field(',"bytes_received":', FieldKind.number, NumberField.bytesReceived),
    field(',"bytes_sent":', FieldKind.number, NumberField.bytesSent),
    field(',"request_id":', FieldKind.string, StringField.requestId),
    field(',"trace_id":', FieldKind.string, StringField.traceId),
    field(',"downstream_remote_address":', FieldKind.address, StringField.remoteIp, NumberField.remotePort),
    field(',"downstream_local_address":', FieldKind.address, StringField.localIp, NumberField.localPort),
    field(',"requested_server_name":', FieldKind.string, StringField.serverName),
    field(',"peer_principal":', FieldKind.string, StringField.peerPrincipal),
    field(',"request_principal":', FieldKind.string, StringField.requestPrincipal),
    field(',"user_agent":', FieldKind.string, StringField.userAgent),
    field(',"x_forwarded_for":', FieldKind.string, StringField.forwardedFor),
    field('', FieldKind.truncated, -1),
  ],
  latin1('}\n'),
);

/** Istio's default text line (docs/observability.md#access-log); fields Envoy has and meshgate does not are `-`. */
export const TEXT_LAYOUT = new LineLayout(
  'TEXT',
  [
    field('[', FieldKind.timestamp, NumberField.startEpochMs),
    field('] "', FieldKind.string, StringField.method),
    field(' ', FieldKind.string, StringField.path),
    field(' ', FieldKind.protocol, StringField.httpVersion),
    field('" ', FieldKind.number, NumberField.responseCode),
    field(' ', FieldKind.string, StringField.responseFlags),
    field(' ', FieldKind.string, StringField.details),
    field(' - "-" ', FieldKind.number, NumberField.bytesReceived),
    field(' ', FieldKind.number, NumberField.bytesSent),
    field(' ', FieldKind.number, NumberField.durationMs),
    field(' ', FieldKind.number, NumberField.upstreamServiceTimeMs),
    field(' "', FieldKind.string, StringField.forwardedFor),
    field('" "', FieldKind.string, StringField.userAgent),
    field('" "', FieldKind.string, StringField.requestId),
    field('" "', FieldKind.string, StringField.authority),
    field('" "', FieldKind.string, StringField.upstreamHost),
    field('" ', FieldKind.string, StringField.upstreamCluster),
    field(' - ', FieldKind.address, StringField.localIp, NumberField.localPort),
    field(' ', FieldKind.address, StringField.remoteIp, NumberField.remotePort),
    field(' ', FieldKind.string, StringField.serverName),
    field(' ', FieldKind.string, StringField.routeName),
  ],
  latin1('\n'),
);

export const LAYOUTS: Readonly<Record<RecordFormat, LineLayout>> = { JSON: JSON_LAYOUT, TEXT: TEXT_LAYOUT };
