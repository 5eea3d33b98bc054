/**
 * A second app process for test/reminders-processes.test.ts: `node --import tsx reminders-worker.ts`
 * builds a runtime (built-in plugins, so channel-outbox sends) on the test's database and then, for
 * each request from the parent, sets its clock and runs the real reminder sweep, the real delivery
 * pump, or a deliberately naive sweep (the negative control), and answers `done`.
 *
 * Env: REMINDERS_WORKER_CONFIG (the test's Config as JSON).
 */
import type { Config } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';

export type WorkerRequest =
  /** `drain`: run the queued jobs (e.g. the pump jobs a sweep queued with its leased reminders). */
  | { type: 'sweep' | 'pump' | 'drain'; now: string; times: number }
  /** The naive sweep: it answers `read` once it has read the due plans, and writes on `go`. */
  | { type: 'naive'; now: string; linkKey: number; channels: string[] }
  | { type: 'go' }
  | { type: 'stop' };

export type WorkerReply = { type: 'ready' } | { type: 'read' } | { type: 'done'; result: number } | { type: 'error'; message: string };

/**
 * The check-then-act sweep the real one must not be: read the due plans, then (once `afterRead`
 * resolves: the test lets both processes read first) queue their reminders and move them on —
 * nothing stops another process from reading the same plans meanwhile.
 */
export async function naiveSweep(rt: Runtime, linkKey: number, channels: string[], afterRead: () => Promise<void>): Promise<number> {
  const now = rt.clock.now();
  const due = (await rt.db('reminder_plans as rp')
    .join('customers as c', 'c.id', 'rp.customer_id')
    .where({ 'rp.link_id': linkKey, 'rp.state': 'active' })
    .andWhere('rp.next_at', '<=', now)
    .select('rp.id', 'rp.merchant_id', 'rp.customer_id', 'rp.sent_count', 'c.email', 'c.phone')) as { id: number; merchant_id: number; customer_id: number; sent_count: number; email: string; phone: string }[];
  await afterRead();
  await rt.db.transaction(async (trx) => {
    const items = due.flatMap((p) =>
      channels.map((channel) => ({ merchantKey: p.merchant_id, linkKey, customerKey: p.customer_id, planKey: p.id, channel, kind: 'reminder' as const, seq: Number(p.sent_count) + 1, to: channel === 'email' ? p.email : p.phone })),
    );
    // Plans first, then their deliveries: both processes then lock in the same order and the second
    // waits for the first instead of deadlocking (InnoDB) — and still double-queues, as it should.
    if (due.length) await trx('reminder_plans').whereIn('id', due.map((p) => p.id)).update({ sent_count: trx.raw('sent_count + 1'), next_at: new Date(now.getTime() + 86_400_000) });
    await rt.services.deliveries.queue(trx, items);
  });
  return due.length;
}

const reply = (m: WorkerReply) => process.send?.(m);

if (process.env.REMINDERS_WORKER_CONFIG) {
  const config: Config = JSON.parse(process.env.REMINDERS_WORKER_CONFIG);
  const clock = new ManualClock();
  const rt = await createRuntime(config, { clock, log: createLogger('silent'), migrate: false });
  let go: (() => void) | null = null;
  process.on('message', async (msg: WorkerRequest) => {
    try {
      if (msg.type === 'go') {
        go?.();
        go = null;
        return;
      }
      if (msg.type === 'stop') {
        await rt.close();
        process.disconnect?.();
        return;
      }
      clock.set(msg.now);
      let result = 0;
      if (msg.type === 'naive') {
        result = await naiveSweep(rt, msg.linkKey, msg.channels, () => new Promise<void>((resolve) => {
          go = resolve;
          reply({ type: 'read' });
        }));
      }
      else for (let i = 0; i < msg.times; i++) result += msg.type === 'sweep' ? await rt.services.reminders.sweep() : msg.type === 'drain' ? await rt.jobs.drain() : await rt.services.deliveries.pump();
      reply({ type: 'done', result });
    } catch (err) {
      reply({ type: 'error', message: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) });
    }
  });
  reply({ type: 'ready' });
}
