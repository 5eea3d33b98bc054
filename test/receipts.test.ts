/**
 * Receipts by email: after a successful payment the payer gets one `receipt` email (the email
 * channel) with their receipt link — from payment.succeeded through the outbox, once per payment
 * even when the event is handled again — unless the merchant turned receipts off or there is no
 * address. The template is edited like the others; the message shows in the customer's history.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { outboxMessages } from './support/channels.ts';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { OutgoingMessage } from '../src/plugin-api.ts';

forEachTarget('receipts by email', (target) => {
  const env = useEnv(target);
  let n = 0;
  beforeEach(() => (n += 1));

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const receiptsTo = async (email: string) => (await outboxMessages(env)).filter((m) => m.to === email && /receipt/i.test(m.subject ?? ''));
  const receiptDeliveries = async (merchantKey: number) => env.rt.db('deliveries').where({ merchant_id: merchantKey, kind: 'receipt' }).orderBy('id');

  /** Pays `url` on the pay page and the sandbox card page as a customer would; answers the payment id. */
  async function pay(url: string, payer: { name: string; email: string }, fields: Record<string, string> = {}): Promise<string> {
    const started = await supertest(env.app).post(url).type('form').send({ ...payer, ...fields });
    expect(started.status, started.text.slice(0, 300)).to.equal(303);
    const paid = await supertest(env.app).post(new URL(started.headers.location).pathname).type('form').send({ card_number: '4242424242424242' });
    expect(paid.status).to.equal(303);
    const id = new URL(paid.headers.location).pathname.split('/').pop()!;
    await env.rt.jobs.drain();
    return id;
  }

  it('emails the payer one receipt with the receipt link — once, even when the event is handled again', async () => {
    const acct = await signUp(env.app, { name: 'Corner Bakery' });
    const m = await merchantOf(acct);
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Birthday cake', amount: 1250 });
    const email = `ann${n}@example.test`;
    // The Outbox keeps a message's text, not its HTML: read the HTML as the email channel is handed it.
    const channel = env.rt.registries.channels.get('email')!;
    const sendMany = channel.sendMany!;
    const handed: OutgoingMessage[] = [];
    channel.sendMany = (messages) => {
      handed.push(...messages);
      return sendMany.call(channel, messages);
    };
    let paymentId: string;
    try {
      paymentId = await pay(`/${m.handle}/${link.path}`, { name: 'Ann Example', email: `Ann${n}@Example.test` });
    } finally {
      channel.sendMany = sendMany;
    }

    const [msg, ...more] = await receiptsTo(email);
    expect(more, 'one receipt').to.deep.equal([]);
    expect(msg.channel).to.equal('email');
    expect(msg.subject).to.equal('Your receipt from Corner Bakery');
    const receiptUrl = env.rt.services.checkout.receiptUrl({ id: paymentId });
    expect(receiptUrl).to.match(new RegExp(`^${env.rt.config.baseUrl}/receipt/${paymentId}\\?k=[\\w-]{22}$`));
    expect(msg.text).to.include('Hi Ann,').and.include('€12.50').and.include('Birthday cake').and.include(`View your receipt: ${receiptUrl}`);
    expect(handed.find((h) => h.id === msg.messageId)?.html).to.include(`href="${receiptUrl}"`).and.include('View your receipt');
    const [row] = await receiptDeliveries(m.key);
    const payment = await env.rt.db('payments').where({ public_id: paymentId }).first();
    expect([row.status, row.channel, row.to_address, Number(row.payment_id), Number(row.link_id), Number(row.customer_id)]).to.deep.equal(['sent', 'email', email, Number(payment.id), link.key, Number(payment.customer_id)]);

    // payment.succeeded dispatched and its handlers run again: nothing new is written or sent.
    const event = (await env.rt.db('events').where({ type: 'payment.succeeded' }).orderBy('id', 'desc').first()) as { public_id: string; payload: string };
    expect(JSON.parse(event.payload).paymentId).to.equal(paymentId);
    const hooks = (await env.rt.db('jobs').where({ kind: 'hooks.run' }).andWhere('unique_key', 'like', `hook:${event.public_id}:%`)) as { payload: string }[];
    expect(hooks.map((h) => JSON.parse(h.payload).subscriptionId)).to.include('core:receipts');
    await env.rt.jobs.enqueue(env.rt.db, 'events.dispatch', { eventId: event.public_id });
    for (const h of hooks) await env.rt.jobs.enqueue(env.rt.db, 'hooks.run', JSON.parse(h.payload));
    await env.rt.jobs.drain();
    expect(await receiptDeliveries(m.key)).to.have.length(1);
    expect(await receiptsTo(email)).to.have.length(1);

    // The customer's and the link's message history show it as "Receipt".
    const customerId = (await env.rt.db('customers').where({ id: payment.customer_id }).first()).public_id;
    const customerPage = await acct.agent.get(`/app/customers/${customerId}`).expect(200);
    expect(customerPage.text).to.match(/<td data-label="Message"><span class="cell-stack">Receipt<span class="muted small">to ann\d+@example\.test/);
    const linkPage = await acct.agent.get(`/app/links/${link.id}/deliveries`).expect(200);
    expect(linkPage.text).to.include('Receipt');
  });

  it('sends a receipt for a payment on the open-amount page, which has no link', async () => {
    const acct = await signUp(env.app, { name: 'Open Shop' });
    const m = await merchantOf(acct);
    const paymentId = await pay(`/${m.handle}`, { name: 'Bo Berg', email: `bo${n}@example.test` }, { amount: '7.50' });
    const [msg] = await receiptsTo(`bo${n}@example.test`);
    expect(msg.text).to.include('€7.50').and.include('Payment to Open Shop').and.include(`/receipt/${paymentId}`);
    const [row] = await receiptDeliveries(m.key);
    expect([row.status, row.link_id]).to.deep.equal(['sent', null]);
    const customerId = (await env.rt.db('customers').where({ id: row.customer_id }).first()).public_id;
    const page = await acct.agent.get(`/app/customers/${customerId}`).expect(200);
    expect(page.text).to.include('<span class="muted">Payment page</span>');
  });

  it('sends none when the merchant turned receipts off in Settings, and sends again once on', async () => {
    const acct = await signUp(env.app, { name: 'Quiet Shop' });
    let m = await merchantOf(acct);
    expect(m.sendReceipts, 'on by default').to.equal(true);
    const page = await acct.agent.get('/app/settings/templates').expect(200);
    expect(page.text).to.match(/<input type="checkbox" name="send_receipts" value="on" checked>/);
    await acct.agent.post('/app/settings/receipts').type('form').send({ _csrf: acct.csrf }).expect(303);
    m = await merchantOf(acct);
    expect(m.sendReceipts).to.equal(false);
    expect((await acct.agent.get('/app/settings/templates').expect(200)).text).to.match(/<input type="checkbox" name="send_receipts" value="on">/);

    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Tea', amount: 300 });
    await pay(`/${m.handle}/${link.path}`, { name: 'Cy Cook', email: `cy${n}@example.test` });
    expect(await receiptDeliveries(m.key)).to.deep.equal([]);
    expect(await receiptsTo(`cy${n}@example.test`)).to.deep.equal([]);
    // Not even a run of the receipts handler was queued for the payment (the dispatch asked first).
    const receiptRuns = async () => {
      const events = (await env.rt.db('events').where({ type: 'payment.succeeded', merchant_id: m.key }).select('public_id')) as { public_id: string }[];
      return env.rt.db('jobs').whereIn('unique_key', events.map((e) => `hook:${e.public_id}:core:receipts`));
    };
    expect(await receiptRuns()).to.deep.equal([]);

    await acct.agent.post('/app/settings/receipts').type('form').send({ _csrf: acct.csrf, send_receipts: 'on' }).expect(303);
    await pay(`/${m.handle}/${link.path}`, { name: 'Cy Cook', email: `cy${n}@example.test` });
    expect(await receiptsTo(`cy${n}@example.test`)).to.have.length(1);
    expect(await receiptRuns()).to.have.length(1);
    // Without the CSRF token nothing changes.
    await acct.agent.post('/app/settings/receipts').type('form').send({}).expect(403);
    expect((await merchantOf(acct)).sendReceipts).to.equal(true);
  });

  it('sends none for a payment without an email address, or one that did not succeed', async () => {
    const acct = await signUp(env.app, { name: 'No Mail Shop' });
    const m = await merchantOf(acct);
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Bread', amount: 400 });
    const { payment } = await env.rt.services.checkout.start(m, link, { amount: 400, currency: 'EUR', name: 'Di Diner', email: null });
    expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_x')).status).to.equal('paid');
    const { payment: declined } = await env.rt.services.checkout.start(m, link, { amount: 400, currency: 'EUR', name: 'Ed', email: `ed${n}@example.test` });
    await env.rt.services.checkout.decline(declined.id, { code: 'card_declined', message: 'Declined' });
    await env.rt.jobs.drain();
    expect(await receiptDeliveries(m.key)).to.deep.equal([]);
  });

  it('uses the merchant’s own receipt template, edited and previewed like the others; receipts are email only', async () => {
    const acct = await signUp(env.app, { name: 'Acme Yoga' });
    const page = await acct.agent.get('/app/settings/templates').expect(200);
    expect(page.text).to.include('id="tpl-receipt-email"').and.include('Receipt · Email');
    expect(page.text).not.to.include('id="tpl-receipt-sms"');
    const preview = await acct.agent.post('/app/settings/templates/preview').set('HX-Request', 'true').type('form').send({ _csrf: acct.csrf, kind: 'receipt', channel: 'email', subject: 'Thanks, {{first_name}}', body: 'Paid {{amount}}.' }).expect(200);
    expect(preview.text).to.include('Thanks, Jane');
    const frame = await acct.agent.get('/app/settings/templates/preview.html').query({ kind: 'receipt', channel: 'email', subject: 'Thanks', body: 'Paid {{amount}}.' }).expect(200);
    expect(frame.text).to.include('View your receipt').and.include('/receipt/pay_');

    await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'receipt', channel: 'sms', body: 'Paid {{amount}}' }).expect(422);
    await acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, kind: 'receipt', channel: 'email', subject: 'Thanks for your payment, {{first_name}}', body: 'We received {{amount}} for {{link_name}}.' }).expect(303);
    const m = await merchantOf(acct);
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Yoga class', amount: 1500 });
    await pay(`/${m.handle}/${link.path}`, { name: 'Fay Fit', email: `fay${n}@example.test` });
    const [msg] = (await outboxMessages(env)).filter((x) => x.to === `fay${n}@example.test`);
    expect(msg.subject).to.equal('Thanks for your payment, Fay');
    expect(msg.text).to.include('We received €15.00 for Yoga class.');
  });
});
