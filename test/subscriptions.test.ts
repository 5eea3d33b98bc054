/**
 * Subscriptions (issue 16 part 2) with the sandbox provider: a recurring plan on an items link is
 * paid once at checkout (the subscription starts, taking one slot of the link's limit), renewed by
 * the sandbox's job when the injected clock passes the period's end (a payment of the link each
 * time, never a slot), listed and canceled by the merchant through the API (renewals stop), with
 * problem+json for bad requests. Both databases.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, receiptPath, signUp, type TestEnv } from './support/harness.ts';
import { BUILTIN_PLUGINS_DIR, builtinSources, type PluginSource } from '../src/core/plugins/host.ts';
import { definePlugin } from '../src/plugin-api.ts';
import { apiClient, apiMerchant, expectProblem, twoApiMerchants, type ApiCall, type ApiMerchant } from './support/api.ts';
import { addInterval } from '../src/features/subscriptions/index.ts';
import { outboxMessages } from './support/channels.ts';

const CUSTOMER = { name: 'Ann Example', email: 'ann@example.test' };
const DAY = 86_400_000;

forEachTarget('subscriptions with the sandbox provider', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  const http = () => supertest(env.app);

  before(async () => {
    ({ env, a, call, callB } = await twoApiMerchants(target, ['Coffee Club', 'Other Shop']));
  });
  after(() => env?.close());

  const product = async (c: ApiCall, body: Record<string, unknown>) => (await c('post', '/products', { currency: 'EUR', ...body }).expect(201)).body;
  const planLink = async (c: ApiCall, m: ApiMerchant, extra: Record<string, unknown> = {}, plan: Record<string, unknown> = { interval: 'month' }) => {
    const club = await product(c, { name: 'Beans every month', price: 2900, recurring: plan });
    const kit = await product(c, { name: 'Welcome kit', price: 1500 });
    const link = (await c('post', '/links', { type: 'items', name: 'Coffee club', items: [{ product_id: club.id, quantity: 1 }, { product_id: kit.id, quantity: 1 }], ...extra }).expect(201)).body;
    return { club, kit, link, url: `/${m.handle}/${link.path}` };
  };
  /** Subscribes through the pay page and the sandbox card page; answers the card page's redirect. */
  async function subscribe(url: string, planId: string, who = CUSTOMER) {
    const res = await http().post(url).type('form').send({ ...who, plan: planId });
    expect(res.status, res.text.slice(0, 800)).to.equal(303);
    return http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
  }
  const renewJob = async () => {
    await env.rt.jobs.enqueue(env.rt.db, 'plugin.provider-sandbox.renew', {});
    await env.rt.jobs.drain();
  };
  const paymentsOf = async (c: ApiCall, linkId: string) => (await c('get', `/payments?link_id=${linkId}&limit=100`).expect(200)).body.data as any[];
  const linkOf = async (c: ApiCall, linkId: string) => (await c('get', `/links/${linkId}`).expect(200)).body;

  it('starts a subscription with the first payment and renews it when the clock passes the period end', async () => {
    const { club, link, url } = await planLink(call, a);
    await subscribe(url, club.id);
    const [first] = await paymentsOf(call, link.id);
    // The first charge: the plan and the one-time kit.
    expect([first.amount, first.status]).to.deep.equal([4400, 'paid']);
    expect(first.subscription_id).to.match(/^sub_/);
    const sub = (await call('get', `/subscriptions/${first.subscription_id}`).expect(200)).body;
    expect(sub).to.include({ object: 'subscription', status: 'active', link_id: link.id, amount: 2900, currency: 'EUR', provider: 'sandbox', first_payment_id: first.id, canceled_at: null });
    expect(sub.plan).to.deep.equal({ interval: 'month', interval_count: 1, trial_days: null });
    expect(sub.customer).to.include({ name: 'Ann Example', email: 'ann@example.test' });
    expect(sub.current_period_end).to.equal(addInterval(new Date(first.paid_at), 'month', 1).toISOString());
    // The receipt says it is a subscription and when it renews.
    const receipt = (await http().get(`/receipt/${first.id}`).expect(200)).text;
    expect(receipt).to.include('You subscribed to <strong>Beans every month</strong>: €29.00 every month.');
    expect(receipt).to.match(/It renews on <strong>[^<]+<\/strong>/);

    // Not due yet: the job charges nothing.
    await renewJob();
    expect(await paymentsOf(call, link.id)).to.have.length(1);

    // A month later the sandbox charges the plan alone (not the kit), once however often the job runs.
    env.clock.set(new Date(Date.parse(sub.current_period_end) + 60_000));
    await renewJob();
    await renewJob();
    const after = await paymentsOf(call, link.id);
    expect(after).to.have.length(2);
    expect(after[0]).to.include({ amount: 2900, status: 'paid', subscription_id: sub.id });
    expect(after[0].payment_method).to.include({ type: 'card', last4: '4242' });
    expect((await http().get(`/receipt/${after[0].id}`).expect(200)).text).to.include('This payment renewed your subscription to');
    // Its payments, by subscription: the renewal and the first.
    expect((await call('get', `/payments?subscription_id=${sub.id}`).expect(200)).body.data.map((p: any) => p.id)).to.deep.equal([after[0].id, first.id]);
    const renewed = (await call('get', `/subscriptions/${sub.id}`).expect(200)).body;
    expect(renewed.current_period_end).to.equal(addInterval(new Date(sub.current_period_end), 'month', 1).toISOString());
    // Revenue counts both charges; the limit counts one subscriber.
    const l = await linkOf(call, link.id);
    expect([l.paid_count, l.stats.payments, l.stats.revenue]).to.deep.equal([1, 2, 7300]);
    const types = (await env.rt.db('events').where({ type: 'subscription.renewed' }).select('payload')).map((e: any) => JSON.parse(e.payload).subscriptionId);
    expect(types).to.deep.equal([sub.id]);
  });

  it('counts subscribers, not renewals, against a payment limit', async () => {
    const m = await apiMerchant(env, 'Limited Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m, { payment_limit: 2 });
    await subscribe(url, club.id, { name: 'One', email: 'one@example.test' });
    // Three renewals of the first subscriber do not fill the limit…
    for (let i = 0; i < 3; i++) {
      env.clock.advance(32 * DAY);
      await renewJob();
    }
    let l = await linkOf(c, link.id);
    expect([l.paid_count, l.remaining, l.active, l.stats.payments]).to.deep.equal([1, 1, true, 4]);
    // …a second subscriber does.
    await subscribe(url, club.id, { name: 'Two', email: 'two@example.test' });
    l = await linkOf(c, link.id);
    expect([l.paid_count, l.remaining, l.active, l.inactive_reason]).to.deep.equal([2, 0, false, 'limit_reached']);
    // Both keep renewing on the closed link.
    env.clock.advance(32 * DAY);
    await renewJob();
    l = await linkOf(c, link.id);
    expect([l.paid_count, l.stats.payments]).to.deep.equal([2, 7]);
    const subs = (await c('get', '/subscriptions').expect(200)).body;
    expect(subs.data.map((s: any) => s.status)).to.deep.equal(['active', 'active']);
  });

  it("lists a link's subscriptions: the API's link_id filter, the link page's counts and the dashboard list it links to", async () => {
    const acct = await signUp(env.app, { name: 'Two Clubs' });
    const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const c = apiClient(env.app, (await env.rt.services.apiKeys.create(merchant, { name: 'test' })).secret);
    const m = { merchant, handle: acct.handle } as ApiMerchant;
    const first = await planLink(c, m);
    const second = await planLink(c, m);
    await subscribe(first.url, first.club.id, { name: 'One', email: 'one@example.test' });
    await subscribe(first.url, first.club.id, { name: 'Two', email: 'two@example.test' });
    await subscribe(second.url, second.club.id, { name: 'Three', email: 'three@example.test' });
    const ofFirst = (await c('get', `/subscriptions?link_id=${first.link.id}`).expect(200)).body.data;
    expect(ofFirst.map((s: any) => [s.customer.name, s.link_id])).to.deep.equal([['Two', first.link.id], ['One', first.link.id]]);
    await c('post', `/subscriptions/${ofFirst[0].id}/cancel`).expect(200);
    // Another merchant's link, or no such link: nothing (not an error, as for payments).
    expect((await call('get', `/subscriptions?link_id=${first.link.id}`).expect(200)).body.data).to.deep.equal([]);
    expect((await c('get', '/subscriptions?link_id=lnk_nope').expect(200)).body.data).to.deep.equal([]);
    expectProblem(await c('get', `/subscriptions?link_id=${'x'.repeat(65)}`), 422, 'validation_failed');

    // The link page counts them and links to the list of this link's subscriptions.
    const page = (await acct.agent.get(`/app/links/${first.link.id}`).expect(200)).text;
    const panel = page.slice(page.indexOf('id="link-subscriptions-title"'));
    expect(panel.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ')).to.match(/^[^]*?Active 1 Canceled 1 See this link’s subscriptions/);
    expect(panel).to.include(`href="/app/subscriptions?link_id=${first.link.id}"`);
    const list = (await acct.agent.get(`/app/subscriptions?link_id=${first.link.id}`).expect(200)).text;
    expect(list).to.include('One').and.include('Two').and.not.include('Three');
    expect(list).to.include(`Link: <a href="/app/links/${first.link.id}">Coffee club</a>`);
    // A link that sells no plan has no such panel.
    const plain = (await c('post', '/links', { type: 'amount', name: 'Tip jar', amount: 500 }).expect(201)).body;
    expect((await acct.agent.get(`/app/links/${plain.id}`).expect(200)).text).not.to.include('link-subscriptions-title');
  });

  it('lets the merchant cancel a subscription: renewals stop, a second cancel is a 409, unknown ids are 404', async () => {
    const m = await apiMerchant(env, 'Cancel Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m, {}, { interval: 'week', interval_count: 2 });
    await subscribe(url, club.id);
    const [sub] = (await c('get', '/subscriptions').expect(200)).body.data;
    const canceled = (await c('post', `/subscriptions/${sub.id}/cancel`).expect(200)).body;
    expect(canceled.status).to.equal('canceled');
    expect(canceled.canceled_at).to.equal(env.clock.now().toISOString());
    expect(canceled.canceled_by).to.equal('merchant');
    env.clock.advance(30 * DAY);
    await renewJob();
    const payments = await paymentsOf(c, link.id);
    expect(payments).to.have.length(1);
    expect((await http().get(`/receipt/${payments[0].id}`).expect(200)).text).to.include('you will not be charged again');
    expectProblem(await c('post', `/subscriptions/${sub.id}/cancel`), 409, 'already_canceled');
    expectProblem(await c('get', '/subscriptions/sub_nope'), 404, 'not_found');
    expectProblem(await c('post', '/subscriptions/sub_nope/cancel'), 404, 'not_found');
    // Another merchant's subscription is the same 404.
    expectProblem(await callB('get', `/subscriptions/${sub.id}`), 404, 'not_found');
    expectProblem(await callB('post', `/subscriptions/${sub.id}/cancel`), 404, 'not_found');
    expectProblem(await c('get', '/subscriptions?status=paused'), 422, 'validation_failed');
    expect((await c('get', '/subscriptions?status=canceled').expect(200)).body.data.map((s: any) => s.id)).to.deep.equal([sub.id]);
    // A viewer key reads subscriptions but cancels none (403); an agent (who sees only what they made) does neither.
    for (const role of ['viewer', 'agent']) {
      const { secret } = await env.rt.services.apiKeys.create(m.merchant, { name: role, role });
      const k = apiClient(env.app, secret);
      if (role === 'viewer') await k('get', '/subscriptions').expect(200);
      else expectProblem(await k('get', '/subscriptions'), 403, 'forbidden');
      expectProblem(await k('post', `/subscriptions/${sub.id}/cancel`), 403, 'forbidden');
    }
    const events = await env.rt.db('events').where({ type: 'subscription.canceled' }).select('payload');
    expect(events.map((e: any) => JSON.parse(e.payload)).filter((p: any) => p.subscriptionId === sub.id).map((p: any) => p.canceledBy)).to.deep.equal(['merchant']);
  });

  it('says in the receipt email what the payment started or renewed, when it renews, and where to cancel it', async () => {
    const m = await apiMerchant(env, 'Mail Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m);
    const who = { name: 'Mo Example', email: 'mo@example.test' };
    await subscribe(url, club.id, who);
    await env.rt.jobs.drain();
    const sub = (await c('get', '/subscriptions').expect(200)).body.data[0];
    const receipts = async () => (await outboxMessages(env)).filter((msg) => msg.to === who.email && /receipt/i.test(msg.subject ?? ''));
    const [first] = await receipts();
    const next = (at: string) => new Date(at).toLocaleDateString('en-GB', { timeZone: m.merchant.timezone, dateStyle: 'medium' });
    expect(first.text).to.include(`You subscribed to Beans every month: €29.00 every month. It renews on ${next(sub.current_period_end)}, charged to the same payment method. To cancel it, open your receipt.`);
    expect(first.text.indexOf('To cancel it')).to.be.lessThan(first.text.indexOf('View your receipt:'));
    env.clock.set(new Date(Date.parse(sub.current_period_end) + 60_000));
    await renewJob();
    await env.rt.jobs.drain();
    const renewed = (await c('get', `/subscriptions/${sub.id}`).expect(200)).body;
    const all = await receipts();
    expect(all).to.have.length(2);
    const renewal = all.find((msg) => msg !== first && msg.text !== first.text)!;
    expect(renewal.text).to.include(`This payment renewed your subscription to Beans every month: €29.00 every month. It renews on ${next(renewed.current_period_end)}`);
    // A one-time payment's receipt says nothing of subscriptions.
    const oneOff = (await c('post', '/links', { type: 'amount', name: 'Tip jar', amount: 500, currency: 'EUR' }).expect(201)).body;
    const paid = await http().post(`/${m.handle}/${oneOff.path}`).type('form').send({ name: 'Jo Example', email: 'jo@example.test' }).expect(303);
    await http().post(new URL(paid.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    await env.rt.jobs.drain();
    const [tip] = (await outboxMessages(env)).filter((msg) => msg.to === 'jo@example.test');
    expect(tip.text).to.not.include('subscri');
  });

  it('offers no emailed link when email only goes to the Outbox (no SMTP_URL): the receipt says to ask the merchant', async () => {
    const m = await apiMerchant(env, 'Outbox Only Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m);
    await subscribe(url, club.id, { name: 'Lu Example', email: 'lu@example.test' });
    const [payment] = await paymentsOf(c, link.id);
    const bare = (await http().get(`/receipt/${payment.id}`).expect(200)).text;
    expect(bare).to.include('To cancel, open this receipt from the link you were given after paying, or ask Outbox Only Club.').and.not.include('email-link');
    await http().post(`/receipt/${payment.id}/email-link`).expect(404);
  });

  it('lets the customer cancel from any receipt of the subscription: asked first, renewals stop, a second cancel changes nothing', async () => {
    const m = await apiMerchant(env, 'Self Cancel Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m);
    await subscribe(url, club.id);
    const [first] = await paymentsOf(c, link.id);
    const subId = first.subscription_id;
    // A month on, a renewal: its receipt offers the cancel too.
    env.clock.set(new Date(Date.parse((await c('get', `/subscriptions/${subId}`).expect(200)).body.current_period_end) + 60_000));
    await renewJob();
    const [renewal] = await paymentsOf(c, link.id);
    expect(renewal.id).to.not.equal(first.id);
    const receipt = (await http().get(receiptPath(env, renewal.id)).expect(200)).text;
    expect(receipt).to.include(`href="${receiptPath(env, renewal.id)}&cancel=1#subscription-title">Cancel subscription</a>`);
    expect(receipt).to.not.include('cancel-subscription');
    // The payment id alone (the merchant's redirect URL, the API and webhooks carry it) cancels nothing.
    const bare = (await http().get(`/receipt/${renewal.id}?cancel=1`).expect(200)).text;
    expect(bare).to.include('It renews on').and.include('To cancel, open this receipt from the link').and.not.include('cancel-subscription').and.not.include('Cancel subscription</a>');
    await http().post(`/receipt/${renewal.id}/cancel-subscription`).expect(404);
    await http().post(`/receipt/${renewal.id}/cancel-subscription?k=${receiptPath(env, first.id).split('k=')[1]}`).expect(404); // another receipt's key
    // The link asks first: one button posts, "Keep it" goes back.
    const confirm = (await http().get(`${receiptPath(env, renewal.id)}&cancel=1`).expect(200)).text;
    expect(confirm).to.include('Cancel your subscription to Beans every month?');
    expect(confirm).to.include(`<form method="post" action="${receiptPath(env, renewal.id, 'cancel-subscription')}"`);
    expect((await c('get', `/subscriptions/${subId}`).expect(200)).body.status).to.equal('active');

    const done = await http().post(receiptPath(env, renewal.id, 'cancel-subscription')).expect(303);
    expect(done.headers.location).to.equal(`${receiptPath(env, renewal.id)}&canceled=1#subscription-title`);
    const canceled = (await c('get', `/subscriptions/${subId}`).expect(200)).body;
    expect([canceled.status, canceled.canceled_by, canceled.canceled_at]).to.deep.equal(['canceled', 'customer', env.clock.now().toISOString()]);
    const after = (await http().get(done.headers.location).expect(200)).text;
    expect(after).to.include('Your subscription is canceled. Self Cancel Club will not charge you for it again.');
    expect(after).to.not.include('Cancel subscription</a>');
    // The first payment's receipt: canceled, nothing to cancel, and the confirmation is not offered again.
    const firstReceipt = (await http().get(`${receiptPath(env, first.id)}&cancel=1`).expect(200)).text;
    expect(firstReceipt).to.include('you will not be charged again');
    expect(firstReceipt).to.not.include('cancel-subscription');
    // A second cancel (a double submit, the other receipt) changes nothing and emits nothing.
    await http().post(receiptPath(env, first.id, 'cancel-subscription')).expect(303);
    const events = (await env.rt.db('events').where({ type: 'subscription.canceled' }).select('payload')).map((e: any) => JSON.parse(e.payload)).filter((p: any) => p.subscriptionId === subId);
    expect(events.map((p: any) => p.canceledBy)).to.deep.equal(['customer']);
    // No renewal after it.
    env.clock.advance(60 * DAY);
    await renewJob();
    expect(await paymentsOf(c, link.id)).to.have.length(2);
    // Only a subscription's payment can cancel one; an unknown or malformed id is the receipt's 404.
    const oneOff = (await c('post', '/links', { type: 'amount', name: 'Tip jar', amount: 500, currency: 'EUR' }).expect(201)).body;
    const paid = await http().post(`/${m.handle}/${oneOff.path}`).type('form').send(CUSTOMER).expect(303);
    await http().post(new URL(paid.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    const [tip] = await paymentsOf(c, oneOff.id);
    expect((await http().get(receiptPath(env, tip.id)).expect(200)).text).to.not.include('Cancel subscription');
    await http().post(receiptPath(env, tip.id, 'cancel-subscription')).expect(404);
    await http().post('/receipt/pay_0000000000000000000000/cancel-subscription').expect(404);
    await http().post('/receipt/nope/cancel-subscription').expect(404);
  });

  it('records a renewal once when the same invoice is reported many times at once, and moves the period once', async function () {
    this.timeout(60_000);
    const m = await apiMerchant(env, 'Race Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m);
    await subscribe(url, club.id);
    const [first] = await paymentsOf(c, link.id);
    const sub = (await env.rt.services.subscriptions.get(first.subscription_id))!;
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => env.rt.services.subscriptions.renewed(sub, { invoiceRef: 'in_race_1' })));
    expect(new Set(outcomes.map((o) => o.paymentId)).size).to.equal(1);
    expect(outcomes.filter((o) => o.created)).to.have.length(1);
    expect(await paymentsOf(c, link.id)).to.have.length(2);
    const after = (await env.rt.services.subscriptions.get(sub.id))!;
    expect(after.currentPeriodEnd.toISOString()).to.equal(addInterval(sub.currentPeriodEnd, 'month', 1).toISOString());
    const renewedEvents = (await env.rt.db('events').where({ type: 'subscription.renewed' }).select('payload')).filter((e: any) => JSON.parse(e.payload).subscriptionId === sub.id);
    expect(renewedEvents).to.have.length(1);
  });

  it('negative control: a read-check-write renewal records the same invoice more than once at the same concurrency', async function () {
    if (target.name !== 'mariadb') return this.skip(); // SQLite serialises the writers: the race cannot show there
    this.timeout(60_000);
    const m = await apiMerchant(env, 'Naive Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m);
    await subscribe(url, club.id);
    const [first] = await paymentsOf(c, link.id);
    const db = env.rt.db;
    const { id: _key, public_id: _id, renewal_key: _renewalKey, ...template } = await db('payments').where({ public_id: first.id }).first();
    /** What the renewal must not do: look for the invoice's payment, then write one (no unique key to stop a twin). */
    async function naiveRenewal(): Promise<void> {
      const seen = await db('payments').where({ link_id: template.link_id, provider_ref: 'in_naive' }).first('id');
      await new Promise((r) => setImmediate(r));
      if (seen) return;
      await db('payments').insert({ ...template, public_id: `pay_naive${Math.random().toString(36).slice(2, 15)}`, provider_ref: 'in_naive', checkout_session_id: null });
    }
    await Promise.all(Array.from({ length: 12 }, () => naiveRenewal()));
    const n = Number(((await db('payments').where({ provider_ref: 'in_naive' }).count({ n: '*' }).first()) as { n: number | string }).n);
    expect(n, 'the naive renewal must double-record, or this test could not catch it').to.be.above(1);
  });

  it('starts a free trial: the one-time items today, the plan first charged when the trial ends', async () => {
    const m = await apiMerchant(env, 'Trial Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m, { payment_limit: 5 }, { interval: 'month', trial_days: 14 });
    // The page says what is due today and what follows.
    const page = (await http().post(url).type('form').send({ plan: club.id, step: 'update' }).expect(200)).text;
    expect(page).to.include('Then €29.00 every month after the 14-day free trial, until canceled.');
    expect(page).to.match(/Due today<\/span> <span class="amount-value">€15\.00</);
    await subscribe(url, club.id);
    const [first] = await paymentsOf(c, link.id);
    expect([first.amount, first.status]).to.deep.equal([1500, 'paid']);
    expect(first.line_items.map((l: any) => [l.description, l.unit_amount])).to.deep.equal([['Beans every month (14-day free trial)', 0], ['Welcome kit', 1500]]);
    const sub = (await c('get', `/subscriptions/${first.subscription_id}`).expect(200)).body;
    expect(sub).to.include({ status: 'trialing', amount: 2900 });
    expect(sub.current_period_end).to.equal(new Date(Date.parse(first.paid_at) + 14 * DAY).toISOString());
    expect((await http().get(`/receipt/${first.id}`).expect(200)).text).to.include('14-day free trial ends on');
    expect((await linkOf(c, link.id)).paid_count).to.equal(1);
    // The trial ends: the plan's first charge, a month's period from there.
    env.clock.set(new Date(Date.parse(sub.current_period_end) + 1000));
    await renewJob();
    const after = await paymentsOf(c, link.id);
    expect(after.map((p) => p.amount)).to.deep.equal([2900, 1500]);
    const active = (await c('get', `/subscriptions/${sub.id}`).expect(200)).body;
    expect(active.status).to.equal('active');
    expect(active.current_period_end).to.equal(addInterval(new Date(sub.current_period_end), 'month', 1).toISOString());
  });

  it('takes an amount the customer adds (a donation) with a trial plan: charged today with the one-time items, never renewed', async () => {
    const m = await apiMerchant(env, 'Donating Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m, { custom_amount: { min: 0, label: 'Donation' } }, { interval: 'month', trial_days: 14 });
    const page = (await http().post(url).type('form').send({ plan: club.id, amount_other: '5', step: 'update' }).expect(200)).text;
    expect(page).to.match(/Due today<\/span> <span class="amount-value">€20\.00</);
    expect(page).to.include('Then €29.00 every month after the 14-day free trial, until canceled.');
    const res = await http().post(url).type('form').send({ ...CUSTOMER, plan: club.id, amount_other: '5' });
    expect(res.status, res.text.slice(0, 800)).to.equal(303);
    await http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    const [first] = await paymentsOf(c, link.id);
    expect(first.amount).to.equal(2000);
    expect(first.line_items.map((l: any) => [l.description, l.unit_amount])).to.deep.equal([['Beans every month (14-day free trial)', 0], ['Welcome kit', 1500], ['Donation', 500]]);
    const sub = (await c('get', `/subscriptions/${first.subscription_id}`).expect(200)).body;
    expect(sub.amount, 'renewals charge the plan alone').to.equal(2900);
  });

  it('takes a coupon off the one-time items of a subscription order only: the plan is billed at its price, today and at renewal', async () => {
    const m = await apiMerchant(env, 'Coupon Club');
    const c = apiClient(env.app, m.secret);
    const { club, link, url } = await planLink(c, m, { allow_coupons: true });
    await c('post', '/coupons', { code: 'TENOFF', percent_off: 10 }).expect(201);
    await c('post', '/coupons', { code: 'BIG', amount_off: 5000, currency: 'EUR' }).expect(201);
    // Apply: 10 % of the welcome kit (€1.50), the plan's €29.00 on top.
    const applied = (await http().post(url).type('form').send({ plan: club.id, coupon: 'TENOFF', apply: '1' }).expect(200)).text;
    expect(applied).to.match(/New total<\/dt><dd>€42\.50</);
    for (const [code, amount] of [['TENOFF', 4250], ['BIG', 2900]] as const) {
      const res = await http().post(url).type('form').send({ ...CUSTOMER, email: `${code.toLowerCase()}@example.test`, plan: club.id, coupon: code });
      expect(res.status, [...res.text.matchAll(/class="error"[^>]*>([^<]+)</g)].map((x) => x[1]).join(' | ')).to.equal(303);
      await http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
      const [p] = await paymentsOf(c, link.id);
      expect([p.amount, code], 'charged today').to.deep.equal([amount, code]);
      const sub = (await c('get', `/subscriptions/${p.subscription_id}`).expect(200)).body;
      expect(sub.amount, 'renews at the plan’s price').to.equal(2900);
    }
    // A plan alone has nothing one-time to take money off: said by the coupon field, nothing written.
    const alone = await c('post', '/links', { type: 'items', name: 'Plan only', allow_coupons: true, items: [{ product_id: club.id, quantity: 1 }] }).expect(201);
    const before = (await paymentsOf(c, alone.body.id)).length;
    const refused = await http().post(`/${m.handle}/${alone.body.path}`).type('form').send({ ...CUSTOMER, coupon: 'TENOFF' });
    expect(refused.status).to.equal(422);
    expect(/id="f-coupon-error">([^<]*)</.exec(refused.text)![1]).to.include('a subscription is billed at its price');
    expect((await paymentsOf(c, alone.body.id)).length).to.equal(before);
  });

  it('starts a trial that charges nothing today (a plan alone): a €0 payment claims the subscriber’s slot', async () => {
    const m = await apiMerchant(env, 'Free Trial Only');
    const c = apiClient(env.app, m.secret);
    const plan = await product(c, { name: 'Pro', price: 9000, recurring: { interval: 'year', trial_days: 30 } });
    const link = (await c('post', '/links', { type: 'items', name: 'Pro plan', items: [{ product_id: plan.id, quantity: 1 }], payment_limit: 1 }).expect(201)).body;
    await subscribe(`/${m.handle}/${link.path}`, plan.id);
    const [first] = await paymentsOf(c, link.id);
    expect([first.amount, first.status]).to.deep.equal([0, 'paid']);
    const l = await linkOf(c, link.id);
    expect([l.paid_count, l.active, l.stats.revenue]).to.deep.equal([1, false, 0]);
    env.clock.advance(31 * DAY);
    await renewJob();
    expect((await paymentsOf(c, link.id)).map((p) => p.amount)).to.deep.equal([9000, 0]);
  });
});

forEachTarget('subscriptions: only providers that bill them take a plan', (target) => {
  let env: TestEnv;
  const inline = (def: ReturnType<typeof definePlugin>): PluginSource => ({ source: `inline:${def.id}`, builtin: false, load: async () => ({ default: def }) });
  /** A provider without the subscriptions capability (one-time payments only). */
  const oneOff = definePlugin({
    id: 'provider-oneoff',
    version: '1.0.0',
    apiVersion: 1,
    register: (api) =>
      api.providers.register({ id: 'oneoff', name: 'One-off', methodLabel: 'Bank transfer', enabledByDefault: true, start: async () => ({ redirect: `${api.baseUrl}/nowhere` }), capture: async () => {}, void: async () => {}, refund: async () => {} }),
  });
  before(async () => {
    env = await build(target, { pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), inline(oneOff)] });
  });
  after(() => env?.close());
  const http = () => supertest(env.app);
  const count = async () => Number(((await env.rt.db('payments').count({ n: '*' }).first()) as { n: number | string }).n);

  it('refuses a plan by its field when no method bills subscriptions, and refuses a method that does not', async () => {
    const m = await apiMerchant(env, 'Mixed Methods');
    const c = apiClient(env.app, m.secret);
    const club = (await c('post', '/products', { name: 'Club', price: 2900, currency: 'EUR', recurring: { interval: 'month' } }).expect(201)).body;
    const kit = (await c('post', '/products', { name: 'Kit', price: 1500, currency: 'EUR' }).expect(201)).body;
    const link = (await c('post', '/links', { type: 'items', name: 'Club', items: [{ product_id: club.id, quantity: 1 }, { product_id: kit.id, quantity: 1 }] }).expect(201)).body;
    const url = `/${m.handle}/${link.path}`;
    const before = await count();
    // Sandbox and One-off: a plan with One-off is refused by the method's field.
    const wrong = await http().post(url).type('form').send({ ...CUSTOMER, plan: club.id, provider: 'oneoff' }).expect(422);
    expect(/id="f-provider-error">([^<]*)</.exec(wrong.text)![1]).to.include('cannot pay subscriptions');
    // One-off alone: the page says subscriptions cannot be paid here, and a plan is refused by its field.
    await c('patch', '/providers/sandbox', { enabled: false }).expect(200);
    const page = (await http().get(url).expect(200)).text;
    expect(page).to.include('Subscriptions cannot be paid online here yet');
    const res = await http().post(url).type('form').send({ ...CUSTOMER, plan: club.id }).expect(422);
    expect(/id="plan-error">([^<]*)</.exec(res.text)![1]).to.include('Subscriptions cannot be paid online here yet');
    expect(await count()).to.equal(before);
    // "No plan" still pays the one-time items with One-off.
    const once = await http().post(url).type('form').send({ ...CUSTOMER, plan: '' });
    expect([once.status, once.headers.location]).to.deep.equal([303, `${env.rt.config.baseUrl}/nowhere`]);
  });
});
