/**
 * Dapr's state API (`/v1.0/state/{store}…`): save, get, bulk get, delete and transactions, with Dapr's
 * status codes, headers and error bodies. Values are stored as their JSON text (keys sorted, as Go
 * writes them), keys are prefixed per the store's `keyPrefix`, and backend failures answer at once
 * (the Redis client never queues while disconnected).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DaprBuildingBlock } from '../api/building-block.js';
import { daprError } from '../api/errors.js';
import { BodyTooLargeError, compiledBlock, readBody } from '../api/request.js';
import { canonicalJson } from './canonical-json.js';
import { MEMORY_STATE, REDIS_STATE, compileState, setStateLog } from './compile.js';
import type { CompiledState, StateStoreBinding } from './compile.js';
import { KEY_SEPARATOR } from './keys.js';
import { closeRedisConnections } from './redis-store.js';
import { EtagInvalidError, EtagMismatchError } from './store.js';
import type { StateOperation } from './store.js';

const BLOCK = 'state';
const STATE_PREFIX = '/v1.0/state/';

type Query = Record<string, string | string[] | undefined>;

/** A request problem already answered; handlers return its reply. */
class Answered extends Error {
  constructor(readonly reply: FastifyReply) {
    super('answered');
  }
}

function fail(request: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string): never {
  throw new Answered(daprError(request, reply, status, code, message));
}

function pathOf(request: FastifyRequest): string {
  const url = request.raw.url ?? '/';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

function decode(request: FastifyRequest, reply: FastifyReply, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `malformed percent-encoding in "${text}"`);
  }
}

/** `/v1.0/state/{store}/{key…}` → store and key (a key may contain encoded or plain slashes). */
function storeAndKey(request: FastifyRequest, reply: FastifyReply): { store: string; key: string } {
  const rest = pathOf(request).slice(STATE_PREFIX.length);
  const slash = rest.indexOf('/');
  const store = decode(request, reply, slash < 0 ? rest : rest.slice(0, slash));
  return { store, key: slash < 0 ? '' : decode(request, reply, rest.slice(slash + 1)) };
}

function bindingOf(request: FastifyRequest, reply: FastifyReply, name: string): StateStoreBinding {
  const { stores } = compiledBlock<CompiledState>(request, BLOCK);
  const binding = stores.get(name);
  if (binding !== undefined) return binding;
  if (stores.size === 0) return fail(request, reply, 500, 'ERR_STATE_STORE_NOT_CONFIGURED', 'state store is not configured');
  return fail(request, reply, 400, 'ERR_STATE_STORE_NOT_FOUND', `state store ${name} is not found`);
}

function checkKey(request: FastifyRequest, reply: FastifyReply, key: unknown): string {
  if (typeof key !== 'string' || key === '') return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'a state item needs a non-empty string "key"');
  if (key.includes(KEY_SEPARATOR)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `input key/keyPrefix '${key}' can't contain '${KEY_SEPARATOR}'`);
  return key;
}

/** `metadata.<k>=<v>` query parameters, as Dapr reads request metadata. */
function queryMetadata(query: Query): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (name.startsWith('metadata.') && typeof value === 'string') metadata[name.slice('metadata.'.length)] = value;
  }
  return metadata;
}

function stringRecord(request: FastifyRequest, reply: FastifyReply, value: unknown, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `${what} must be an object of strings`);
  }
  return value as Record<string, string>;
}

function ttlOf(request: FastifyRequest, reply: FastifyReply, metadata: Record<string, string>, binding: StateStoreBinding): number | null {
  const text = metadata.ttlInSeconds;
  if (text === undefined) return binding.defaultTtlSeconds;
  if (!/^-?\d{1,10}$/.test(text)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `metadata ttlInSeconds must be an integer, got "${text}"`);
  return Number(text);
}

function etagOf(request: FastifyRequest, reply: FastifyReply, etag: unknown, concurrency: unknown): string | null {
  if (etag !== undefined && etag !== null && typeof etag !== 'string') return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'etag must be a string');
  if (concurrency !== undefined && concurrency !== null && concurrency !== '' && concurrency !== 'first-write' && concurrency !== 'last-write') {
    return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `concurrency must be "first-write" or "last-write", got ${JSON.stringify(concurrency)}`);
  }
  // last-write ignores the ETag, as Dapr's Redis store does.
  if (concurrency === 'last-write' || etag === undefined || etag === null || etag === '') return null;
  return etag;
}

