/**
 * Reminders with several app processes on one database: the test's runtime and a second Node process
 * (test/support/reminders-worker.ts) sweep and pump at the same time, and every reminder is queued —
 * and every message handed to its channel — exactly once. A deliberately naive sweep (read due plans,
 * then write, no lock) run the same way does double-send, which shows these checks can catch a race.
 * Plans live in the database and survive a restart.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { apiMerchant, type ApiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';
import type { Runtime } from '../src/runtime.ts';
import { validateCustomer } from '../src/features/customers/service.ts';
import { customerCreateSchema } from '../src/features/customers/schemas.ts';
import { naiveSweep, type WorkerReply, type WorkerRequest } from './support/reminders-worker.ts';

const DAY = 86_400_000;
const CUSTOMERS = 200;
const CHANNELS = ['email', 'sms'] as const;
const HERE = path.dirname(fileURLToPath(import.meta.url));

type Db = Runtime['db'];

/** Every (plan, reminder number, channel) that was queued more than once. */
async function duplicates(db: Db, linkKey: number): Promise<{ plan_id: number; seq: number; channel: string; n: number }[]> {
  const rows = (await db('deliveries')
    .where({ link_id: linkKey, kind: 'reminder' })
    .select('plan_id', 'seq', 'channel')
    .count({ n: '*' })
    .groupBy('plan_id', 'seq', 'channel')
    .havingRaw('count(*) > 1')) as { plan_id: number; seq: number; channel: string; n: number | string }[];
  return rows.map((r) => ({ ...r, n: Number(r.n) }));
}

async function count(db: Db, table: string, where: Record<string, unknown>): Promise<number> {
  return Number((await db(table).where(where).count({ n: '*' }))[0].n);
}

/** The second process: ask it to do something at the test clock's time and wait for its answer. */
interface Worker {
  run(req: Exclude<WorkerRequest, { type: 'stop' | 'go' | 'naive' }>): Promise<number>;
  /** The naive sweep: `onRead` when the worker has read; it writes once `proceed` resolves. */
  naive(req: Extract<WorkerRequest, { type: 'naive' }>, gate: { onRead: () => void; proceed: Promise<void> }): Promise<number>;
  stop(): Promise<void>;
}

