/**
 * The SMTP server refuses every connection with 421 for 5 minutes while 500 messages are queued; the
 * 5 minutes pass on Paylink's injectable clock, not on the wall. Once it accepts again, all 500 are
 * delivered, each exactly once (counted by Message-ID, which channel-email derives from the delivery).
 */
import { build } from '../support/harness.ts';
import { startSmtp } from '../support/smtp.ts';
import type { Drill } from './support.ts';

const MESSAGES = 500;
const OUTAGE_MS = 5 * 60_000;
const STEP_MS = 10_000;

export const smtpDrill: Drill = {
  name: 'SMTP 421 for 5 min',
  async run(ctx) {
    const smtp = await startSmtp();
    ctx.defer(() => smtp.close());
    const env = await build({ name: 'sqlite', mysqlUrl: null, redisUrl: null }, { env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@shop.test' } });
    ctx.defer(() => env.close());
    const { rt, clock } = env;
    const { merchant } = await rt.services.merchants.signUp({ name: 'Drill Shop', handle: 'smtp-drill', email: 'owner@shop.test', password: 'correct horse battery' });
    const ids: string[] = [];
    for (let i = 0; i < MESSAGES; i++) ids.push((await rt.services.customers.create(merchant.key, { name: `Reader ${i}`, email: `reader${i}@example.test` })).id);
    const link = await rt.services.links.create(merchant, { type: 'amount', name: 'Membership', amount: 3900 });

    smtp.fail('connect', 421, 'Service not available, try again later');
    const sent = await rt.services.sending.send(merchant, link, { customer_ids: ids, channels: ['email'] });
    ctx.log(`${sent.deliveries.length} messages queued; the SMTP server answers 421 to every connection`);
    const statuses = async () => (await rt.db('deliveries').where({ merchant_id: merchant.key }).select('status')).map((r) => String(r.status));
    /** One step of the clock: the server's minutely sweep (which restarts due deliveries no pump woke for), the due jobs, then 10 s on. */
    const step = async () => {
      if (clock.now().getTime() % 60_000 === 0) await rt.scheduler.tick('reminders.sweep');
      await rt.jobs.drain();
      clock.advance(STEP_MS);
    };
    const started = clock.now().getTime();
    const refusedSessions = () => smtp.connections;
    while (clock.now().getTime() - started < OUTAGE_MS) await step();
    const during = await statuses();
    const refused = refusedSessions();
    const acceptedDuring = smtp.messages.length;
    ctx.log(`5 minutes on the clock: ${refused} SMTP sessions refused; deliveries ${[...new Set(during)].map((s) => `${s} ${during.filter((x) => x === s).length}`).join(', ')}; ${smtp.messages.length} accepted`);

    smtp.reset();
    const back = clock.now().getTime();
    let delivered = 0;
    while (clock.now().getTime() - back < 60 * 60_000) {
      await rt.jobs.drain();
      delivered = (await statuses()).filter((s) => s === 'sent').length;
      if (delivered === MESSAGES) break;
      await step();
    }
    const after = clock.now().getTime() - back;
    const byId = new Map<string, number>();
    for (const m of smtp.messages) byId.set(m.headers.get('message-id') ?? '', (byId.get(m.headers.get('message-id') ?? '') ?? 0) + 1);
    const recipients = new Set(smtp.messages.flatMap((m) => m.envelope.to));
    const twice = [...byId.values()].filter((n) => n > 1).length;
    const final = await statuses();
    return [
      {
        drill: this.name,
        check: 'nothing is lost or given up while SMTP refuses',
        figure: `after 5 min of 421: ${refused} sessions refused, ${acceptedDuring} accepted, ${during.filter((s) => s === 'failed').length} failed for good`,
        pass: acceptedDuring === 0 && during.every((s) => s === 'queued') && during.length === MESSAGES,
      },
      {
        drill: this.name,
        check: `all ${MESSAGES} delivered once when SMTP accepts again`,
        figure: `${byId.size} distinct messages to ${recipients.size} recipients, ${twice} delivered twice, ${smtp.messages.length} accepted in all; deliveries ${[...new Set(final)].map((s) => `${s} ${final.filter((x) => x === s).length}`).join(', ')}; ${Math.round(after / 1000)} s on the clock after the server accepts again`,
        pass: byId.size === MESSAGES && recipients.size === MESSAGES && twice === 0 && smtp.messages.length === MESSAGES && delivered === MESSAGES,
      },
    ];
  },
};
