/**
 * `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`. The SDKs treat a 2xx answer with a non-empty
 * body as "the sidecar is up" (the JS SDK polls this, not /healthz), so the body always carries at
 * least the app id. Components are listed with the capabilities of the block that serves them;
 * subscriptions are the snapshot's declarative ones plus what blocks learnt at run time.
 * Extended attributes live in memory, per app id, as in Dapr (lost at restart).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { MESHGATE_VERSION } from '../../version.js';
import type { DaprMetadataSubscription } from '../api/building-block.js';
import type { DaprBuildingBlock } from '../api/building-block.js';
import { daprError } from '../api/errors.js';
import { BodyTooLargeError, daprSnapshotOf, readBody } from '../api/request.js';
import type { DaprSnapshot } from '../snapshot.js';

/** Extended attributes are small labels, not a store. */
const MAX_EXTENDED_VALUE_BYTES = 64 * 1024;
const MAX_EXTENDED_KEYS = 256;

const extendedByApp = new Map<string, Map<string, string>>();

function extendedOf(dapr: DaprSnapshot): Map<string, string> {
  const key = `${dapr.namespace}/${dapr.appId}`;
  let extended = extendedByApp.get(key);
  if (extended === undefined) extendedByApp.set(key, (extended = new Map()));
  return extended;
}

function capabilitiesOf(dapr: DaprSnapshot, type: string, component: Parameters<NonNullable<DaprBuildingBlock['capabilities']>>[0]): readonly string[] {
  const block = dapr.blockList.find((candidate) => candidate.componentTypes.includes(type));
  return block?.capabilities?.(component) ?? [];
}

function metadataBody(request: FastifyRequest): Record<string, unknown> {
  const dapr = daprSnapshotOf(request);
  const declarative: DaprMetadataSubscription[] = dapr.subscriptions.map((s) => ({
    pubsubname: s.pubsubname,
    topic: s.topic,
    ...(Object.keys(s.metadata).length === 0 ? {} : { metadata: s.metadata }),
    rules: [...s.rules, ...(s.defaultPath === null ? [] : [{ match: '', path: s.defaultPath }])],
    ...(s.deadLetterTopic === null ? {} : { deadLetterTopic: s.deadLetterTopic }),
    type: 'DECLARATIVE',
  }));
  const subscriptions = [...declarative];
  const extended: Record<string, string> = { meshgateVersion: MESHGATE_VERSION };
  for (const block of dapr.blockList) {
    const contribution = block.metadata?.(dapr.blocks.get(block.name));
    if (contribution === undefined) continue;
    subscriptions.push(...(contribution.subscriptions ?? []));
    Object.assign(extended, contribution.extended);
  }
  Object.assign(extended, Object.fromEntries(extendedOf(dapr)));
  return {
    id: dapr.appId,
    runtimeVersion: `meshgate-${MESHGATE_VERSION}`,
    enabledFeatures: [],
    actors: [],
    components: dapr.components.all.map((c) => ({ name: c.name, type: c.type, version: c.version, capabilities: capabilitiesOf(dapr, c.type, c) })),
    extended,
    subscriptions,
    httpEndpoints: [],
    ...(dapr.appEndpoint === null ? {} : { appConnectionProperties: { port: dapr.appEndpoint.port, protocol: 'http', channelAddress: dapr.appEndpoint.host } }),
  };
}

async function setExtended(request: FastifyRequest<{ Params: { key: string } }>, reply: FastifyReply): Promise<FastifyReply> {
  let body: Buffer;
  try {
    body = await readBody(request, MAX_EXTENDED_VALUE_BYTES);
  } catch (error) {
    if (error instanceof BodyTooLargeError) return daprError(request, reply, 413, 'ERR_BODY_TOO_LARGE', `a metadata value may be at most ${MAX_EXTENDED_VALUE_BYTES} bytes`);
    throw error;
  }
  const extended = extendedOf(daprSnapshotOf(request));
  const { key } = request.params;
  if (!extended.has(key) && extended.size >= MAX_EXTENDED_KEYS) {
    return daprError(request, reply, 400, 'ERR_METADATA_SET', `at most ${MAX_EXTENDED_KEYS} extended metadata keys`);
  }
  extended.set(key, body.toString('utf8'));
  return reply.code(204).send();
}

export const metadataBlock: DaprBuildingBlock<null> = {
  name: 'metadata',
  componentTypes: [],
  compile: () => null,
  register(app) {
    app.get('/v1.0/metadata', (request, reply) => reply.code(200).type('application/json').send(JSON.stringify(metadataBody(request))));
    app.put('/v1.0/metadata/:key', setExtended);
  },
};
