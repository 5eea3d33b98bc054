/**
 * Outgoing webhooks survive a killed process: 1,000 payment events are delivered by a separate
 * worker process (test/support/webhooks-worker.ts) that is SIGKILLed part-way — with deliveries on
 * the wire, fan-outs half done and jobs under lease. After a restart every event is delivered or
 * still scheduled (none lost, none failed), and no event that the receiver answered 2xx (and that
 * Paylink recorded) is delivered to it again.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { apiClient, apiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';
import { startReceiver, verifier, type TestReceiver } from './support/webhook-receiver.ts';
import { waitFor } from './support/wait.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EVENTS = 1000;
const ANSWERED_BEFORE_KILL = 300;
const LEASE_MS = 2000;

function startWorker(env: TestEnv, now: Date): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'support', 'webhooks-worker.ts')], {
    cwd: path.resolve(HERE, '..'),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WEBHOOKS_WORKER_CONFIG: JSON.stringify(env.config), WEBHOOKS_WORKER_NOW: now.toISOString(), WEBHOOKS_WORKER_LEASE_MS: String(LEASE_MS) },
  });
  return new Promise((resolve, reject) => {
    proc.once('message', () => resolve(proc));
    proc.once('exit', (code) => reject(new Error(`the worker exited (${code}) before it was ready`)));
  });
}

forEachTarget('outgoing webhooks: a worker killed mid-delivery', (target) => {
  let env: TestEnv;
  let hook: TestReceiver;
  const procs: ChildProcess[] = [];
  before(async () => {
    hook = await startReceiver();
    env = await build(target, { env: { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' } });
  });
  after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await env?.close();
    await hook?.close();
  });

  it('loses nothing and delivers no answered event twice: delivered + still scheduled = 1,000 after a restart', async function () {
    this.timeout(10 * 60_000);
    const a = await apiMerchant(env, 'Crash Test Cafe');
    const created = await apiClient(env.app, a.secret)('post', '/webhook_endpoints', { url: `${hook.url}/paid`, events: ['payment.succeeded'] });
    expect(created.status).to.equal(201);
    const secret = created.body.secret as string;
    const { db, events } = env.rt;
    for (let i = 0; i < EVENTS; i += 100) {
      await db.transaction(async (trx) => {
        for (let j = i; j < i + 100; j++) {
          await events.emit(trx, 'payment.succeeded', { merchantId: a.merchant.id, paymentId: `pay_crash${j}`, linkId: null, customerId: null, amount: 100 + j, currency: 'EUR', provider: 'sandbox' }, a.merchant.key);
        }
      });
    }

    // The receiver answers the first 300 deliveries, then holds every further one on the wire.
    let answered = 0;
    hook.answer(() => (answered < ANSWERED_BEFORE_KILL ? (answered++, { status: 200 }) : null));
    const t0 = env.clock.now();
    const first = await startWorker(env, t0);
    procs.push(first);
    await waitFor(() => answered === ANSWERED_BEFORE_KILL && hook.received.length > ANSWERED_BEFORE_KILL, { timeout: 5 * 60_000, message: 'the first 300 deliveries and one held on the wire' });
    // What the receiver answered 2xx, Paylink has recorded (the kill then falls between a request
    // sent and its answer, never between an answer and its record — a window no sender can close).
    await waitFor(async () => Number((await db('webhook_messages').where('status', 'succeeded').count({ n: '*' }))[0].n) === ANSWERED_BEFORE_KILL, { timeout: 60_000, message: 'the answered deliveries to be recorded' });
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));

    // Nothing is lost or given up on: every event is delivered, scheduled, or still to be fanned out.
    const byStatus = async () => Object.fromEntries(((await db('webhook_messages').select('status').count({ n: '*' }).groupBy('status')) as { status: string; n: number | string }[]).map((r) => [r.status, Number(r.n)]));
    const midway = await byStatus();
    expect(midway.failed ?? 0).to.equal(0);
    expect(midway.cancelled ?? 0).to.equal(0);
    expect(midway.succeeded).to.equal(ANSWERED_BEFORE_KILL);
    const jobsLeft = Number((await db('jobs').whereIn('state', ['queued', 'running']).whereIn('kind', ['events.dispatch', 'hooks.run', 'webhooks.deliver']).count({ n: '*' }))[0].n);
    expect(jobsLeft, 'work left for the restart').to.be.above(0);

    // Restart after the dead worker's leases ran out; the receiver answers again.
    hook.answer(() => ({ status: 200 }));
    const second = await startWorker(env, new Date(t0.getTime() + 10 * LEASE_MS));
    procs.push(second);
    const done = await waitFor(async () => {
      const s = await byStatus();
      return (s.succeeded ?? 0) === EVENTS ? s : null;
    }, { timeout: 5 * 60_000, interval: 200, message: 'all 1,000 events delivered after the restart' });
    second.kill('SIGKILL');
    expect(done).to.deep.equal({ succeeded: EVENTS });

    // The receiver's view: each event answered 2xx exactly once, every request verifies.
    const ok = hook.received.filter((r) => r.status === 200);
    const perEvent = new Map<string, number>();
    for (const r of ok) {
      const id = JSON.parse(r.body).id as string;
      perEvent.set(id, (perEvent.get(id) ?? 0) + 1);
    }
    expect(perEvent.size).to.equal(EVENTS);
    expect([...perEvent.values()].filter((n) => n > 1)).to.deep.equal([]);
    const wh = verifier(secret, env.clock);
    for (const r of hook.received) wh.verify(r.body, r.headers);
    // The held ones were sent again after the restart, with the same webhook-id.
    const held = hook.received.filter((r) => r.status === null).map((r) => r.headers['webhook-id']);
    expect(held.length).to.be.above(0);
    for (const id of held) expect(ok.some((r) => r.headers['webhook-id'] === id), id).to.equal(true);
  });
});
