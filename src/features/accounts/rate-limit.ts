// Login throttling: failures per (IP, email) and per IP. Redis-backed when REDIS_URL is set, with an
// in-memory insurance limiter so a Redis outage degrades to per-process limits instead of none.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RedisClientType } from 'redis';
import { RateLimitedError } from '../../core/errors.ts';

export interface LoginLimits {
  perAccount: { points: number; durationSec: number };
  perIp: { points: number; durationSec: number };
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perAccount: { points: 5, durationSec: 15 * 60 },
  perIp: { points: 50, durationSec: 60 * 60 },
};

function limiter(redis: RedisClientType<any, any, any> | null, prefix: string, name: string, l: { points: number; durationSec: number }): RateLimiterAbstract {
  const opts = { keyPrefix: `${prefix}:rl:${name}`, points: l.points, duration: l.durationSec };
  if (!redis) return new RateLimiterMemory(opts);
  return new RateLimiterRedis({ ...opts, storeClient: redis, useRedisPackage: true, insuranceLimiter: new RateLimiterMemory(opts) });
}

export function createLoginLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
  const account = limiter(redis, prefix, 'login-account', limits.perAccount);
  const ip = limiter(redis, prefix, 'login-ip', limits.perIp);
  const accountKey = (addr: string, email: string) => `${addr}|${email.trim().toLowerCase()}`;

  const blocked = (res: RateLimiterRes | null, points: number) => (res && res.consumedPoints >= points ? res.msBeforeNext / 1000 : 0);

  return {
    /** Throws 429 when this IP or (IP, email) has failed too often. */
    async check(addr: string, email: string): Promise<void> {
      const [a, i] = await Promise.all([account.get(accountKey(addr, email)), ip.get(addr)]);
      const wait = Math.max(blocked(a, limits.perAccount.points), blocked(i, limits.perIp.points));
      if (wait > 0) {
        const minutes = Math.max(1, Math.ceil(wait / 60));
        throw new RateLimitedError(`Too many failed attempts. Please wait ${minutes} minute${minutes === 1 ? '' : 's'} and try again.`, wait);
      }
    },
    async failed(addr: string, email: string): Promise<void> {
      await Promise.all([account.penalty(accountKey(addr, email), 1), ip.penalty(addr, 1)]);
    },
    async succeeded(addr: string, email: string): Promise<void> {
      await account.delete(accountKey(addr, email));
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;
