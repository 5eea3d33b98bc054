/**
 * The database paused (SIGSTOP of a private mariadbd) for 30 s during 200 payments. Every answer
 * while it is paused is a fast 503 (≤ 2 s); customers retry a second later, as people do; nothing is
 * half-written, and every authorization ends captured or voided once the database is back.
 */
import supertest from 'supertest';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { SETTLE_RECOVERY_MS } from '../../src/features/checkout/service.ts';
import { merchantOn, ms, quantile, sleep, startMariadb, startPaylink, statusCounts, tempDir, until, SESSION_SECRET, type Drill } from './support.ts';

const PAYMENTS = 200;
const CONCURRENCY = 10;
const PAUSE_MS = 30_000;
const FAST_MS = 2_000;
const CARD = '4242424242424242';

interface Answer {
  step: 'start' | 'pay';
  status: number;
  ms: number;
  paused: boolean;
}

export const databaseDrill: Drill = {
  name: 'database paused 30 s',
  async run(ctx) {
    const mariadb = await startMariadb(3391);
    ctx.defer(() => mariadb.stop());
    // Customers come from many addresses (through a proxy on loopback), as on a real pay page.
    const server = await startPaylink({ DATABASE_URL: mariadb.url, SESSION_SECRET, TRUST_PROXY: 'loopback' }, ctx);
    const shop = await merchantOn(server.url, 'db-drill');
    const http = supertest(server.url);
    let paused = false;
    const answers: Answer[] = [];
    const ask = async (step: Answer['step'], req: supertest.Test) => {
      const at = paused;
      const start = Date.now();
      let res: supertest.Response | null = null;
      try {
        res = await req.timeout(60_000).ok(() => true);
      } catch {
        res = null; // no answer within a minute
      }
      answers.push({ step, status: res?.status ?? 0, ms: Date.now() - start, paused: at || paused });
      return res;
    };

    /** One customer: the pay page form, then the card; a 503 is retried a second later. */
    const customer = async (n: number) => {
      const ip = `10.0.${n >> 8}.${n & 255}`;
      let card = '';
      for (let tries = 0; !card; tries++) {
        if (tries > 200) throw new Error(`customer ${n} could not start a checkout`);
        const res = await ask('start', http.post(`/${shop.handle}/db-drill`).set('X-Forwarded-For', ip).type('form').send({ name: `Customer ${n}`, email: `c${n}@example.test` }));
        if (res?.status === 303) card = new URL(res.headers.location, server.url).pathname;
        else if (res?.status === 503 || !res) await sleep(1_000);
        else throw new Error(`customer ${n}: the pay page answered ${res.status}: ${res.text.slice(0, 200)}`);
      }
      for (let tries = 0; ; tries++) {
        if (tries > 200) throw new Error(`customer ${n} could not pay`);
        const res = await ask('pay', http.post(card).set('X-Forwarded-For', ip).type('form').send({ card_number: CARD }));
        const to = res?.status === 303 ? new URL(res.headers.location, server.url).pathname : '';
        if (to && to !== card) return; // the receipt
        await sleep(1_000);
      }
    };

    let next = 0;
    let done = 0;
    const lanes = Array.from({ length: CONCURRENCY }, async () => {
      while (next < PAYMENTS) {
        const n = next++;
        await customer(n);
        done++;
      }
    });
    await until('40 payments before the pause', () => done >= 40, 120_000, 20);
    ctx.log(`${done} payments done; SIGSTOP mariadbd (pid ${mariadb.pid}) for ${PAUSE_MS / 1000} s`);
    paused = true;
    mariadb.pause();
    const doneBefore = done;
    await sleep(PAUSE_MS);
    mariadb.resume();
    paused = false;
    ctx.log(`SIGCONT mariadbd; ${done - doneBefore} payments finished during the pause`);
    await Promise.all(lanes);
    ctx.log(`all ${PAYMENTS} customers paid`);

    const db = mariadb.admin();
    try {
      const authorized = async () => Number((await db('payments').where('status', 'authorized').count({ n: '*' }))[0].n);
      // A request cut off between the claim and recording the capture leaves the payment authorized
      // with its slot claimed; the `checkout.settle` job queued in the claim's transaction finishes it
      // 5 minutes later. The drill stops the server and runs the due jobs on a clock moved 5 minutes on.
      await sleep(2_000);
      const leftBehind = await authorized();
      await server.stop('SIGTERM');
      const later = new ManualClock(Date.now() + SETTLE_RECOVERY_MS + 1_000);
      const rt = await createRuntime(loadConfig({ NODE_ENV: 'production', DATABASE_URL: mariadb.url, SESSION_SECRET, PAYLINK_DATA_DIR: tempDir('recovery', ctx), LOG_LEVEL: 'silent' }), { clock: later, migrate: false });
      const ran = await rt.jobs.drain().finally(() => rt.close());
      const stuck = await authorized();
      ctx.log(`${leftBehind} payment(s) left authorized by cut-off requests; ${ran} due job(s) ran 5 minutes on; ${stuck} still authorized`);
      const byStatus = (await db('payments').select('status').count({ n: '*' }).groupBy('status')) as { status: string; n: number }[];
      const paid = Number(byStatus.find((s) => s.status === 'paid')?.n ?? 0);
      const orphans = Number((await db('payments').leftJoin('checkout_sessions', 'checkout_sessions.id', 'payments.checkout_session_id').whereNull('checkout_sessions.id').count({ n: '*' }))[0].n);
      const paidCount = Number((await db('links').sum({ n: 'paid_count' }))[0].n ?? 0);
      const succeeded = Number((await db('events').where('type', 'payment.succeeded').count({ n: '*' }))[0].n);
      const outage = answers.filter((a) => a.paused);
      const unavailable = answers.filter((a) => a.status === 503);
      const slowest503 = Math.max(0, ...unavailable.map((a) => a.ms));
      const bad = answers.filter((a) => a.status === 0 || (a.status >= 500 && a.status !== 503));
      return [
        {
          drill: this.name,
          check: `answers while paused are fast 503s (≤ ${FAST_MS / 1000} s)`,
          figure: `${statusCounts(outage.map((a) => a.status))}; 503 p50 ${ms(quantile(unavailable.map((a) => a.ms), 0.5))}, max ${ms(slowest503)}; other 5xx or no answer: ${bad.length}`,
          pass: unavailable.length > 0 && slowest503 <= FAST_MS && bad.length === 0,
        },
        {
          drill: this.name,
          check: 'no half-written payment',
          figure: `payments ${byStatus.map((s) => `${s.status} ${s.n}`).join(', ')}; without a checkout session ${orphans}; links' paid_count ${paidCount}; payment.succeeded events ${succeeded}`,
          pass: paid === PAYMENTS && orphans === 0 && paidCount === paid && succeeded === paid,
        },
        {
          drill: this.name,
          check: 'every authorization captured or voided afterwards',
          figure: `${leftBehind} left authorized when the last customer was done; ${stuck} after the recovery job (5 min later, moved clock)`,
          pass: stuck === 0,
        },
      ];
    } finally {
      await db.destroy();
    }
  },
};
