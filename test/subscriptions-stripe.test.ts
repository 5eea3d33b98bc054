/**
 * Subscriptions through provider-stripe against the fake Stripe (the real SDK pointed at it, signed
 * webhooks): a recurring plan opens a subscription-mode Checkout Session, its completion starts the
 * subscription, `invoice.paid` renewals become payments of the link once (a replayed event, or a
 * second event for the same invoice, records nothing more), past_due ⇄ active, a cancellation in
 * Stripe ends it, and the merchant's cancel deletes it at Stripe first (Stripe down → 503, nothing
 * changed). Both databases.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { receiptPath, type TestEnv } from './support/harness.ts';
import { expectProblem } from './support/api.ts';
import type { FakeStripe } from './support/fake-stripe.ts';
import { stripeShop, useStripeApp, type StripeShop } from './support/stripe-app.ts';
import { WEBHOOK_EVENTS } from '../plugins/provider-stripe/index.ts';

forEachTarget('subscriptions through Stripe', (target) => {
  const app = useStripeApp(target);
  let fake: FakeStripe;
  let env: TestEnv;
  let s: StripeShop;
  before(async () => {
    ({ fake, env } = app);
    s = await stripeShop(app);
  });

  /** A plan of 29.00 a month with a one-time kit of 15.00 on an items link. */
  async function planLink(extra: Record<string, unknown> = {}) {
    const club = (await s.call('post', '/products', { name: 'Beans every month', price: 2900, currency: 'EUR', recurring: { interval: 'month' } }).expect(201)).body;
    const kit = (await s.call('post', '/products', { name: 'Welcome kit', price: 1500, currency: 'EUR' }).expect(201)).body;
    const link = (await s.call('post', '/links', { type: 'items', name: 'Coffee club', items: [{ product_id: club.id, quantity: 1 }, { product_id: kit.id, quantity: 1 }], ...extra }).expect(201)).body;
    return { club, link };
  }
  /** Subscribes through the pay page and Stripe's hosted page; answers the Stripe session, the payment and the subscription. */
  async function subscribe(planId: string, path: string, email = 'ann@example.test') {
    const res = await supertest(env.app).post(`/${s.merchant.handle}/${path}`).type('form').send({ name: 'Ann Example', email, plan: planId });
    expect(res.status, res.text.slice(0, 600)).to.equal(303);
    const session = fake.sessions.get(new URL(res.headers.location).pathname.split('/').pop()!)!;
    const paid = await fake.pay(session.id);
    expect(paid.status).to.equal(303);
    const paymentId = session.client_reference_id as string;
    const payment = (await s.call('get', `/payments/${paymentId}`).expect(200)).body;
    return { session, payment, stripeSub: fake.subscriptions.get(session.subscription)! };
  }
  const paymentsOf = async (linkId: string) => (await s.call('get', `/payments?link_id=${linkId}&limit=100`).expect(200)).body.data as any[];
  const sub = async (id: string) => (await s.call('get', `/subscriptions/${id}`).expect(200)).body;

  it('asks the merchant to send Stripe every event the plugin reads, subscriptions’ included', async () => {
    const page = (await s.owner.agent.get('/app/settings/payments').expect(200)).text;
    for (const e of WEBHOOK_EVENTS) expect(page, e).to.include(`<code>${e}</code>`);
  });

  it('opens a subscription-mode Checkout and starts the subscription with the first invoice', async () => {
    const { club, link } = await planLink();
    const { session, payment, stripeSub } = await subscribe(club.id, link.path);
    const created = fake.requests.find((r) => r.path === '/v1/checkout/sessions' && r.body.client_reference_id === payment.id)!;
    expect(created.body.mode).to.equal('subscription');
    expect(created.body.line_items).to.deep.equal([
      { quantity: '1', price_data: { currency: 'eur', unit_amount: '2900', recurring: { interval: 'month', interval_count: '1' }, product_data: { name: 'Beans every month' } } },
      { quantity: '1', price_data: { currency: 'eur', unit_amount: '1500', product_data: { name: 'Coffee club' } } },
    ]);
    expect(created.body.subscription_data.metadata.paylink_payment_id).to.equal(payment.id);
    expect(created.body).not.to.have.property('payment_intent_data');
    // The first charge: the invoice's PaymentIntent, paid; the subscription names Stripe's.
    expect(payment).to.deep.include({ status: 'paid', amount: 4400, provider: 'stripe', payment_method: { type: 'card', brand: 'visa', last4: '4242' } });
    expect(payment.subscription_id).to.match(/^sub_/);
    const mine = await sub(payment.subscription_id);
    expect(mine).to.include({ status: 'active', amount: 2900, provider: 'stripe', first_payment_id: payment.id, link_id: link.id });
    const row = await env.rt.db('subscriptions').where({ public_id: mine.id }).first('provider_ref');
    expect(row.provider_ref).to.equal(stripeSub.id);
    expect(session.subscription).to.equal(stripeSub.id);
  });

  it('records each invoice.paid renewal once, moves the period to Stripe’s, and follows past_due and back', async () => {
    const { club, link } = await planLink({ payment_limit: 1 });
    const { payment, stripeSub } = await subscribe(club.id, link.path, 'bo@example.test');
    const inv = await fake.renew(stripeSub.id);
    let list = await paymentsOf(link.id);
    expect(list.map((p) => [p.amount, p.status, p.subscription_id])).to.deep.equal([[2900, 'paid', payment.subscription_id], [4400, 'paid', payment.subscription_id]]);
    expect(list[0].payment_method).to.deep.equal({ type: 'card', brand: 'visa', last4: '4242' });
    // The merchant's payment page names the subscription.
    const shown = (await s.owner.agent.get(`/app/payments/${list[0].id}`).expect(200)).text;
    expect(shown).to.include(`<code>${payment.subscription_id}</code></a> <span class="muted small">· a renewal</span>`);
    expect((await sub(payment.subscription_id)).current_period_end).to.equal(new Date(inv.lines.data[0].period.end * 1000).toISOString());
    // The same event again, and another event for the same invoice: nothing more.
    const delivered = fake.sent.find((w) => w.event.type === 'invoice.paid' && w.event.data.object.id === inv.id)!;
    expect(JSON.parse((await fake.send(s.account, delivered.event)).body).duplicate).to.equal(true);
    const second = await fake.send(s.account, fake.event('invoice.paid', inv));
    expect(second.status).to.equal(200);
    expect(await paymentsOf(link.id)).to.have.length(2);
    // A limit of one counts the subscriber: renewals go on, the link is full.
    const l = (await s.call('get', `/links/${link.id}`).expect(200)).body;
    expect([l.paid_count, l.active, l.stats.payments, l.stats.revenue]).to.deep.equal([1, false, 2, 7300]);

    // A declined renewal: past_due, no payment; the next one that goes through: active again.
    await fake.renew(stripeSub.id, { fail: true });
    expect((await sub(payment.subscription_id)).status).to.equal('past_due');
    expect(await paymentsOf(link.id)).to.have.length(2);
    await fake.renew(stripeSub.id);
    expect((await sub(payment.subscription_id)).status).to.equal('active');
    list = await paymentsOf(link.id);
    expect(list).to.have.length(3);
    // A renewal is refunded through its PaymentIntent like any payment.
    await s.call('post', `/payments/${list[0].id}/refunds`, { amount: 500 }).expect(201);
    const { provider_ref: intent } = await env.rt.db('payments').where({ public_id: list[0].id }).first('provider_ref');
    expect(intent).to.match(/^pi_/);
    expect(fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/refunds').pop()!.body.payment_intent).to.equal(intent);
  });

  it('starts a free trial at Stripe with nothing charged today, then bills the plan when the trial ends', async () => {
    const plan = (await s.call('post', '/products', { name: 'Pro', price: 9000, currency: 'EUR', recurring: { interval: 'year', trial_days: 30 } }).expect(201)).body;
    const link = (await s.call('post', '/links', { type: 'items', name: 'Pro plan', items: [{ product_id: plan.id, quantity: 1 }] }).expect(201)).body;
    const { payment, stripeSub } = await subscribe(plan.id, link.path, 'ed@example.test');
    const created = fake.requests.find((r) => r.path === '/v1/checkout/sessions' && r.body.client_reference_id === payment.id)!;
    expect(created.body.subscription_data.trial_period_days).to.equal('30');
    expect(created.body.line_items).to.have.length(1);
    expect(stripeSub.status).to.equal('trialing');
    expect([payment.status, payment.amount]).to.deep.equal(['paid', 0]);
    expect(fake.requests.filter((r) => r.path.endsWith('/capture') && r.path.includes('/in_'))).to.deep.equal([]);
    expect((await sub(payment.subscription_id)).status).to.equal('trialing');
    await fake.renew(stripeSub.id);
    expect((await sub(payment.subscription_id)).status).to.equal('active');
    expect((await paymentsOf(link.id)).map((p) => [p.amount, p.status])).to.deep.equal([[9000, 'paid'], [0, 'paid']]);
  });

  it('ends the subscription when it is canceled in Stripe: no renewal is recorded after', async () => {
    const { club, link } = await planLink();
    const { payment, stripeSub } = await subscribe(club.id, link.path, 'cy@example.test');
    await fake.cancelInDashboard(stripeSub.id);
    const ended = await sub(payment.subscription_id);
    expect(ended.status).to.equal('canceled');
    const events = (await env.rt.db('events').where({ type: 'subscription.canceled' })).map((e: any) => JSON.parse(e.payload)).filter((p: any) => p.subscriptionId === ended.id);
    expect(events.map((p: any) => p.canceledBy)).to.deep.equal(['provider']);
    // An invoice Stripe would still report for it is acknowledged and not recorded.
    const late = await fake.send(s.account, fake.event('invoice.paid', { ...fake.invoices.get(stripeSub.latest_invoice)!, id: 'in_late_one', billing_reason: 'subscription_cycle' }));
    expect([late.status, JSON.parse(late.body).outcome]).to.deep.equal([200, 'subscription_canceled']);
    expect(await paymentsOf(link.id)).to.have.length(1);
  });

  it('cancels at Stripe first when the merchant cancels; Stripe unreachable answers 503 and changes nothing', async () => {
    const { club, link } = await planLink();
    const { payment, stripeSub } = await subscribe(club.id, link.path, 'di@example.test');
    fake.down = true;
    try {
      expectProblem(await s.call('post', `/subscriptions/${payment.subscription_id}/cancel`), 503, 'service_unavailable');
    } finally {
      fake.down = false;
    }
    expect((await sub(payment.subscription_id)).status).to.equal('active');
    expect(stripeSub.status).to.equal('active');

    const canceled = (await s.call('post', `/subscriptions/${payment.subscription_id}/cancel`).expect(200)).body;
    expect(canceled.status).to.equal('canceled');
    expect(fake.requests.filter((r) => r.method === 'DELETE' && r.path === `/v1/subscriptions/${stripeSub.id}`)).to.have.length(1);
    expect(stripeSub.status).to.equal('canceled');
    // Stripe's own announcement of it changes nothing more; a second cancel is a conflict.
    await fake.idle();
    expect((await env.rt.db('events').where({ type: 'subscription.canceled' })).map((e: any) => JSON.parse(e.payload)).filter((p: any) => p.subscriptionId === canceled.id)).to.have.length(1);
    expectProblem(await s.call('post', `/subscriptions/${payment.subscription_id}/cancel`), 409, 'already_canceled');
    expect(await paymentsOf(link.id)).to.have.length(1);
  });

  it('cancels at Stripe first when the customer cancels from the receipt; Stripe unreachable says so on the page and changes nothing', async () => {
    const { club, link } = await planLink();
    const { payment, stripeSub } = await subscribe(club.id, link.path, 'eve@example.test');
    const cancel = () => supertest(env.app).post(receiptPath(env, payment.id, 'cancel-subscription'));
    fake.down = true;
    try {
      const down = await cancel().expect(503);
      // The confirmation again, with the reason by its button.
      expect(down.text).to.include('The payment provider is not reachable right now, so the subscription was not canceled.');
      expect(down.text).to.include(`action="${receiptPath(env, payment.id, 'cancel-subscription')}"`);
    } finally {
      fake.down = false;
    }
    expect((await sub(payment.subscription_id)).status).to.equal('active');
    expect(stripeSub.status).to.equal('active');

    await cancel().expect(303);
    expect(fake.requests.filter((r) => r.method === 'DELETE' && r.path === `/v1/subscriptions/${stripeSub.id}`)).to.have.length(1);
    const ended = await sub(payment.subscription_id);
    expect([ended.status, ended.canceled_by]).to.deep.equal(['canceled', 'customer']);
    // Stripe's own announcement of it changes nothing more.
    await fake.idle();
    const events = (await env.rt.db('events').where({ type: 'subscription.canceled' })).map((e: any) => JSON.parse(e.payload)).filter((p: any) => p.subscriptionId === ended.id);
    expect(events.map((p: any) => p.canceledBy)).to.deep.equal(['customer']);
    // The merchant sees who ended it.
    const page = (await s.owner.agent.get(`/app/subscriptions/${ended.id}`).expect(200)).text;
    expect(page).to.match(/<dt>Canceled<\/dt><dd>[^<]+ <span class="muted">\(by the customer\)<\/span>/);
  });
});
