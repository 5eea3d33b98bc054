/**
 * SIGKILL of a job worker in the middle of 1,000 payments' events (checkout.started,
 * payment.authorized, payment.succeeded: 3,000 events). After a new worker starts, every event's
 * consumers ran to completion exactly once in effect: the drill plugin's effect (insertOnce by event
 * id) exists once per event, core's receipt once per payment, and no job is left dead or stuck —
 * even though some handlers ran twice (the killed worker's leased jobs were retried).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import supertest from 'supertest';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { buildApp } from '../../src/app.ts';
import { sleep, startMariadb, tempDir, until, SESSION_SECRET, type Drill } from './support.ts';

const PAYMENTS = 1_000;
const EVENT_TYPES = ['checkout.started', 'payment.authorized', 'payment.succeeded'];
const CARD = '4242424242424242';
const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.ts');
const UNLIMITED = { points: 1_000_000, durationSec: 1 };

export const workerKillDrill: Drill = {
  name: 'worker SIGKILL mid-events',
  async run(ctx) {
    const mariadb = await startMariadb(3392);
    ctx.defer(() => mariadb.stop());
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: mariadb.url,
      SESSION_SECRET,
      PAYLINK_DATA_DIR: tempDir('worker', ctx),
      LOG_LEVEL: 'silent',
      PAYLINK_PLUGINS: `./${path.relative(process.cwd(), path.join(path.dirname(WORKER), 'effects-plugin/index.ts'))}`,
    });
    // The web side: takes the payments and writes their events; it runs no jobs.
    const rt = await createRuntime(config, { checkoutLimits: { perIp: UNLIMITED, perRequest: UNLIMITED, declines: UNLIMITED } });
    ctx.defer(() => rt.close());
    const http = supertest(buildApp(rt));
    const { merchant } = await rt.services.merchants.signUp({ name: 'Drill Shop', handle: 'kill-drill', email: 'owner@shop.test', password: 'correct horse battery' });
    await rt.services.links.create(merchant, { type: 'amount', name: 'Class', amount: 1500, path: 'class' });
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < PAYMENTS) {
          const n = next++;
          const start = await http.post('/kill-drill/class').type('form').send({ name: `Customer ${n}`, email: `c${n}@example.test` });
          if (start.status !== 303) throw new Error(`checkout ${n} answered ${start.status}`);
          const pay = await http.post(new URL(start.headers.location).pathname).type('form').send({ card_number: CARD });
          if (pay.status !== 303) throw new Error(`payment ${n} answered ${pay.status}`);
        }
      }),
    );
    const count = async (q: ReturnType<typeof rt.db>) => Number(((await q.count({ n: '*' }).first()) as { n: number | string }).n);
    const events = await count(rt.db('events').whereIn('type', EVENT_TYPES));
    const paid = await count(rt.db('payments').where('status', 'paid'));
    ctx.log(`${paid} payments paid, ${events} payment events in the outbox; starting a worker`);

    const effects = () => count(rt.db('plugin_records').where({ plugin_id: 'drill-effects', collection: 'effects' }));
    const runs = () => count(rt.db('plugin_records').where({ plugin_id: 'drill-effects', collection: 'runs' }));
    const workers: ChildProcess[] = [];
    const startWorker = async () => {
      const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, DRILL_CONFIG: JSON.stringify(config), DRILL_LEASE_MS: '5000' }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      workers.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
      });
      return child;
    };
    ctx.defer(() => {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    });
    const first = await startWorker();
    await until('a third of the effects', async () => (await effects()) >= events / 3, 300_000, 20);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const atKill = { effects: await effects(), runs: await runs(), leased: await count(rt.db('jobs').where('state', 'running')) };
    ctx.log(`SIGKILL worker (pid ${first.pid}) at ${atKill.effects}/${events} effects, ${atKill.leased} jobs left leased`);
    await sleep(500);
    await startWorker();
    const open = () => count(rt.db('jobs').whereIn('state', ['queued', 'running']).whereNot('kind', 'checkout.settle').where('run_at', '<=', new Date()));
    const ms = await until('every effect and no due job left', async () => (await effects()) === events && (await open()) === 0, 300_000, 250).catch(() => -1);
    ctx.log(ms >= 0 ? `the second worker finished the rest in ${(ms / 1000).toFixed(1)} s` : 'the second worker did not finish within 5 minutes');

    const totalRuns = await runs();
    const effectRows = (await rt.db('plugin_records').where({ plugin_id: 'drill-effects', collection: 'effects' }).select('unique_key')) as { unique_key: string }[];
    const effectKeys = new Set(effectRows.map((r) => r.unique_key));
    const eventIds = new Set(((await rt.db('events').whereIn('type', EVENT_TYPES).select('public_id')) as { public_id: string }[]).map((r) => r.public_id));
    const missing = [...eventIds].filter((id) => !effectKeys.has(id)).length;
    const receipts = (await rt.db('deliveries').where('kind', 'receipt').select('payment_id').count({ n: '*' }).groupBy('payment_id')) as { n: number | string }[];
    const dead = await count(rt.db('jobs').where('state', 'dead'));
    return [
      {
        drill: this.name,
        check: 'after restart every event\'s consumer ran exactly once in effect',
        figure: `${events} events: ${effectRows.length} effects, ${missing} missing; handler runs ${totalRuns} (${totalRuns - events} re-run after the kill, held off by the event-id key)`,
        pass: ms >= 0 && effectRows.length === events && missing === 0,
      },
      {
        drill: this.name,
        check: 'core consumers too: one receipt per payment, no dead job',
        figure: `${receipts.length} payments with a receipt, ${receipts.filter((r) => Number(r.n) > 1).length} with two or more; dead jobs ${dead}`,
        pass: receipts.length === paid && receipts.every((r) => Number(r.n) === 1) && dead === 0,
      },
    ];
  },
};
