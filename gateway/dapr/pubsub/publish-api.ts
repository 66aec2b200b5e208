/**
 * Dapr's publish endpoints on the sidecar's outbound listener:
 * `POST|PUT /v1.0/publish/{pubsub}/{topic…}` and `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic…}`.
 * Errors are Dapr's (`ERR_PUBSUB_NOT_FOUND` 404, `ERR_PUBSUB_FORBIDDEN` 403, `ERR_PUBSUB_CLOUD_EVENTS_SER`
 * 400, `ERR_PUBSUB_PUBLISH_MESSAGE` 500); a broker that does not confirm within PUBLISH_DEADLINE_MS is
 * an error too, so a broker outage never holds the caller.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ProxyEvents } from '../../pipeline/capabilities.js';
import { daprError } from '../api/errors.js';
import { BodyTooLargeError, compiledBlock, readBody } from '../api/request.js';
import { buildPublishedEvent, CloudEventError } from './cloudevent.js';
import type { CompiledPubSub, CompiledPubSubComponent, PubSubRuntime } from './runtime.js';

export const PUBSUB_BLOCK_NAME = 'pubsub';
const PUBLISH_DEADLINE_MS = 5000;

interface PublishParams {
  readonly pubsub: string;
  readonly '*': string;
}

/** `metadata.<key>=<value>` query parameters, prefix removed (the SDK ends URLs in a bare `?`). */
function queryMetadata(query: unknown): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (query === null || typeof query !== 'object') return metadata;
  for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
    if (!key.startsWith('metadata.')) continue;
    const text = Array.isArray(value) ? value[value.length - 1] : value;
    if (typeof text === 'string') metadata[key.slice('metadata.'.length)] = text;
  }
  return metadata;
}

