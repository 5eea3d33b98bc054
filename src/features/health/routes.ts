import express from 'express';
import type { Runtime } from '../../runtime.ts';

/** Liveness never touches dependencies; readiness checks the database and Redis. */
export function healthRoutes(rt: Runtime): express.Router {
  const router = express.Router();
  router.get('/health', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });
  router.get('/health/ready', async (_req, res) => {
    const withTimeout = <T>(p: Promise<T>, ms = 2_000) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
    const check = async (fn: () => Promise<unknown>) => {
      try {
        await withTimeout(fn());
        return { status: 'ok' as const };
      } catch (err) {
        return { status: 'down' as const, error: err instanceof Error ? err.message : String(err) };
      }
    };
    const checks: Record<string, { status: 'ok' | 'down'; error?: string }> = {
      database: await check(() => rt.db.raw('select 1')),
    };
    if (rt.redis) {
      const redis = rt.redis;
      checks.redis = await check(async () => {
        if (!redis.isReady) throw new Error('not connected');
        await redis.ping();
      });
    }
    const ready = Object.values(checks).every((c) => c.status === 'ok');
    res.status(ready ? 200 : 503).set('Cache-Control', 'no-store').json({ status: ready ? 'ready' : 'unavailable', checks });
  });
  return router;
}
