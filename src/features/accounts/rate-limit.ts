// Login throttling (see core/rate-limit.ts for the backing store). Three counters, each a fixed window:
//   perIpAccount  failures of one email from one IP (the owner mistyping stays apart from the world),
//   perAccount    failures of one email from every IP together (a password spray from many addresses),
//   perIp         attempts from one IP over every email (one address trying many accounts).
// A point is taken from all three atomically BEFORE the password is checked, so parallel guesses
// cannot all slip through between a read and a later count; a successful login gives its point back.
// The per-account counter is keyed by the email as typed (normalised), whether or not an account has
// it, so the answer never tells an unknown address from a known one.
import { RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClientType } from 'redis';
import { RateLimitedError } from '../../core/errors.ts';
import { createLimiter, type Limit, type Limiter } from '../../core/rate-limit.ts';

export interface LoginLimits {
  /** Failures of one email from one IP. */
  perIpAccount: Limit;
  /** Failures of one email from all IPs together. */
  perAccount: Limit;
  /** Attempts from one IP, all emails together. */
  perIp: Limit;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  perIpAccount: { points: 5, durationSec: 15 * 60 },
  perAccount: { points: 10, durationSec: 15 * 60 },
  perIp: { points: 50, durationSec: 60 * 60 },
};

const minutesOf = (seconds: number) => Math.max(1, Math.ceil(seconds / 60));
const plural = (n: number) => `${n} minute${n === 1 ? '' : 's'}`;

export function createLoginLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, given: Partial<LoginLimits> = {}) {
  const limits: LoginLimits = { ...DEFAULT_LOGIN_LIMITS, ...given };
  const ipAccount = createLimiter(redis, prefix, 'login-account', limits.perIpAccount);
  const account = createLimiter(redis, prefix, 'login-email', limits.perAccount);
  const ip = createLimiter(redis, prefix, 'login-ip', limits.perIp);
  const norm = (email: string) => email.trim().toLowerCase();
  const keysOf = (addr: string, email: string): [Limiter, string, 'ipAccount' | 'account' | 'ip'][] => [
    [ipAccount, `${addr}|${norm(email)}`, 'ipAccount'],
    [account, norm(email), 'account'],
    [ip, addr, 'ip'],
  ];

  /** Gives back a point taken (never below zero: a window that ended meanwhile is left alone). */
  const refund = async (limiter: Limiter, key: string) => {
    const now = await limiter.get(key);
    if (now && now.consumedPoints > 0) await limiter.penalty(key, -1);
  };

  return {
    limits,
    /**
     * Takes one attempt from every counter before the password is checked. Over any limit → a
     * RateLimitedError (429, Retry-After), and the points just taken from the other counters are
     * given back (a refused attempt checked nothing).
     */
    async attempt(addr: string, email: string): Promise<void> {
      const keys = keysOf(addr, email);
      const results = await Promise.allSettled(keys.map(([l, k]) => l.consume(k, 1)));
      const refused = results
        .map((r, i) => ({ r, which: keys[i][2] }))
        .filter((x): x is { r: PromiseRejectedResult; which: (typeof keys)[number][2] } => x.r.status === 'rejected');
      if (!refused.length) return;
      const unexpected = refused.find((x) => !(x.r.reason instanceof RateLimiterRes));
      await Promise.all(results.map((r, i) => (r.status === 'fulfilled' ? refund(keys[i][0], keys[i][1]) : null)));
      if (unexpected) throw unexpected.r.reason;
      const wait = Math.max(...refused.map((x) => (x.r.reason as RateLimiterRes).msBeforeNext / 1000));
      const minutes = plural(minutesOf(wait));
      const byAccount = refused.some((x) => x.which !== 'ip');
      throw new RateLimitedError(
        byAccount
          ? `Too many failed attempts to sign in with this email address. For your security, sign-in with it is paused: please wait ${minutes} and try again.`
          : `Too many failed attempts from your network. Please wait ${minutes} and try again.`,
        wait,
      );
    },
    /** The password was right: the attempt's points go back, and this IP's count for the email starts over. */
    async succeeded(addr: string, email: string): Promise<void> {
      const [[l0, k0], ...rest] = keysOf(addr, email);
      await Promise.all([l0.delete(k0), ...rest.map(([l, k]) => refund(l, k))]);
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;
