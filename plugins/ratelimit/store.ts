/**
 * The counter backends behind one small interface: a process-local store and a Redis store shared by
 * every gateway process. Both are rate-limiter-flexible fixed-window limiters; this file only maps
 * their promise protocol (resolve = admitted, reject with RateLimiterRes = limited, reject with an
 * Error = backend failure) onto a plain outcome.
 */
import { createRequire } from 'node:module';
import type * as Rlf from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RedisConnection } from './redis-client.js';
import { rateLimitStats } from './stats.js';

// The package index loads every backend it supports (Mongo, SQL, Etcd, …); only these two are needed,
// and the Redis one only by proxies with Redis-backed policies.
const require = createRequire(import.meta.url);
const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Rlf.RateLimiterMemory;
const RateLimiterRes = require('rate-limiter-flexible/lib/RateLimiterRes.js') as typeof Rlf.RateLimiterRes;
type RateLimiterRes = Rlf.RateLimiterRes;

function redisLimiterClass(): typeof Rlf.RateLimiterRedis {
  return require('rate-limiter-flexible/lib/RateLimiterRedis.js') as typeof Rlf.RateLimiterRedis;
}

export interface WindowLimit {
  /** Units admitted per window and key. */
  readonly requests: number;
  readonly windowSeconds: number;
}

export interface ConsumeOutcome {
  readonly allowed: boolean;
  /** Units left in the current window (0 when limited). */
  readonly remaining: number;
  /** Milliseconds until the window resets. */
  readonly resetMs: number;
}

export interface RateLimitStore {
  /**
   * Counts `cost` units against `key`. Never rejects because the request is limited; rejects with
   * `BackendUnavailableError` only when the backend cannot decide and no insurance limiter exists.
   */
  consume(key: string, cost: number): Promise<ConsumeOutcome>;
}

export class BackendUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`rate limit backend unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BackendUnavailableError';
  }
}

/** Counts every decision the insurance limiter takes, i.e. every Redis failure it covered for. */
class InsuranceLimiter extends RateLimiterMemory {
  override consume(key: string | number, pointsToConsume?: number, options?: Record<string, unknown>): Promise<RateLimiterRes> {
    rateLimitStats.backendErrors++;
    rateLimitStats.insuranceDecisions++;
    return super.consume(key, pointsToConsume, options);
  }
}

class LimiterStore implements RateLimitStore {
  constructor(
    private readonly limiter: RateLimiterAbstract,
    private readonly countsBackendErrors: boolean,
  ) {}

  async consume(key: string, cost: number): Promise<ConsumeOutcome> {
    try {
      const admitted = await this.limiter.consume(key, cost);
      return { allowed: true, remaining: admitted.remainingPoints, resetMs: admitted.msBeforeNext };
    } catch (rejection: unknown) {
      if (rejection instanceof RateLimiterRes) return { allowed: false, remaining: 0, resetMs: rejection.msBeforeNext };
      if (this.countsBackendErrors) rateLimitStats.backendErrors++;
      throw new BackendUnavailableError(rejection);
    }
  }
}

export function createMemoryStore(limit: WindowLimit): RateLimitStore {
  return new LimiterStore(new RateLimiterMemory({ points: limit.requests, duration: limit.windowSeconds }), false);
}

export interface RedisStoreOptions {
  /** The shared connection; asked for on first use so that compiling (e.g. `meshgate validate`) opens no socket. */
  readonly connection: () => RedisConnection;
  /** Namespaces the keys of one limit: processes that compile the same limit share its counters. */
  readonly keyPrefix: string;
  /** Per-process limit used while Redis fails (failureMode open); null = fail (failureMode closed). */
  readonly insuranceRequests: number | null;
}

class RedisStore implements RateLimitStore {
  private store: Promise<LimiterStore> | null = null;

  constructor(
    private readonly limit: WindowLimit,
    private readonly options: RedisStoreOptions,
  ) {}

  async consume(key: string, cost: number): Promise<ConsumeOutcome> {
    this.store ??= this.connect();
    return (await this.store).consume(key, cost);
  }

  private async connect(): Promise<LimiterStore> {
    const { limit, options } = this;
    const connection = options.connection();
    await connection.firstAttempt;
    const insurance =
      options.insuranceRequests === null
        ? undefined
        : new InsuranceLimiter({ points: options.insuranceRequests, duration: limit.windowSeconds });
    const limiter = new (redisLimiterClass())({
      storeClient: connection.client,
      keyPrefix: options.keyPrefix,
      points: limit.requests,
      duration: limit.windowSeconds,
      // Fail at once while disconnected instead of writing into a dead socket.
      rejectIfRedisNotReady: true,
      insuranceLimiter: insurance,
    });
    return new LimiterStore(limiter, true);
  }
}

export function createRedisStore(limit: WindowLimit, options: RedisStoreOptions): RateLimitStore {
  return new RedisStore(limit, options);
}
