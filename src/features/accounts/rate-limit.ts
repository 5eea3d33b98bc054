// Login throttling: failures per (IP, email) and per IP (see core/rate-limit.ts for the backing store).
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClientType } from 'redis';
import { RateLimitedError } from '../../core/errors.ts';
import { createLimiter, type Limit } from '../../core/rate-limit.ts';

export interface LoginLimits {
  perAccount: Limit;
  perIp: Limit;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perAccount: { points: 5, durationSec: 15 * 60 },
  perIp: { points: 50, durationSec: 60 * 60 },
};

export function createLoginLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
  const account = createLimiter(redis, prefix, 'login-account', limits.perAccount);
  const ip = createLimiter(redis, prefix, 'login-ip', limits.perIp);
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
