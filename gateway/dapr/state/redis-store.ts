/**
 * `state.redis` with Dapr's data layout, so meshgate and daprd can share a database: one HASH per key
 * with `data` (the value's JSON text) and `version` (the integer ETag, HINCRBY'd by each write), plus
 * `first-write` = 0 when an item was written with first-write concurrency. Writes and deletes run as
 * Lua scripts that check the ETag and write atomically; a transaction is one MULTI/EXEC of those
 * scripts (Redis has no rollback: an operation that fails leaves the ones before it applied, as in
 * Dapr). Reads fall back to GET for keys written as plain strings by older Dapr releases.
 *
 * Connections are tuned so an outage fails calls at once and never queues them: no offline queue,
 * one attempt per command, a command timeout, background reconnection with capped backoff. A pool
 * shares one connection per server/database/credentials across snapshots and stores.
 */
import { closeRedisClient, redisClass } from '../../redis/client.js';
import type { Redis } from 'ioredis';
import { EtagMismatchError, StoreUnavailableError, checkEtag } from './store.js';
import type { DeleteOperation, SetOperation, StateOperation, StateStore, StoredItem } from './store.js';

/** ARGV: 1 etag-or-0, 2 data, 3 "0" when first-write, 4 ttl seconds or "" to leave the expiry alone. */
const SET_SCRIPT = `
local current = redis.pcall("HMGET", KEYS[1], "version", "first-write")
if type(current) == "table" and current.err then
  redis.call("DEL", KEYS[1])
  current = {false, false}
end
local version = current[1]
if version and version ~= ARGV[1] and not (current[2] == false and ARGV[1] == "0") then
  return redis.error_reply("failed to set key " .. KEYS[1])
end
redis.call("HSET", KEYS[1], "data", ARGV[2])
if ARGV[3] == "0" then redis.call("HSET", KEYS[1], "first-write", 0) end
local next = redis.call("HINCRBY", KEYS[1], "version", 1)
if ARGV[4] ~= "" then
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then redis.call("EXPIRE", KEYS[1], ttl) else redis.call("PERSIST", KEYS[1]) end
end
return next
`;

/** ARGV: 1 etag-or-0. */
const DELETE_SCRIPT = `
local version = redis.pcall("HGET", KEYS[1], "version")
if not version or type(version) == "table" or version == ARGV[1] or ARGV[1] == "0" then
  return redis.call("DEL", KEYS[1])
end
return redis.error_reply("failed to delete " .. KEYS[1])
`;

type ScriptedRedis = Redis & {
  daprSet(key: string, etag: string, data: Buffer, firstWrite: string, ttl: string): Promise<number>;
  daprDelete(key: string, etag: string): Promise<number>;
};

export interface RedisStoreSettings {
  /** `host:port` (Dapr's redisHost). */
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  readonly tls: boolean;
}

const CONNECT_TIMEOUT_MS = 2000;
const COMMAND_TIMEOUT_MS = 2000;
const RECONNECT_STEP_MS = 100;
const RECONNECT_MAX_MS = 2000;

const pool = new Map<string, ScriptedRedis>();

function poolKey(settings: RedisStoreSettings): string {
  return JSON.stringify([settings.host, settings.port, settings.username ?? '', settings.password ?? '', settings.db, settings.tls]);
}

/** The pooled connection for these settings, opened on first use and reopened after a shutdown closed it. */
export function redisConnection(settings: RedisStoreSettings, onError: (message: string) => void): ScriptedRedis {
  const key = poolKey(settings);
  const existing = pool.get(key);
  if (existing !== undefined && existing.status !== 'end') return existing;
  const client = new (redisClass())({
    host: settings.host,
    port: settings.port,
    ...(settings.username === undefined ? {} : { username: settings.username }),
    ...(settings.password === undefined ? {} : { password: settings.password }),
    db: settings.db,
    ...(settings.tls ? { tls: { servername: settings.host } } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt: number) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
  }) as ScriptedRedis;
  client.defineCommand('daprSet', { numberOfKeys: 1, lua: SET_SCRIPT });
  client.defineCommand('daprDelete', { numberOfKeys: 1, lua: DELETE_SCRIPT });
  // Without a listener ioredis would throw; every reconnect attempt emits one, so only state changes are logged.
  let down = false;
  client.on('error', (error: Error) => {
    if (!down) onError(error.message);
    down = true;
  });
  client.on('ready', () => {
    down = false;
  });
  pool.set(key, client);
  return client;
}

