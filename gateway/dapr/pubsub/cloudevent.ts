/**
 * CloudEvents 1.0 envelopes as Dapr writes and reads them (components-contrib `pubsub/envelope.go`).
 * Publish side: the request body becomes the envelope's `data` (JSON parsed, text as a string, binary as
 * `data_base64`), or is taken AS the envelope when it is `application/cloudevents+json`, or is sent
 * untouched with `metadata.rawPayload=true`. Delivery side: the broker's bytes become the JSON the app
 * receives, wrapped on the subscriber side when the subscription is raw.
 */
import { randomUUID } from 'node:crypto';

export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json';
const SPEC_VERSION = '1.0';
const DEFAULT_EVENT_TYPE = 'com.dapr.event.sent';
const DEFAULT_DATA_CONTENT_TYPE = 'text/plain';
/** Query metadata `cloudevent.<field>` overrides exactly these envelope fields. */
const OVERRIDABLE_FIELDS = ['id', 'source', 'type', 'subject', 'traceparent', 'tracestate'] as const;

/** A publish request the envelope cannot be built from; the API answers 400. */
export class CloudEventError extends Error {
  override readonly name = 'CloudEventError';
}

export interface PublishInput {
  readonly pubsubName: string;
  readonly topic: string;
  readonly body: Buffer;
  /** The request's Content-Type, parameters included; undefined when the request had none. */
  readonly contentType: string | undefined;
  /** `metadata.*` query parameters with the prefix removed. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly sourceAppId: string;
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
}

export interface EnvelopeClock {
  nowMs(): number;
  newId(): string;
}

export const SYSTEM_ENVELOPE_CLOCK: EnvelopeClock = {
  nowMs: () => Date.now(),
  newId: () => randomUUID(),
};

let isoMs = Number.NaN;
let isoText = '';

/** `time` of an envelope: the ISO text is made once per millisecond, not once per event (it was a tenth of building one). */
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** Dapr's metadata booleans: the SDK JSON-stringifies values, so `"\"true\""` also means true. */
export function metadataFlag(value: string | undefined): boolean {
  if (value === undefined) return false;
  const unquoted = value.trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  return unquoted === 'true' || unquoted === '1' || unquoted === 'yes' || unquoted === 'y';
}

function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json') || type === 'text/json';
}

function isTextMediaType(type: string): boolean {
  return type.startsWith('text/') || type === 'application/xml' || type.endsWith('+xml') || type === '';
}

/**
 * The envelope's data member as JSON text: a JSON body is written as it came (parsed only to check
 * it is JSON), not parsed into objects and serialized again; text as a string, binary as data_base64.
 */
function dataMember(body: Buffer, type: string): string {
  if (isJsonMediaType(type)) {
    const text = body.toString('utf8');
    try {
      JSON.parse(text);
      return `"data":${text}`;
    } catch {
      return `"data":${JSON.stringify(text)}`;
    }
  }
  if (isTextMediaType(type)) return `"data":${JSON.stringify(body.toString('utf8'))}`;
  return `"data_base64":"${body.toString('base64')}"`;
}

