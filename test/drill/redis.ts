/**
 * Redis gone for 60 s (SIGSTOP: connections stay open, nothing answers) under pay-page and dashboard
 * traffic. Pay pages stay 2xx, checkout goes on (its rate limits fall back to memory), merchant pages
 * answer 503 and never 500, and everything recovers by itself after SIGCONT.
 */
import supertest from 'supertest';
import { merchantOn, ms, quantile, sleep, startPaylink, startRedis, statusCounts, tempDir, type Drill } from './support.ts';

const OUTAGE_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

type Kind = 'pay' | 'dashboard' | 'checkout' | 'api';
interface Sample {
  kind: Kind;
  phase: 'before' | 'outage' | 'after';
  status: number;
  ms: number;
  at: number;
}

export const redisDrill: Drill = {
  name: 'Redis gone 60 s',
  async run(ctx) {
    const redis = await startRedis(6391);
    ctx.defer(() => redis.stop());
    const dir = tempDir('redis', ctx);
    const server = await startPaylink({ DATABASE_URL: `${dir}/paylink.db`, REDIS_URL: redis.url, SESSION_SECRET: 'drill-session-secret-that-is-long-enough-0123456789' }, ctx);
    const shop = await merchantOn(server.url, 'redis-drill');
    let phase: Sample['phase'] = 'before';
    let running = true;
    const samples: Sample[] = [];
    const hit = async (kind: Kind, req: () => supertest.Test) => {
      const start = Date.now();
      const at = phase;
      let status = 0;
      try {
        status = (await req().timeout(REQUEST_TIMEOUT_MS).ok(() => true)).status;
      } catch {
        status = 0; // no answer within the timeout
      }
      samples.push({ kind, phase: at, status, ms: Date.now() - start, at: Date.now() });
    };
    const loop = async (kind: Kind, pauseMs: number, req: () => supertest.Test) => {
      while (running) {
        await hit(kind, req);
        await sleep(pauseMs);
      }
    };
    const http = supertest(server.url);
    const loops = [
      loop('pay', 5, () => http.get(`/${shop.handle}/redis-drill`)),
      loop('pay', 5, () => http.get(`/${shop.handle}/redis-drill`)),
      loop('pay', 5, () => http.get(`/${shop.handle}`)),
      loop('dashboard', 20, () => shop.agent.get('/app')),
      loop('dashboard', 20, () => shop.agent.get('/app/links')),
      loop('checkout', 250, () => http.post(`/${shop.handle}/redis-drill`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' })),
      loop('api', 100, () => http.get('/api/v1/me').set('Authorization', `Bearer ${shop.apiKey}`)),
    ];
    await sleep(3_000);
    ctx.log(`SIGSTOP redis-server (pid ${redis.pid}) for ${OUTAGE_MS / 1000} s`);
    phase = 'outage';
    redis.pause();
    await sleep(OUTAGE_MS);
    redis.resume();
    phase = 'after';
    const resumedAt = Date.now();
    ctx.log('SIGCONT redis-server');
    // Recovered: the dashboard answers 200 again (sessions read from Redis).
    let recoveredAt = 0;
    while (Date.now() - resumedAt < 30_000) {
      const ok = samples.some((s) => s.kind === 'dashboard' && s.phase === 'after' && s.status === 200 && s.at > resumedAt);
      if (ok) {
        recoveredAt = samples.find((s) => s.kind === 'dashboard' && s.phase === 'after' && s.status === 200 && s.at > resumedAt)!.at;
        break;
      }
      await sleep(100);
    }
    await sleep(3_000);
    running = false;
    await Promise.all(loops);

    const of = (kind: Kind, p: Sample['phase']) => samples.filter((s) => s.kind === kind && s.phase === p);
    const pay = of('pay', 'outage');
    const dash = of('dashboard', 'outage');
    const checkouts = of('checkout', 'outage');
    const api = of('api', 'outage');
    const after = samples.filter((s) => s.phase === 'after' && s.at > recoveredAt + 1_000);
    const payOk = pay.every((s) => s.status >= 200 && s.status < 300);
    const dashOk = dash.every((s) => s.status === 503 || s.status === 200) && dash.some((s) => s.status === 503);
    return [
      { drill: this.name, check: 'pay pages stay 2xx during the outage', figure: `${statusCounts(pay.map((s) => s.status))}, p99 ${ms(quantile(pay.map((s) => s.ms), 0.99))}, max ${ms(Math.max(...pay.map((s) => s.ms)))}`, pass: pay.length > 0 && payOk },
      { drill: this.name, check: 'merchant pages answer 503, never 500', figure: `${statusCounts(dash.map((s) => s.status))}, median ${ms(quantile(dash.map((s) => s.ms), 0.5))}, max ${ms(Math.max(...dash.map((s) => s.ms)))}`, pass: dashOk },
      {
        drill: this.name,
        // 4 checkouts a second from one address: the per-IP limit (30 per 10 minutes) must still hold,
        // counted in memory, so the answers are 303 up to the limit and 429 after it — never a 5xx.
        check: 'rate limits fall back to memory (checkout 303 then 429 at the per-IP limit; API 200)',
        figure: `checkout ${statusCounts(checkouts.map((s) => s.status))}; API ${statusCounts(api.map((s) => s.status))}`,
        pass:
          checkouts.some((s) => s.status === 303) &&
          checkouts.every((s) => s.status === 303 || s.status === 429) &&
          checkouts.filter((s) => s.status === 303).length <= 30 &&
          api.length > 0 &&
          api.every((s) => s.status === 200),
      },
      {
        drill: this.name,
        check: 'recovers by itself',
        figure: recoveredAt ? `dashboard 200 again ${ms(recoveredAt - resumedAt)} after SIGCONT; afterwards ${statusCounts(after.map((s) => s.status))}` : 'dashboard never answered 200 again within 30 s',
        pass: recoveredAt > 0 && after.length > 0 && after.every((s) => s.status > 0 && s.status < 500),
      },
    ];
  },
};
