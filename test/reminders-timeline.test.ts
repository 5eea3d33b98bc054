import { expect } from 'chai';
import { outboxMessages } from './support/channels.ts';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { apiClient, apiMerchant, type ApiCall, type ApiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';

const DAY = 86_400_000;


forEachTarget('reminders until paid', (target) => {
  let env: TestEnv;
  let shop: ApiMerchant;
  let call: ApiCall;
  before(async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
    // 10:00 in Amsterdam: well outside quiet hours.
    env.clock.set('2026-03-02T09:00:00Z');
    shop = await apiMerchant(env, 'Acme Yoga');
    await env.rt.db('merchants').where({ id: shop.merchant.key }).update({ timezone: 'Europe/Amsterdam' });
    call = apiClient(env.app, shop.secret);
  });
  after(() => env?.close());

  async function customer(name: string) {
    const res = await call('post', '/customers', { name, email: `${name.split(' ')[0].toLowerCase()}@example.test`, phone: '+31 6 12345678' }).expect(201);
    return res.body.id as string;
  }

  async function sendLink(customerId: string, name: string) {
    const res = await call('post', '/links', {
      type: 'amount',
      name,
      amount: 3900,
      currency: 'EUR',
      send: { customer_id: customerId, channels: ['email', 'sms'], reminders: { frequency: 'every_2_days', max: 5 } },
    }).expect(201);
    expect(res.body.sent.deliveries).to.have.length(2);
    expect(res.body.sent.reminder_plans).to.have.length(1);
    return res.body as { id: string; url: string };
  }

  /** Day by day (at the send's time of day), run the sweep and the outbox; the days reminders went out. */
  async function runDays(linkId: string, start: number, days: number, onDay?: (day: number) => Promise<void>): Promise<number[]> {
    const sentDays: number[] = [];
    for (let day = 1; day <= days; day++) {
      env.clock.set(start + day * DAY);
      await onDay?.(day);
      await env.rt.services.reminders.sweep();
      await env.rt.jobs.drain();
      const res = await call('get', `/links/${linkId}/deliveries?limit=100`).expect(200);
      const reminders = (res.body.data as { kind: string; created_at: string; status: string }[]).filter((d) => d.kind === 'reminder' && new Date(d.created_at).getTime() === start + day * DAY);
      if (reminders.length) {
        expect(reminders.map((r) => r.status)).to.deep.equal(['sent', 'sent']);
        sentDays.push(day);
      }
    }
    return sentDays;
  }

  it('sends the link by email and SMS at once, personalised, and reminds on days 2, 4, 6, 8 and 10 — then stops at the maximum', async () => {
    const start = env.clock.now().getTime();
    const jane = await customer('Jane Doe');
    const link = await sendLink(jane, 'Spring membership');
    await env.rt.jobs.drain();
    const first = await outboxMessages(env);
    const email = first.find((m) => m.channel === 'email')!;
    const sms = first.find((m) => m.channel === 'sms')!;
    expect(email.to).to.equal('jane@example.test');
    expect(email.subject).to.equal('Acme Yoga: your payment link for Spring membership');
    expect(email.text).to.include('Hi Jane,').and.include('€39.00').and.include(`${link.url}?c=`);
    expect(sms.to).to.equal('+31612345678');
    expect(sms.text).to.match(/^Hi Jane, your Acme Yoga payment link for Spring membership \(€39\.00\): http/);

    expect(await runDays(link.id, start, 14)).to.deep.equal([2, 4, 6, 8, 10]);
    const plans = await call('get', `/links/${link.id}/reminders`).expect(200);
    expect(plans.body.data[0]).to.include({ frequency: 'every_2_days', max: 5, sent: 5, status: 'completed', next_at: null });
    expect(plans.body.data[0].events.sent.map((e: { number: number }) => e.number)).to.deep.equal([1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
  });

  it('stops every scheduled reminder when the customer pays on day 5', async () => {
    env.clock.set('2026-04-06T08:30:00Z');
    const start = env.clock.now().getTime();
    const ana = await customer('Ana López');
    const link = await sendLink(ana, 'Workshop');
    await env.rt.jobs.drain();
    const messages = await outboxMessages(env);
    const sent = messages.filter((m) => m.to === 'ana@example.test');
    const url = new URL(sent[0].text.match(/https?:\/\/\S+\?c=\S+/)![0]);

    const payOnDay5 = async (day: number) => {
      if (day !== 5) return;
      // The customer opens the link they were sent and pays: their payment names them.
      const page = await supertest(env.app).get(url.pathname + url.search).expect(200);
      expect(page.text).to.include(`action="${url.pathname}?c=`);
      await supertest(env.app).post(url.pathname + url.search).type('form').send({ name: 'Ana López', email: 'ana@example.test' }).expect(303);
      const pending = await env.rt.db('payments').where({ status: 'pending' }).orderBy('id', 'desc').first();
      expect(pending.customer_id).to.not.equal(null);
      const outcome = await env.rt.services.checkout.authorize(pending.public_id, `sbx_${pending.public_id}`);
      expect(outcome.status).to.equal('paid');
    };
    expect(await runDays(link.id, start, 14, payOnDay5)).to.deep.equal([2, 4]);
    const plans = await call('get', `/links/${link.id}/reminders`).expect(200);
    expect(plans.body.data[0]).to.include({ sent: 2, status: 'stopped', stop_reason: 'paid', next_at: null });
    expect(plans.body.data[0].events.upcoming).to.deep.equal([]);
  });

  it('waits for 08:00 when a reminder falls in quiet hours (21:00–08:00 in the merchant’s time zone)', async () => {
    // 22:30 in Amsterdam: the daily reminder is due at 22:30 the next day and must wait for 08:00.
    env.clock.set('2026-05-04T20:30:00Z');
    const bo = await customer('Bo Berg');
    const res = await call('post', '/links', { type: 'amount', name: 'Late class', amount: 1500, currency: 'EUR', send: { customer_id: bo, channels: ['email'], reminders: { frequency: 'daily', max: 2 } } }).expect(201);
    const plans = await call('get', `/links/${res.body.id}/reminders`).expect(200);
    // 08:00 CEST on 6 May is 06:00 UTC.
    expect(plans.body.data[0].next_at).to.equal('2026-05-06T06:00:00.000Z');
    env.clock.set('2026-05-05T20:30:00Z');
    expect(await env.rt.services.reminders.sweep()).to.equal(0);
    env.clock.set('2026-05-06T06:00:00Z');
    expect(await env.rt.services.reminders.sweep()).to.equal(1);
  });
});
