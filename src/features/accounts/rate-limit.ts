// Login throttling (see core/rate-limit.ts for the backing store). Three counters, each a fixed window:
//   perIpAccount  failures of one email from one IP (the owner mistyping stays apart from the world),
//   perAccount    failures of one email from every IP together (a password spray from many addresses),
//   perIp         attempts from one IP over every email (one address trying many accounts).
// A point is taken from all three atomically BEFORE the password is checked, so parallel guesses
// cannot all slip through between a read and a later count; a successful login gives its point back.
// The per-account counter is keyed by the email as typed (normalised), whether or not an account has
// it, so the answer never tells an unknown address from a known one.
import type { RedisClientType } from 'redis';
import { RateLimitedError } from '../../core/errors.ts';
import { createLimiter, giveBack, takeAll, waitText, type Limit, type Limiter } from '../../core/rate-limit.ts';

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

export function createLoginLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, given: Partial<LoginLimits> = {}) {
  const limits: LoginLimits = { ...DEFAULT_LOGIN_LIMITS, ...given };
  const ipAccount = createLimiter(redis, prefix, 'login-account', limits.perIpAccount);
  const account = createLimiter(redis, prefix, 'login-email', limits.perAccount);
  const ip = createLimiter(redis, prefix, 'login-ip', limits.perIp);
  const norm = (email: string) => email.trim().toLowerCase();
  const takesOf = (addr: string, email: string): { limiter: Limiter; key: string; byIp: boolean }[] => [
    { limiter: ipAccount, key: `${addr}|${norm(email)}`, byIp: false },
    { limiter: account, key: norm(email), byIp: false },
    { limiter: ip, key: addr, byIp: true },
  ];

  return {
    limits,
    /**
     * Takes one attempt from every counter before the password is checked. Over any limit → a
     * RateLimitedError (429, Retry-After), and the points just taken from the other counters are
     * given back (a refused attempt checked nothing).
     */
    async attempt(addr: string, email: string): Promise<void> {
      const over = await takeAll(takesOf(addr, email));
      if (!over) return;
      const wait = waitText(over.retryAfterSec);
      throw new RateLimitedError(
        over.refused.some((t) => !t.byIp)
          ? `Too many failed attempts to sign in with this email address. For your security, sign-in with it is paused: please wait ${wait} and try again.`
          : `Too many failed attempts from your network. Please wait ${wait} and try again.`,
        over.retryAfterSec,
      );
    },
    /** The password was right: the attempt's points go back, and this IP's count for the email starts over. */
    async succeeded(addr: string, email: string): Promise<void> {
      const [first, ...rest] = takesOf(addr, email);
      await Promise.all([first.limiter.delete(first.key), ...rest.map((t) => giveBack(t.limiter, t.key))]);
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;

/** "Forgot your password?" requests: from one IP (any emails), and for one email (any IPs). */
export interface ResetLimits {
  perIp: Limit;
  perEmail: Limit;
}

export const DEFAULT_RESET_LIMITS: ResetLimits = {
  perIp: { points: 10, durationSec: 60 * 60 },
  perEmail: { points: 3, durationSec: 60 * 60 },
};

/**
 * Reset requests take a point from both counters before anything is looked up or sent; the email
 * counter is keyed by the address as typed (normalised), known or not, so a 429 tells nothing about
 * whether an account has it.
 */
export function createResetLimiter(redis: RedisClientType<any, any, any> | null, prefix: string, given: Partial<ResetLimits> = {}) {
  const limits: ResetLimits = { ...DEFAULT_RESET_LIMITS, ...given };
  const ip = createLimiter(redis, prefix, 'reset-ip', limits.perIp);
  const email = createLimiter(redis, prefix, 'reset-email', limits.perEmail);
  return {
    limits,
    /** Over a limit → RateLimitedError (429, Retry-After). */
    async attempt(addr: string, rawEmail: string): Promise<void> {
      const over = await takeAll([
        { limiter: ip, key: addr, byIp: true },
        { limiter: email, key: rawEmail.trim().toLowerCase().slice(0, 254), byIp: false },
      ]);
      if (!over) return;
      const wait = waitText(over.retryAfterSec);
      throw new RateLimitedError(
        over.refused.some((t) => !t.byIp)
          ? `Too many reset links were asked for this email address. Please wait ${wait} and try again, and check your spam folder for the links already sent.`
          : `Too many password reset requests from your network. Please wait ${wait} and try again.`,
        over.retryAfterSec,
      );
    },
  };
}

export type ResetLimiter = ReturnType<typeof createResetLimiter>;
