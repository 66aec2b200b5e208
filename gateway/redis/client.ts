/**
 * What every Redis user in meshgate (rate limits, Dapr state, Dapr pub/sub on Streams) shares about its
 * client: loading ioredis only when a config needs it, and closing a connection without waiting on a
 * server that is gone.
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type * as IORedis from 'ioredis';

/** ioredis weighs ~10 MB of memory; a proxy without a Redis-backed feature (most sidecars) never loads it. */
export function redisClass(): typeof IORedis.Redis {
  return (createRequire(import.meta.url)('ioredis') as typeof IORedis).Redis;
}

/** QUIT when the connection is up (pending replies arrive first), else a hard disconnect. */
export async function closeRedisClient(client: Redis): Promise<void> {
  try {
    if (client.status === 'ready') {
      await client.quit();
      return;
    }
  } catch {
    // A quit that cannot be sent falls through to a hard disconnect.
  }
  client.disconnect();
}
