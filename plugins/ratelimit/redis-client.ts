/**
 * The ONE Redis connection a gateway process uses for rate limiting, created when the first policy
 * needs it and closed when the last gateway app closes.
 *
 * Tuned so an unreachable Redis never slows a request down: no offline queue (a command issued while
 * disconnected fails at once instead of piling up), one attempt per command, a short command timeout
 * (MeshConfig `redis.commandTimeout`, 250 ms by default: past it the policy's failureMode decides),
 * and background reconnection with capped backoff. State changes are logged once per transition,
 * never per request.
 */
import type { Redis } from 'ioredis';
import { closeRedisClient, redisClass } from '../../gateway/redis/client.js';
import { rateLimitLogger, rateLimitStats } from './stats.js';

const RECONNECT_STEP_MS = 100;
const RECONNECT_MAX_MS = 2000;

export interface RedisSettings {
  readonly url: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

export interface RedisConnection {
  readonly client: Redis;
  /**
   * Settles when the FIRST connection attempt succeeded or failed (bounded by the connect timeout):
   * requests that arrive while a freshly started gateway connects wait for that one attempt instead
   * of failing; once it is settled nothing ever waits for Redis again.
   */
  readonly firstAttempt: Promise<void>;
}

let shared: (RedisConnection & { readonly settings: RedisSettings }) | null = null;
const retired: Redis[] = [];

function markUp(): void {
  const previous = rateLimitStats.backendState;
  rateLimitStats.backendState = 'up';
  if (previous === 'down') {
    rateLimitStats.backendTransitions++;
    rateLimitLogger().info({ backend: 'redis' }, 'rate limit backend Redis is reachable again; shared limits apply');
  } else if (previous === 'connecting') {
    rateLimitLogger().info({ backend: 'redis' }, 'rate limit backend Redis connected');
  }
}

function markDown(reason: string): void {
  const previous = rateLimitStats.backendState;
  if (previous === 'down' || previous === 'unused') return;
  rateLimitStats.backendState = 'down';
  if (previous === 'up') rateLimitStats.backendTransitions++;
  rateLimitLogger().warn(
    { backend: 'redis', reason },
    'rate limit backend Redis is unreachable; policies apply their failureMode (open: per-process insurance limits, closed: 503 RLSE)',
  );
}

function connect(settings: RedisSettings): RedisConnection {
  const client = new (redisClass())(settings.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: settings.commandTimeoutMs,
    connectTimeout: settings.connectTimeoutMs,
    retryStrategy: (attempt: number) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS),
  });
  rateLimitStats.backendState = 'connecting';
  client.on('ready', () => {
    if (client === shared?.client) markUp();
  });
  client.on('close', () => {
    if (client === shared?.client) markDown('connection closed');
  });
  // Without a listener ioredis would throw; every reconnect attempt emits one, so only transitions are logged.
  client.on('error', (error: Error) => {
    if (client === shared?.client) markDown(error.message);
  });
  const firstAttempt = new Promise<void>((resolve) => {
    setTimeout(resolve, settings.connectTimeoutMs).unref();
    for (const event of ['ready', 'error', 'close']) client.once(event, () => resolve());
  });
  return { client, firstAttempt };
}

/** The process-wide connection for `settings`; a changed URL or command timeout (config reload) replaces it. */
export function sharedRedisConnection(settings: RedisSettings): RedisConnection {
  if (shared !== null && shared.settings.url === settings.url && shared.settings.commandTimeoutMs === settings.commandTimeoutMs) return shared;
  // Requests still running on the previous snapshot may use the old client; it is closed with the rest on shutdown.
  if (shared !== null) retired.push(shared.client);
  shared = { settings, ...connect(settings) };
  return shared;
}

export async function closeSharedRedisClients(): Promise<void> {
  const clients = [...retired, ...(shared === null ? [] : [shared.client])];
  shared = null;
  retired.length = 0;
  rateLimitStats.backendState = 'unused';
  await Promise.all(clients.map(closeRedisClient));
}