async function jsonBody(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  let body: Buffer;
  try {
    body = await readBody(request);
  } catch (error) {
    if (!(error instanceof BodyTooLargeError)) throw error;
    // The rest of the body is discarded as it arrives; closing the connection stops the sender sooner.
    reply.header('connection', 'close');
    return fail(request, reply, 413, 'ERR_MALFORMED_REQUEST', `request body larger than ${error.limit} bytes`);
  }
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', `failed deserializing the request body: ${(error as Error).message}`);
  }
}

interface ItemRequest {
  key?: unknown;
  value?: unknown;
  etag?: unknown;
  metadata?: unknown;
  options?: { concurrency?: unknown; consistency?: unknown } | null;
}

function setOperation(request: FastifyRequest, reply: FastifyReply, binding: StateStoreBinding, item: unknown, defaults: Record<string, string>): StateOperation {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'each state item must be an object');
  const { key, value, etag, metadata, options } = item as ItemRequest;
  const appKey = checkKey(request, reply, key);
  const merged = { ...defaults, ...stringRecord(request, reply, metadata, 'metadata') };
  const concurrency = options?.concurrency;
  return {
    kind: 'set',
    key: binding.keys.storeKey(appKey),
    data: Buffer.from(canonicalJson(value === undefined ? null : value)),
    etag: etagOf(request, reply, etag, concurrency),
    firstWrite: concurrency === 'first-write',
    ttlSeconds: ttlOf(request, reply, merged, binding),
  };
}

/** Maps a store failure to Dapr's answer for the operation (`ERR_STATE_SAVE`, `_DELETE`, …). */
function storeFailure(request: FastifyRequest, reply: FastifyReply, error: unknown, code: string, what: string): FastifyReply {
  if (error instanceof EtagMismatchError) return daprError(request, reply, code === 'ERR_STATE_TRANSACTION' ? 500 : 409, code, `${what}: possible etag mismatch. error from state store: ${error.message}`);
  if (error instanceof EtagInvalidError) return daprError(request, reply, 400, code, `${what}: ${error.message}`);
  return daprError(request, reply, 500, code, `${what}: ${error instanceof Error ? error.message : String(error)}`);
}

async function answering(handler: () => Promise<FastifyReply>): Promise<FastifyReply> {
  try {
    return await handler();
  } catch (error) {
    if (error instanceof Answered) return error.reply;
    throw error;
  }
}

function save(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  return answering(async () => {
    const { store } = storeAndKey(request, reply);
    const binding = bindingOf(request, reply, store);
    const items = await jsonBody(request, reply);
    if (!Array.isArray(items)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'the body must be a JSON array of state items');
    const defaults = queryMetadata(request.query as Query);
    const operations = items.map((item) => setOperation(request, reply, binding, item, defaults));
    try {
      await Promise.all(operations.map((operation) => (operation.kind === 'set' ? binding.store.set(operation) : binding.store.delete(operation))));
    } catch (error) {
      return storeFailure(request, reply, error, 'ERR_STATE_SAVE', `failed saving state in state store ${store}`);
    }
    return reply.code(204).send();
  });
}

function get(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  return answering(async () => {
    const { store, key } = storeAndKey(request, reply);
    const binding = bindingOf(request, reply, store);
    const storeKey = binding.keys.storeKey(checkKey(request, reply, key));
    let item;
    try {
      item = await binding.store.get(storeKey);
    } catch (error) {
      return storeFailure(request, reply, error, 'ERR_STATE_GET', `fail to get ${key} from state store ${store}`);
    }
    if (item === null) return reply.code(204).send();
    if (item.etag !== '') reply.header('etag', item.etag);
    return reply.code(200).type('application/json').send(item.data);
  });
}

