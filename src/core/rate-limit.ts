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
  const wait = await consumeEach([[limiter, key]]);
  if (wait !== null) throw new RateLimitedError(message, wait / 1000);
}

/**
 * Takes a point from each counter in turn, stopping at the first that is over its limit: how many
 * milliseconds until that one has room again, or null when every counter had room. Points taken
 * before a refusal stay taken (each counter counts attempts).
 */
export async function consumeEach(takes: readonly (readonly [Limiter, string])[]): Promise<number | null> {
  for (const [limiter, key] of takes) {
    try {
      await limiter.consume(key);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      return err.msBeforeNext;
    }
  }
  return null;
}

/** Gives back points taken from `key` (never below zero: a window that ended meanwhile is left alone). */
export async function giveBack(limiter: Limiter, key: string, points = 1): Promise<void> {
  const now = await limiter.get(key);
  if (now && now.consumedPoints > 0) await limiter.penalty(key, -Math.min(points, now.consumedPoints));
}

export interface Take {
  limiter: Limiter;
  key: string;
}

/**
 * Takes a point from every counter at once, before the work they guard (each take is atomic in its
 * store, so parallel callers cannot all pass between a read and a later count). When any is over its
 * limit, the points just taken from the others are given back and the answer names the refusing
 * counters and the longest wait; null when every counter had room.
 */
export async function takeAll<T extends Take>(takes: readonly T[]): Promise<{ refused: T[]; retryAfterSec: number } | null> {
  const results = await Promise.allSettled(takes.map((t) => t.limiter.consume(t.key, 1)));
  const refused = takes.filter((_, i) => results[i].status === 'rejected');
  if (!refused.length) return null;
  await Promise.all(takes.map((t, i) => (results[i].status === 'fulfilled' ? giveBack(t.limiter, t.key) : null)));
  const reasons = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  const unexpected = reasons.find((r) => !(r instanceof RateLimiterRes));
  if (unexpected) throw unexpected;
  return { refused, retryAfterSec: Math.max(...reasons.map((r) => (r as RateLimiterRes).msBeforeNext / 1000)) };
}

/** "1 minute", "7 minutes": a wait as a person reads it (a minute at least). */
export function waitText(seconds: number): string {
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/** "an hour", "per 15 minutes", "a day": a limit's window as a person reads it. */
export function windowText(durationSec: number): string {
  if (durationSec === 3_600) return 'an hour';
  if (durationSec === 86_400) return 'a day';
  if (durationSec % 3_600 === 0) return `per ${durationSec / 3_600} hours`;
  if (durationSec % 60 === 0) return durationSec === 60 ? 'a minute' : `per ${durationSec / 60} minutes`;
  return `per ${durationSec} seconds`;
}