async function startWorker(env: TestEnv): Promise<Worker> {
  const proc: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'support', 'reminders-worker.ts')], {
    cwd: path.resolve(HERE, '..'),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, REMINDERS_WORKER_CONFIG: JSON.stringify(env.config) },
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const next = () =>
    new Promise<WorkerReply>((resolve, reject) => {
      // A backstop for a worker that never answers: starting one on a loaded machine takes a while.
      const timer = setTimeout(() => reject(new Error('the worker process did not answer within 3 min')), 180_000);
      proc.once('message', (m: WorkerReply) => {
        clearTimeout(timer);
        resolve(m);
      });
      proc.once('exit', (code) => reject(new Error(`the worker process exited (${code})`)));
    });
  const ready = await next();
  if (ready.type !== 'ready') throw new Error(`worker: ${JSON.stringify(ready)}`);
  return {
    async run(req) {
      const answer = next();
      proc.send(req);
      const m = await answer;
      if (m.type !== 'done') throw new Error(`worker: ${JSON.stringify(m)}`);
      return m.result;
    },
    async naive(req, gate) {
      const read = next();
      proc.send(req);
      const r = await read;
      if (r.type !== 'read') throw new Error(`worker: ${JSON.stringify(r)}`);
      gate.onRead();
      await gate.proceed;
      const answer = next();
      proc.send({ type: 'go' } satisfies WorkerRequest);
      const m = await answer;
      if (m.type !== 'done') throw new Error(`worker: ${JSON.stringify(m)}`);
      return m.result;
    },
    async stop() {
      if (proc.exitCode === null) proc.send({ type: 'stop' } satisfies WorkerRequest);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

forEachTarget('reminders with two processes', (target) => {
  let env: TestEnv;
  let other: Worker;
  let shop: ApiMerchant;
  let round = 0;

  before(async function () {
    this.timeout(240_000);
    env = await build(target);
    // 10:00 in Amsterdam: far from quiet hours for days on end.
    env.clock.set('2026-03-02T09:00:00Z');
    other = await startWorker(env);
    shop = await apiMerchant(env, 'Acme Yoga');
    await env.rt.db('merchants').where({ id: shop.merchant.key }).update({ timezone: 'Europe/Amsterdam' });
    shop.merchant = (await env.rt.services.merchants.getByKey(shop.merchant.key))!;
  });
  after(async () => {
    await other?.stop();
    await env?.close();
  });
  const now = () => env.clock.now().toISOString();

  /** CUSTOMERS customers with a fresh tag, and a link sent to that tag by email + SMS with daily reminders. */
  async function sendToMany(max: number): Promise<{ linkKey: number; plans: string[]; initial: string[] }> {
    round += 1;
    const tag = `Batch ${round}`;
    const items = Array.from({ length: CUSTOMERS }, (_, i) => {
      const v = validateCustomer(customerCreateSchema, { name: `Member ${round}-${i}`, email: `m${round}-${i}@example.test`, phone: `+3161${String(round).padStart(2, '0')}${String(i).padStart(5, '0')}`, tags: [tag] });
      if (!v.ok) throw new Error(JSON.stringify(v.errors));
      return { input: v.input, phone: v.phone };
    });
    expect(await env.rt.services.customers.createMany(shop.merchant.key, items)).to.equal(CUSTOMERS);
    const tagRow = await env.rt.db('tags').where({ merchant_id: shop.merchant.key, kind: 'customer', name: tag }).first();
    const { link, sent } = await env.rt.services.sending.createLink(shop.merchant, {
      type: 'amount',
      name: `Membership ${round}`,
      amount: 3900,
      currency: 'EUR',
      send: { customer_tag: tagRow.public_id, channels: [...CHANNELS], reminders: { frequency: 'daily', max } },
    });
    expect(sent!.recipients).to.equal(CUSTOMERS);
    expect(sent!.plans).to.have.length(CUSTOMERS);
    return { linkKey: link.key, plans: sent!.plans, initial: sent!.deliveries };
  }

  it(`queues each of ${CUSTOMERS} due reminders exactly once when both processes sweep at the same time`, async function () {
    this.timeout(120_000);
    const start = env.clock.now().getTime();
    const { linkKey } = await sendToMany(3);
    for (let day = 1; day <= 4; day++) {
      env.clock.set(start + day * DAY);
      // Several rounds in each process at once: whoever comes second finds nothing left to do.
      const [theirs, ...ours] = await Promise.all([other.run({ type: 'sweep', now: now(), times: 3 }), env.rt.services.reminders.sweep(), env.rt.services.reminders.sweep(), env.rt.services.reminders.sweep()]);
      const sent = Math.min(day, 3);
      expect(theirs + ours.reduce((a, b) => a + b, 0), `plans taken on day ${day}`).to.equal(day <= 3 ? CUSTOMERS : 0);
      expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder' }), `day ${day}`).to.equal(CUSTOMERS * CHANNELS.length * sent);
      expect(await duplicates(env.rt.db, linkKey), `day ${day}`).to.deep.equal([]);
      const counts = (await env.rt.db('reminder_plans').where({ link_id: linkKey }).select('sent_count').count({ n: '*' }).groupBy('sent_count')) as { sent_count: number; n: number | string }[];
      expect(counts.map((c) => [Number(c.sent_count), Number(c.n)]), `day ${day}`).to.deep.equal([[sent, CUSTOMERS]]);
    }
    expect(await count(env.rt.db, 'reminder_plans', { link_id: linkKey, state: 'completed' })).to.equal(CUSTOMERS);
  });

  it('negative control: a naive sweep without the lock double-sends when two processes run it', async function () {
    this.timeout(60_000);
    const start = env.clock.now().getTime();
    const { linkKey } = await sendToMany(3);
    env.clock.set(start + DAY);
    // Each process reads the due plans and writes only once both have read: the reads overlap for certain.
    let theyRead!: () => void;
    const theirRead = new Promise<void>((resolve) => (theyRead = resolve));
    let weRead!: () => void;
    const ourRead = new Promise<void>((resolve) => (weRead = resolve));
    await Promise.all([
      other.naive({ type: 'naive', now: now(), linkKey, channels: [...CHANNELS] }, { onRead: theyRead, proceed: ourRead }),
      naiveSweep(env.rt, linkKey, [...CHANNELS], async () => {
        weRead();
        await theirRead;
      }),
    ]);
    const dups = await duplicates(env.rt.db, linkKey);
    expect(dups.length, 'the naive sweep should have double-queued').to.be.greaterThan(0);
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder' })).to.be.greaterThan(CUSTOMERS * CHANNELS.length);
    // Leave nothing due behind for the next test.
    await env.rt.db('reminder_plans').where({ link_id: linkKey }).update({ state: 'stopped', stop_reason: 'cancelled', next_at: null });
    await env.rt.db('deliveries').where({ link_id: linkKey }).whereIn('status', ['queued', 'sending']).update({ status: 'cancelled' });
  });

  it('hands every message to the channel exactly once when both processes pump at the same time', async function () {
    this.timeout(120_000);
    const start = env.clock.now().getTime();
    await env.rt.services.deliveries.pump(); // what earlier tests queued, out of the way
    const before = Number((await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).count({ n: '*' }))[0].n);
    const { linkKey, initial } = await sendToMany(1);
    env.clock.set(start + DAY);
    await Promise.all([env.rt.services.reminders.sweep(), other.run({ type: 'sweep', now: now(), times: 1 })]);
    // The initial messages wait `queued` for a pump to claim them; the sweep queued the reminders
    // already leased (`sending`) to the pump jobs it queued with them.
    const initialQueued = await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'initial', status: 'queued' });
    expect(initialQueued).to.equal(CUSTOMERS * CHANNELS.length);
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder', status: 'sending', attempts: 1 })).to.equal(CUSTOMERS * CHANNELS.length);
    const queued = (await env.rt.db('deliveries').where({ link_id: linkKey }).whereIn('status', ['queued', 'sending']).select('public_id')) as { public_id: string }[];
    expect(queued).to.have.length(CUSTOMERS * CHANNELS.length * 2); // initial + one reminder each
    // Both processes run the job queue and pump at once: the leased batches' jobs, and claims of the rest.
    const [theirs, ...ours] = await Promise.all([other.run({ type: 'drain', now: now(), times: 2 }), env.rt.jobs.drain(), env.rt.services.deliveries.pump(), env.rt.services.deliveries.pump()]);
    expect(theirs + ours.reduce((a, b) => a + b, 0), 'jobs run and deliveries handled').to.be.greaterThan(0);

    const rows = (await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).orderBy('id').offset(before).limit(100_000)) as { data: string }[];
    const byMessage = new Map<string, number>();
    for (const r of rows) {
      const id = (JSON.parse(r.data) as { messageId: string }).messageId;
      byMessage.set(id, (byMessage.get(id) ?? 0) + 1);
    }
    expect([...byMessage.entries()].filter(([, n]) => n > 1)).to.deep.equal([]);
    expect(rows).to.have.length(queued.length);
    expect([...byMessage.keys()].sort()).to.deep.equal(queued.map((q) => q.public_id).sort());
    for (const id of initial.slice(0, 3)) expect(byMessage.get(id)).to.equal(1);
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, status: 'sent' })).to.equal(queued.length);
  });

  /** How often each of the link's reminders reached the Outbox, by delivery id. */
  async function remindersInOutbox(linkKey: number): Promise<number[]> {
    const ids = ((await env.rt.db('deliveries').where({ link_id: linkKey, kind: 'reminder' }).select('public_id')) as { public_id: string }[]).map((r) => r.public_id);
    const byMessage = new Map(ids.map((id) => [id, 0]));
    const rows = (await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).select('data')) as { data: string }[];
    for (const r of rows) {
      const id = (JSON.parse(r.data) as { messageId: string }).messageId;
      if (byMessage.has(id)) byMessage.set(id, byMessage.get(id)! + 1);
    }
    return [...byMessage.values()];
  }

  /** Sweeps a day later; answers the link, with its reminders queued leased to their pump jobs. */
  async function sweptLeased(): Promise<number> {
    await env.rt.jobs.drain(); // the initial messages, out of the way
    const { linkKey } = await sendToMany(1);
    await env.rt.jobs.drain();
    env.clock.set(env.clock.now().getTime() + DAY);
    await env.rt.services.reminders.sweep();
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder', status: 'sending' })).to.equal(CUSTOMERS * CHANNELS.length);
    return linkKey;
  }

  it("sends nothing from a rerun of a sweep's pump job (its first worker may still be sending) until the batch's lease runs out, then each reminder once", async function () {
    this.timeout(120_000);
    const linkKey = await sweptLeased();
    // As if a worker had taken the jobs' first run and then stopped renewing their leases.
    const rerun = await env.rt.db('jobs').where({ kind: 'deliveries.pump', state: 'queued' }).andWhere('payload', 'like', '%"leased"%').update({ attempts: 1 });
    expect(rerun).to.be.greaterThan(0);
    await env.rt.jobs.drain();
    expect(await remindersInOutbox(linkKey)).to.satisfy((n: number[]) => n.every((x) => x === 0));
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder', status: 'sending' })).to.equal(CUSTOMERS * CHANNELS.length);
    // Once the lease has run out, the pump queued for then claims them like any stranded batch.
    env.clock.set(env.clock.now().getTime() + 5 * 60_000 + 2_000);
    await env.rt.jobs.drain();
    expect(await remindersInOutbox(linkKey)).to.satisfy((n: number[]) => n.length === CUSTOMERS * CHANNELS.length && n.every((x) => x === 1));
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder', status: 'sent' })).to.equal(CUSTOMERS * CHANNELS.length);
  });

  it("leaves a sweep's batch to the claim at its lease's end when its pump job starts late, and sends each reminder once", async function () {
    this.timeout(120_000);
    const linkKey = await sweptLeased();
    env.clock.set(env.clock.now().getTime() + 3 * 60_000); // more than half the 5-minute lease gone
    await env.rt.jobs.drain();
    expect(await remindersInOutbox(linkKey)).to.satisfy((n: number[]) => n.every((x) => x === 0));
    env.clock.set(env.clock.now().getTime() + 2 * 60_000 + 2_000);
    await env.rt.jobs.drain();
    expect(await remindersInOutbox(linkKey)).to.satisfy((n: number[]) => n.length === CUSTOMERS * CHANNELS.length && n.every((x) => x === 1));
  });

  it("sends a sweep's batch from the job queued with it, without claiming it again: one attempt each", async function () {
    this.timeout(120_000);
    const linkKey = await sweptLeased();
    await env.rt.jobs.drain();
    expect(await remindersInOutbox(linkKey)).to.satisfy((n: number[]) => n.length === CUSTOMERS * CHANNELS.length && n.every((x) => x === 1));
    expect(await count(env.rt.db, 'deliveries', { link_id: linkKey, kind: 'reminder', status: 'sent', attempts: 1 })).to.equal(CUSTOMERS * CHANNELS.length);
  });
});

