import express from 'express';
import type { AppDeps } from '../../web/deps.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'db' | 'log' | 'redis'>;

const CHECK_TIMEOUT_MS = 2_000;

type Check = { status: 'ok' } | { status: 'down'; error: string };

/**
 * Liveness (/health) never touches dependencies; readiness (/health/ready) checks the database and
 * Redis, each within 2 s, and answers 503 while one is down. Neither sets a cookie. Failures are
 * logged in full; the public body names only what failed (no hosts or driver messages).
 */
export function healthRoutes(rt: Deps): express.Router {
  const router = express.Router();
  const log = rt.log.child('health');

  router.get('/health', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });

  router.get('/health/ready', async (_req, res) => {
    const check = async (name: string, fn: () => Promise<unknown>): Promise<Check> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`), { code: 'TIMEOUT' })), CHECK_TIMEOUT_MS);
      });
      try {
        await Promise.race([fn(), timeout]);
        return { status: 'ok' };
      } catch (err) {
        log.warn(`${name} is not ready`, { error: err });
        return { status: 'down', error: (err as { code?: string }).code === 'TIMEOUT' ? 'timeout' : 'unavailable' };
      } finally {
        clearTimeout(timer);
      }
    };
    const redis = rt.redis;
    const [database, redisCheck] = await Promise.all([
      check('database', () => rt.db.raw('select 1')),
      redis
        ? check('redis', async () => {
            if (!redis.isReady) throw Object.assign(new Error('not connected'), { code: 'NOT_CONNECTED' });
            await redis.ping();
          })
        : Promise.resolve(null),
    ]);
    const checks: Record<string, Check> = { database };
    if (redisCheck) checks.redis = redisCheck;
    const ready = Object.values(checks).every((c) => c.status === 'ok');
    res.status(ready ? 200 : 503).set('Cache-Control', 'no-store');
    if (!ready) res.set('Retry-After', '5');
    res.json({ status: ready ? 'ready' : 'unavailable', checks });
  });
  return router;
}
