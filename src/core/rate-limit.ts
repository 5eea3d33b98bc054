// Rate limiters: Redis-backed when REDIS_URL is set, with an in-memory insurance limiter so a Redis
// outage degrades to per-process limits instead of none; in-memory in embedded mode.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RedisClientType } from 'redis';
import { RateLimitedError } from './errors.ts';

export interface Limit {
  points: number;
  durationSec: number;
}

export function createLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, name: string, l: Limit): RateLimiterAbstract {
  const opts = { keyPrefix: `${prefix}:rl:${name}`, points: l.points, duration: l.durationSec };
  if (!redis) return new RateLimiterMemory(opts);
  return new RateLimiterRedis({ ...opts, storeClient: redis, useRedisPackage: true, insuranceLimiter: new RateLimiterMemory(opts) });
}

/** Consumes one point for `key`; over the limit → RateLimitedError (429 with Retry-After). */
export async function consumeOrThrow(limiter: RateLimiterAbstract, key: string, message: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (err) {
    if (err instanceof RateLimiterRes) throw new RateLimitedError(message, err.msBeforeNext / 1000);
    throw err;
  }
}
