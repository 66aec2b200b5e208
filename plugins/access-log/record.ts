/**
 * The raw values of one request's access-log line, as the request path captures them (capture.ts) and
 * the line encoder writes them (line-encoder.ts). Numbers sit in a Float64Array, `null` as NaN, so the
 * encoder can tell an unchanged field from a changed one by index, the same way for every field.
 */

/** The string fields of a record, by their index in `RawRecord.strings`. */
export const StringField = {
  method: 0,
  authority: 1,
  path: 2,
  httpVersion: 3,
  responseFlags: 4,
  details: 5,
  routeName: 6,
  upstreamCluster: 7,
  upstreamHost: 8,
  requestId: 9,
  traceId: 10,
  remoteIp: 11,
  localIp: 12,
  serverName: 13,
  peerPrincipal: 14,
  requestPrincipal: 15,
  userAgent: 16,
  forwardedFor: 17,
} as const;
export const STRING_FIELD_COUNT = Object.keys(StringField).length;

/** The number fields of a record, by their index in `RawRecord.numbers`; NaN stands for "none". */
export const NumberField = {
  startEpochMs: 0,
  durationMs: 1,
  upstreamServiceTimeMs: 2,
  bytesReceived: 3,
  bytesSent: 4,
  responseCode: 5,
  /** The client's port, or none when the client address is written without one (it came from a proxy header). */
  remotePort: 6,
  localPort: 7,
} as const;
export const NUMBER_FIELD_COUNT = Object.keys(NumberField).length;

/** The client-controlled fields with a bound, in the order `truncated_fields` lists them (bit i of RawRecord.truncated). */
export const BOUNDED_FIELDS = [
  { name: 'authority', field: StringField.authority },
  { name: 'path', field: StringField.path },
  { name: 'user_agent', field: StringField.userAgent },
  { name: 'x_forwarded_for', field: StringField.forwardedFor },
] as const;

export type RecordFormat = 'JSON' | 'TEXT';

export interface RawRecord {
  readonly strings: (string | null)[];
  readonly numbers: Float64Array;
  /** One bit per bounded field cut to its bound (bit i = BOUNDED_FIELDS[i]). */
  truncated: number;
}

export function emptyRawRecord(): RawRecord {
  return { strings: new Array<string | null>(STRING_FIELD_COUNT).fill(null), numbers: new Float64Array(NUMBER_FIELD_COUNT).fill(NaN), truncated: 0 };
}