function withDeadline<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from the broker within ${PUBLISH_DEADLINE_MS} ms`)), PUBLISH_DEADLINE_MS);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

type Resolved = { readonly compiled: CompiledPubSub; readonly component: CompiledPubSubComponent; readonly topic: string };

/** The component and topic of the request, or the Dapr error already sent. */
function resolveTarget(request: FastifyRequest<{ Params: PublishParams }>, reply: FastifyReply, events: ProxyEvents): Resolved | FastifyReply {
  const name = request.params.pubsub;
  const topic = request.params['*'];
  if (name === '') return daprError(request, reply, 404, 'ERR_PUBSUB_EMPTY', 'pubsub name is empty');
  if (topic === '') return daprError(request, reply, 404, 'ERR_TOPIC_EMPTY', `topic is empty in pubsub ${name}`);
  const compiled = compiledBlock<CompiledPubSub | undefined>(request, PUBSUB_BLOCK_NAME);
  const component = compiled?.components.get(name);
  if (compiled === undefined || component === undefined) {
    return daprError(request, reply, 404, 'ERR_PUBSUB_NOT_FOUND', `pubsub ${name} is not found`);
  }
  if (!component.scopes.mayPublish(topic)) {
    events.pubsubPublish(name, topic, 'forbidden');
    return daprError(request, reply, 403, 'ERR_PUBSUB_FORBIDDEN', `topic ${topic} is not allowed for app id ${compiled.appId}`);
  }
  return { compiled, component, topic };
}

async function readPublishBody(request: FastifyRequest, reply: FastifyReply): Promise<Buffer | FastifyReply> {
  try {
    return await readBody(request);
  } catch (error) {
    if (error instanceof BodyTooLargeError) {
      reply.header('connection', 'close');
      return daprError(request, reply, 413, 'ERR_BODY_TOO_LARGE', error.message);
    }
    throw error;
  }
}

interface BulkEntry {
  readonly entryId: string;
  readonly event: unknown;
  readonly contentType: string;
  readonly metadata: Record<string, string>;
}

function parseBulkEntries(body: Buffer): BulkEntry[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return `the body is not JSON: ${(error as Error).message}`;
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) return 'the body must be a JSON array of {entryId, event, contentType, metadata?}';
  const entries: BulkEntry[] = [];
  const seen = new Set<string>();
  for (const [index, raw] of list.entries()) {
    if (raw === null || typeof raw !== 'object') return `entry ${index} is not an object`;
    const entry = raw as Record<string, unknown>;
    const entryId = entry['entryId'];
    if (typeof entryId !== 'string' || entryId === '') return `entry ${index} has no entryId`;
    if (seen.has(entryId)) return `entryId ${JSON.stringify(entryId)} is used twice`;
    seen.add(entryId);
    if (!('event' in entry)) return `entry ${entryId} has no event`;
    const metadata: Record<string, string> = {};
    if (entry['metadata'] !== null && typeof entry['metadata'] === 'object') {
      for (const [key, value] of Object.entries(entry['metadata'] as Record<string, unknown>)) if (typeof value === 'string') metadata[key] = value;
    }
    const contentType = typeof entry['contentType'] === 'string' && entry['contentType'] !== '' ? entry['contentType'] : 'application/json';
    entries.push({ entryId, event: entry['event'], contentType, metadata });
  }
  return entries;
}

function eventBytes(entry: BulkEntry): Buffer {
  if (typeof entry.event === 'string' && !/json/i.test(entry.contentType)) return Buffer.from(entry.event);
  return Buffer.from(JSON.stringify(entry.event));
}

export function registerPublishRoutes(app: FastifyInstance, runtimeFor: (compiled: CompiledPubSub) => PubSubRuntime, events: ProxyEvents): void {
  const publish = async (request: FastifyRequest<{ Params: PublishParams }>, reply: FastifyReply): Promise<FastifyReply> => {
    const target = resolveTarget(request, reply, events);
    if (!('component' in target)) return target;
    const body = await readPublishBody(request, reply);
    if (!Buffer.isBuffer(body)) return body;
    const { compiled, component, topic } = target;
    const metadata = queryMetadata(request.query);
    let event: Buffer;
    try {
      event = buildPublishedEvent({
        pubsubName: component.name,
        topic,
        body,
        contentType: header(request, 'content-type'),
        metadata,
        sourceAppId: compiled.appId,
        traceparent: header(request, 'traceparent'),
        tracestate: header(request, 'tracestate'),
      });
    } catch (error) {
      if (!(error instanceof CloudEventError)) throw error;
      events.pubsubPublish(component.name, topic, 'invalid');
      return daprError(request, reply, 400, 'ERR_PUBSUB_CLOUD_EVENTS_SER', error.message);
    }
    try {
      await withDeadline(runtimeFor(compiled).broker(component).publish(topic, event, metadata), `publishing to ${component.name}/${topic}`);
    } catch (error) {
      events.pubsubPublish(component.name, topic, 'broker_error');
      return daprError(request, reply, 500, 'ERR_PUBSUB_PUBLISH_MESSAGE', `error when publishing to topic ${topic} in pubsub ${component.name}: ${(error as Error).message}`);
    }
    events.pubsubPublish(component.name, topic, 'published');
    return reply.code(204).send();
  };

  const publishBulk = async (request: FastifyRequest<{ Params: PublishParams }>, reply: FastifyReply): Promise<FastifyReply> => {
    const target = resolveTarget(request, reply, events);
    if (!('component' in target)) return target;
    const body = await readPublishBody(request, reply);
    if (!Buffer.isBuffer(body)) return body;
    const { compiled, component, topic } = target;
    const entries = parseBulkEntries(body);
    if (typeof entries === 'string') return daprError(request, reply, 400, 'ERR_PUBSUB_EVENTS_SER', entries);
    const requestMetadata = queryMetadata(request.query);
    const broker = runtimeFor(compiled).broker(component);
    const failedEntries: { entryId: string; error: string }[] = [];
    await Promise.all(
      entries.map(async (entry) => {
        const metadata = { ...requestMetadata, ...entry.metadata };
        try {
          const event = buildPublishedEvent({
            pubsubName: component.name,
            topic,
            body: eventBytes(entry),
            contentType: entry.contentType,
            metadata,
            sourceAppId: compiled.appId,
            traceparent: header(request, 'traceparent'),
            tracestate: header(request, 'tracestate'),
          });
          await withDeadline(broker.publish(topic, event, metadata), `publishing entry ${entry.entryId}`);
          events.pubsubPublish(component.name, topic, 'published');
        } catch (error) {
          events.pubsubPublish(component.name, topic, error instanceof CloudEventError ? 'invalid' : 'broker_error');
          failedEntries.push({ entryId: entry.entryId, error: (error as Error).message });
        }
      }),
    );
    if (failedEntries.length === 0) return reply.code(204).send();
    request.mesh.localReply = { status: 500, flag: '', details: 'ERR_PUBSUB_PUBLISH_MESSAGE', message: `${failedEntries.length} of ${entries.length} entries failed` };
    return reply
      .code(500)
      .type('application/json')
      .send(JSON.stringify({ failedEntries, errorCode: 'ERR_PUBSUB_PUBLISH_MESSAGE', message: `${failedEntries.length} of ${entries.length} entries failed` }));
  };

  app.route<{ Params: PublishParams }>({ method: ['POST', 'PUT'], url: '/v1.0/publish/:pubsub/*', handler: publish });
  app.route<{ Params: PublishParams }>({ method: ['POST', 'PUT'], url: '/v1.0-alpha1/publish/bulk/:pubsub/*', handler: publishBulk });
}