function parseEnvelopeObject(body: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new CloudEventError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CloudEventError(`${what} must be a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * The bytes to hand to the broker for one publish. Throws CloudEventError for a body that claims to be
 * a CloudEvent and is not one.
 */
export function buildPublishedEvent(input: PublishInput, clock: EnvelopeClock = SYSTEM_ENVELOPE_CLOCK): Buffer {
  if (metadataFlag(input.metadata['rawPayload'])) return input.body;

  const declaredType = input.contentType === undefined ? '' : mediaType(input.contentType);
  if (declaredType === CLOUDEVENTS_CONTENT_TYPE) {
    const envelope = parseEnvelopeObject(input.body, 'a body sent as application/cloudevents+json');
    envelope['specversion'] ??= SPEC_VERSION;
    envelope['id'] ??= clock.newId();
    envelope['source'] ??= input.sourceAppId;
    envelope['type'] ??= DEFAULT_EVENT_TYPE;
    envelope['time'] ??= isoTime(clock.nowMs());
    completeEnvelope(envelope, input, clock);
    return Buffer.from(JSON.stringify(envelope));
  }
  const dataContentType = input.contentType === undefined || declaredType === '' ? DEFAULT_DATA_CONTENT_TYPE : input.contentType;
  if (!hasEnvelopeMetadata(input.metadata)) return plainEnvelope(input, dataContentType, clock);
  // Every member but the data is a string: those are serialized as an object, the data member appended as text.
  const envelope: Record<string, unknown> = {
    id: clock.newId(),
    specversion: SPEC_VERSION,
    source: input.sourceAppId,
    type: DEFAULT_EVENT_TYPE,
    datacontenttype: dataContentType,
    time: isoTime(clock.nowMs()),
  };
  completeEnvelope(envelope, input, clock);
  const members = JSON.stringify(envelope);
  return Buffer.from(`${members.slice(0, -1)},${dataMember(input.body, mediaType(dataContentType))}}`);
}

/** Whether the publish metadata changes the envelope (overrides, an expiration). */
function hasEnvelopeMetadata(metadata: Readonly<Record<string, string>>): boolean {
  for (const key in metadata) if (key === 'ttlInSeconds' || key.startsWith('cloudevent.')) return true;
  return false;
}

/**
 * The envelope of a publish whose metadata changes nothing in it (nearly every publish), written as
 * text in one go: the same members in the same order as completeEnvelope gives them, without an object
 * to build and serialize. The time (ISO) needs no escaping.
 */
function plainEnvelope(input: PublishInput, dataContentType: string, clock: EnvelopeClock): Buffer {
  const trace =
    input.traceparent === undefined
      ? ''
      : `,"traceparent":${JSON.stringify(input.traceparent)},"traceid":${JSON.stringify(input.traceparent)},"tracestate":${JSON.stringify(input.tracestate ?? '')}`;
  return Buffer.from(
    `{"id":${JSON.stringify(clock.newId())},"specversion":"${SPEC_VERSION}","source":${JSON.stringify(input.sourceAppId)},"type":"${DEFAULT_EVENT_TYPE}",` +
      `"datacontenttype":${JSON.stringify(dataContentType)},"time":"${isoTime(clock.nowMs())}","topic":${JSON.stringify(input.topic)},` +
      `"pubsubname":${JSON.stringify(input.pubsubName)}${trace},${dataMember(input.body, mediaType(dataContentType))}}`,
  );
}

/** The members Dapr sets on every envelope, a body's own CloudEvent included: topic, trace context, overrides, expiration. */
function completeEnvelope(envelope: Record<string, unknown>, input: PublishInput, clock: EnvelopeClock): void {
  envelope['topic'] = input.topic;
  envelope['pubsubname'] = input.pubsubName;
  if (input.traceparent !== undefined) {
    envelope['traceparent'] ??= input.traceparent;
    envelope['traceid'] ??= input.traceparent;
    envelope['tracestate'] ??= input.tracestate ?? '';
  }
  for (const field of OVERRIDABLE_FIELDS) {
    const override = input.metadata[`cloudevent.${field}`];
    if (override !== undefined) envelope[field] = override;
  }
  if (envelope['traceparent'] !== undefined) envelope['traceid'] = envelope['traceparent'];
  const ttl = input.metadata['ttlInSeconds'];
  if (ttl !== undefined) {
    const seconds = Number(ttl);
    if (!Number.isInteger(seconds) || seconds < 0) {
      throw new CloudEventError(`metadata.ttlInSeconds must be a non-negative integer, got ${JSON.stringify(ttl)}`);
    }
    envelope['expiration'] = new Date(clock.nowMs() + seconds * 1000).toISOString();
  }
}

export interface DeliveredEvent {
  readonly id: string;
  readonly envelope: Record<string, unknown>;
  /** The exact JSON bytes POSTed to the app. */
  readonly body: Buffer;
  readonly traceparent: string | undefined;
  readonly expired: boolean;
}

function stringField(envelope: Record<string, unknown>, field: string): string | undefined {
  const value = envelope[field];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The CloudEvent an app receives for one broker message. Non-raw subscriptions need a JSON object (a
 * CloudEventError otherwise: Dapr treats it as a deserialization failure); raw ones wrap any bytes.
 */
export function eventForDelivery(
  data: Buffer,
  options: { readonly rawPayload: boolean; readonly pubsubName: string; readonly topic: string },
  clock: EnvelopeClock = SYSTEM_ENVELOPE_CLOCK,
): DeliveredEvent {
  if (options.rawPayload) {
    const envelope: Record<string, unknown> = {
      id: clock.newId(),
      specversion: SPEC_VERSION,
      datacontenttype: 'application/octet-stream',
      source: 'Dapr',
      type: DEFAULT_EVENT_TYPE,
      topic: options.topic,
      pubsubname: options.pubsubName,
      data_base64: data.toString('base64'),
    };
    return { id: envelope['id'] as string, envelope, body: Buffer.from(JSON.stringify(envelope)), traceparent: undefined, expired: false };
  }
  const envelope = parseEnvelopeObject(data, 'the broker message');
  const expiration = stringField(envelope, 'expiration');
  const expiresAt = expiration === undefined ? Number.NaN : Date.parse(expiration);
  return {
    id: stringField(envelope, 'id') ?? '',
    envelope,
    body: data,
    traceparent: stringField(envelope, 'traceparent'),
    expired: Number.isFinite(expiresAt) && expiresAt <= clock.nowMs(),
  };
}
