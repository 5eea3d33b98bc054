// Rate limiters: Redis-backed when REDIS_URL is set, in-memory in embedded mode. If Redis errors or
// does not answer within a deadline, the in-memory limiter decides instead, so an outage degrades to
// per-process limits rather than to no limits or to hanging requests.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClientType } from 'redis';
import { RateLimitedError } from './errors.ts';

export interface Limit {
  points: number;
  durationSec: number;
}

/** The operations Paylink uses; `consume` and `penalty` reject with a RateLimiterRes when over the limit. */
export interface Limiter {
  consume(key: string, points?: number): Promise<RateLimiterRes>;
  penalty(key: string, points?: number): Promise<RateLimiterRes>;
  get(key: string): Promise<RateLimiterRes | null>;
  delete(key: string): Promise<boolean>;
}

export function createLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, name: string, l: Limit, deadlineMs = 500): Limiter {
  const opts = { keyPrefix: `${prefix}:rl:${name}`, points: l.points, duration: l.durationSec };
  const memory = new RateLimiterMemory(opts);
  if (!redis) return memory;
  const store = new RateLimiterRedis({ ...opts, storeClient: redis, useRedisPackage: true, insuranceLimiter: memory });
  const withDeadline = <T>(viaRedis: () => Promise<T>, viaMemory: () => Promise<T>): Promise<T> => {
    const attempt = viaRedis();
    attempt.catch(() => {}); // a late answer after the deadline is ignored
    let timer: NodeJS.Timeout | undefined;
    const fallback = new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => viaMemory().then(resolve, reject), deadlineMs);
    });
    return Promise.race([attempt, fallback]).finally(() => clearTimeout(timer));
  };
  return {
    consume: (key, points = 1) => withDeadline(() => store.consume(key, points), () => memory.consume(key, points)),
    penalty: (key, points = 1) => withDeadline(() => store.penalty(key, points), () => memory.penalty(key, points)),
    get: (key) => withDeadline(() => store.get(key), () => memory.get(key)),
    delete: (key) => withDeadline(() => store.delete(key), () => memory.delete(key)),
  };
}

/** Consumes one point for `key`; over the limit → RateLimitedError (429 with Retry-After). */
export async function consumeOrThrow(limiter: Limiter, key: string, message: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (err) {
    if (err instanceof RateLimiterRes) throw new RateLimitedError(message, err.msBeforeNext / 1000);
    throw err;
  }
}