forEachTarget('reminders survive a restart', (target) => {
  let env: TestEnv;
  after(() => env?.close());

  it('keeps a plan across a restart and the new process sends it when due', async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
    env.clock.set('2026-03-02T09:00:00Z');
    const shop = await apiMerchant(env, 'Acme Yoga');
    const customer = await env.rt.services.customers.create(shop.merchant.key, { name: 'Rita Restart', email: 'rita@example.test' });
    const { link, sent } = await env.rt.services.sending.createLink(shop.merchant, {
      type: 'amount',
      name: 'Course',
      amount: 2500,
      currency: 'EUR',
      send: { customer_id: customer.id, channels: ['email'], reminders: { frequency: 'every_2_days', max: 2 } },
    });
    await env.rt.jobs.drain();
    const planId = sent!.plans[0];
    // The process stops (a deploy); a new one starts on the same database.
    await env.rt.close();
    const next = await env.sibling();
    const [plan] = await next.services.reminders.forLink(link.key);
    expect(plan).to.include({ id: planId, state: 'active', sent: 0, max: 2 });

    env.clock.set('2026-03-03T09:00:00Z');
    expect(await next.services.reminders.sweep(), 'not due on day 1').to.equal(0);
    env.clock.set('2026-03-04T09:00:00Z');
    expect(await next.services.reminders.sweep()).to.equal(1);
    await next.jobs.drain();
    const reminders = (await next.db('deliveries').where({ link_id: link.key, kind: 'reminder' })) as { status: string; seq: number; to_address: string }[];
    expect(reminders.map((d) => [d.seq, d.status, d.to_address])).to.deep.equal([[1, 'sent', 'rita@example.test']]);
    const [after] = await next.services.reminders.forLink(link.key);
    expect(after).to.include({ state: 'active', sent: 1 });
  });
});