function remove(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  return answering(async () => {
    const { store, key } = storeAndKey(request, reply);
    const binding = bindingOf(request, reply, store);
    const storeKey = binding.keys.storeKey(checkKey(request, reply, key));
    const { concurrency } = request.query as Query;
    const etag = etagOf(request, reply, request.headers['if-match'], concurrency);
    request.raw.resume();
    try {
      await binding.store.delete({ kind: 'delete', key: storeKey, etag });
    } catch (error) {
      return storeFailure(request, reply, error, 'ERR_STATE_DELETE', `failed deleting state with key ${key}`);
    }
    return reply.code(204).send();
  });
}

/** A stored value goes into the bulk answer as JSON when it is JSON (it always is when written by Dapr), else as a string. */
function embedded(data: Buffer): string {
  const text = data.toString('utf8');
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(text);
  }
}

function bulk(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  return answering(async () => {
    const { store } = storeAndKey(request, reply);
    const binding = bindingOf(request, reply, store);
    const body = await jsonBody(request, reply);
    const keys = (body as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'the body must be {"keys": [...]}');
    const appKeys = keys.map((key) => checkKey(request, reply, key));
    let items;
    try {
      items = await binding.store.bulkGet(appKeys.map((key) => binding.keys.storeKey(key)));
    } catch (error) {
      return storeFailure(request, reply, error, 'ERR_STATE_BULK_GET', `failed getting state in bulk from state store ${store}`);
    }
    const entries = items.map((item, index) => {
      const key = JSON.stringify(appKeys[index]);
      if (item === null) return `{"key":${key}}`;
      if (item instanceof Error) return `{"key":${key},"error":${JSON.stringify(item.message)}}`;
      return `{"key":${key},"data":${embedded(item.data)}${item.etag === '' ? '' : `,"etag":${JSON.stringify(item.etag)}`}}`;
    });
    return reply.code(200).type('application/json').send(`[${entries.join(',')}]`);
  });
}

function transaction(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  return answering(async () => {
    const { store } = storeAndKey(request, reply);
    const binding = bindingOf(request, reply, store);
    const body = await jsonBody(request, reply);
    const { operations, metadata } = (typeof body === 'object' && body !== null ? body : {}) as { operations?: unknown; metadata?: unknown };
    if (!Array.isArray(operations)) return fail(request, reply, 400, 'ERR_MALFORMED_REQUEST', 'the body must be {"operations": [...]}');
    const defaults = { ...queryMetadata(request.query as Query), ...stringRecord(request, reply, metadata, 'metadata') };
    const steps = operations.map((entry: unknown): StateOperation => {
      const { operation, request: item } = (typeof entry === 'object' && entry !== null ? entry : {}) as { operation?: unknown; request?: unknown };
      if (operation === 'upsert') return setOperation(request, reply, binding, item, defaults);
      if (operation === 'delete') {
        const { key, etag, options } = (typeof item === 'object' && item !== null ? item : {}) as ItemRequest;
        return { kind: 'delete', key: binding.keys.storeKey(checkKey(request, reply, key)), etag: etagOf(request, reply, etag, options?.concurrency) };
      }
      return fail(request, reply, 400, 'ERR_NOT_SUPPORTED_STATE_OPERATION', `operation type ${JSON.stringify(operation)} not supported`);
    });
    if (steps.length > 0) {
      try {
        await binding.store.transact(steps);
      } catch (error) {
        return storeFailure(request, reply, error, 'ERR_STATE_TRANSACTION', `error while executing state transaction on ${store}`);
      }
    }
    return reply.code(204).send();
  });
}

export const stateBlock: DaprBuildingBlock<CompiledState> = {
  name: BLOCK,
  componentTypes: [REDIS_STATE, MEMORY_STATE],
  capabilities: () => ['ETAG', 'TRANSACTIONAL', 'TTL'],
  compile: compileState,
  activated(compiled) {
    for (const binding of compiled.stores.values()) binding.warmUp();
  },
  shutdown: closeRedisConnections,
  register(app) {
    setStateLog(app.log);
    app.route({ method: ['POST', 'PUT'], url: '/v1.0/state/:store', handler: save });
    app.route({ method: ['POST', 'PUT'], url: '/v1.0/state/:store/bulk', handler: bulk });
    app.route({ method: ['POST', 'PUT'], url: '/v1.0/state/:store/transaction', handler: transaction });
    app.get('/v1.0/state/:store/*', get);
    app.delete('/v1.0/state/:store/*', remove);
  },
};