export async function closeRedisConnections(): Promise<void> {
  const clients = [...pool.values()];
  pool.clear();
  await Promise.all(clients.map(closeRedisClient));
}

function isScriptRefusal(error: unknown): boolean {
  return error instanceof Error && /failed to (set key|delete)/.test(error.message);
}

function unavailable(error: unknown): StoreUnavailableError {
  return new StoreUnavailableError(error instanceof Error ? error.message : String(error));
}

function itemOf(fields: Record<string, Buffer>): StoredItem | null {
  const data = fields.data;
  if (data === undefined) return null;
  return { data, etag: fields.version?.toString('latin1') ?? '' };
}

export class RedisStateStore implements StateStore {
  private connection: ScriptedRedis | null = null;

  constructor(
    private readonly settings: RedisStoreSettings,
    private readonly onError: (message: string) => void,
  ) {}

  /** The pooled connection, looked up again only after a shutdown ended it (not on every call). */
  private client(): ScriptedRedis {
    if (this.connection === null || this.connection.status === 'end') this.connection = redisConnection(this.settings, this.onError);
    return this.connection;
  }

  async get(key: string): Promise<StoredItem | null> {
    const client = this.client();
    try {
      return itemOf(await client.hgetallBuffer(key));
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('WRONGTYPE')) throw unavailable(error);
    }
    // A plain string written by an older Dapr release: its bytes, without a version.
    try {
      const legacy = await client.getBuffer(key);
      return legacy === null ? null : { data: legacy, etag: '' };
    } catch (error) {
      throw unavailable(error);
    }
  }

  async bulkGet(keys: readonly string[]): Promise<(StoredItem | null | Error)[]> {
    if (keys.length === 0) return [];
    const pipeline = this.client().pipeline();
    for (const key of keys) pipeline.hgetallBuffer(key);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      throw unavailable(error);
    }
    if (results === null) throw new StoreUnavailableError('pipeline discarded');
    return Promise.all(
      results.map(([error, fields], index) => {
        if (error === null) return itemOf(fields as Record<string, Buffer>);
        return error.message.startsWith('WRONGTYPE') ? this.get(keys[index] as string).catch((e: unknown) => e as Error) : error;
      }),
    );
  }

  async set(operation: SetOperation): Promise<void> {
    checkEtag(operation.etag);
    try {
      await this.client().daprSet(...setArguments(operation));
    } catch (error) {
      throw isScriptRefusal(error) ? new EtagMismatchError(`possible etag mismatch for key ${operation.key}`) : unavailable(error);
    }
  }

  async delete(operation: DeleteOperation): Promise<void> {
    checkEtag(operation.etag);
    try {
      await this.client().daprDelete(operation.key, operation.etag ?? '0');
    } catch (error) {
      throw isScriptRefusal(error) ? new EtagMismatchError(`possible etag mismatch for key ${operation.key}`) : unavailable(error);
    }
  }

  async transact(operations: readonly StateOperation[]): Promise<void> {
    for (const operation of operations) checkEtag(operation.etag);
    const multi = this.client().multi() as unknown as ScriptedMulti;
    for (const operation of operations) {
      if (operation.kind === 'set') multi.daprSet(...setArguments(operation));
      else multi.daprDelete(operation.key, operation.etag ?? '0');
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await multi.exec();
    } catch (error) {
      throw unavailable(error);
    }
    if (results === null) throw new StoreUnavailableError('transaction discarded');
    const failed = results.find(([error]) => error !== null)?.[0];
    if (failed != null) throw isScriptRefusal(failed) ? new EtagMismatchError(failed.message) : unavailable(failed);
  }
}

interface ScriptedMulti {
  daprSet(key: string, etag: string, data: Buffer, firstWrite: string, ttl: string): ScriptedMulti;
  daprDelete(key: string, etag: string): ScriptedMulti;
  exec(): Promise<[Error | null, unknown][] | null>;
}

function setArguments(operation: SetOperation): [string, string, Buffer, string, string] {
  return [operation.key, operation.etag ?? '0', operation.data, operation.firstWrite ? '0' : '1', operation.ttlSeconds === null ? '' : String(operation.ttlSeconds)];
}
