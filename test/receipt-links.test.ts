/**
 * A customer who opens a subscription's receipt by its payment id alone (as a merchant's redirect
 * URL or a webhook names it) cannot cancel there, but can have the keyed receipt link emailed again
 * — through a real SMTP server, to the address the payment was made with, three times an hour. The
 * same for a card saved with the payment (through the fake Stripe): the bare receipt says one is
 * saved, not which, and the emailed link shows it and forgets it.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant } from './support/api.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { stripeShop, useStripeApp } from './support/stripe-app.ts';

forEachTarget('receipt links by email', (target) => {
  let smtp: TestSmtp;
  let env: TestEnv;
  const http = () => supertest(env.app);
  before(async () => {
    smtp = await startSmtp();
    env = await build(target, { env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@club.test' } });
  });
  after(async () => {
    await env?.close();
    await smtp?.close();
  });

  it('emails the keyed receipt link to the address paid with (three times an hour), only for a subscription', async () => {
    const m = await apiMerchant(env, 'Lost Link Club');
    const c = apiClient(env.app, m.secret);
    const plan = (await c('post', '/products', { name: 'Beans every month', price: 2900, currency: 'EUR', recurring: { interval: 'month' } }).expect(201)).body;
    const link = (await c('post', '/links', { type: 'items', name: 'Coffee club', items: [{ product_id: plan.id, quantity: 1 }] }).expect(201)).body;
    const who = { name: 'Lu Example', email: 'lu@example.test' };
    const started = await http().post(`/${m.handle}/${link.path}`).type('form').send({ ...who, plan: plan.id }).expect(303);
    await http().post(new URL(started.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    await env.rt.jobs.drain();
    const [payment] = (await c('get', `/payments?link_id=${link.id}`).expect(200)).body.data;
    const mails = () => smtp.messages.filter((mail) => mail.envelope.to.includes(who.email));
    const before = mails().length;
    expect(before, 'the receipt sent after paying').to.equal(1);

    const bare = (await http().get(`/receipt/${payment.id}`).expect(200)).text;
    expect(bare).to.include(`<form method="post" action="/receipt/${payment.id}/email-link">`).and.not.include('Cancel subscription</a>');
    const asked = await http().post(`/receipt/${payment.id}/email-link`).expect(303);
    expect(asked.headers.location).to.equal(`/receipt/${payment.id}?emailed=1#subscription-title`);
    expect((await http().get(asked.headers.location).expect(200)).text).to.include('is on its way to the email address you paid with');
    await env.rt.jobs.drain();
    expect(mails()).to.have.length(before + 1);
    const keyed = /View your receipt: (\S+)/.exec(mails()[before].text ?? '')![1];
    expect(keyed).to.equal(env.rt.services.checkout.receiptUrl({ id: payment.id }));
    expect((await http().get(new URL(keyed).pathname + new URL(keyed).search).expect(200)).text).to.include('Cancel subscription</a>');

    // Three an hour per payment; then 429 with Retry-After, and nothing more is sent.
    await http().post(`/receipt/${payment.id}/email-link`).expect(303);
    await http().post(`/receipt/${payment.id}/email-link`).expect(303);
    const over = await http().post(`/receipt/${payment.id}/email-link`).expect(429);
    expect(over.headers['retry-after']).to.match(/^\d+$/);
    expect(over.text).to.include('The link was asked for too many times. Try again in');
    await env.rt.jobs.drain();
    expect(mails()).to.have.length(before + 3);

    // Only a subscription's receipt offers it.
    const oneOff = (await c('post', '/links', { type: 'amount', name: 'Tip jar', amount: 500, currency: 'EUR' }).expect(201)).body;
    const paid = await http().post(`/${m.handle}/${oneOff.path}`).type('form').send(who).expect(303);
    await http().post(new URL(paid.headers.location).pathname).type('form').send({ card_number: '4242 4242 4242 4242' }).expect(303);
    const [tip] = (await c('get', `/payments?link_id=${oneOff.id}`).expect(200)).body.data;
    expect((await http().get(`/receipt/${tip.id}`).expect(200)).text).to.not.include('email-link');
    await http().post(`/receipt/${tip.id}/email-link`).expect(404);
  });

  describe('a card saved with the payment', () => {
    let mailbox: TestSmtp;
    before(async () => {
      mailbox = await startSmtp();
    });
    after(async () => {
      await mailbox?.close();
    });
    const app = useStripeApp(target, { env: () => ({ SMTP_URL: mailbox.url, MAIL_FROM: 'pay@pottery.test' }) });

    it('the receipt without its key says a card is saved (not which) and emails the link; that link shows the card and forgets it', async () => {
      const { env: shopEnv, fake } = app;
      const web = () => supertest(shopEnv.app);
      const s = await stripeShop(app);
      const ada = { name: 'Ada Lovelace', email: 'ada@example.test' };
      const customer = (await s.call('post', '/customers', ada).expect(201)).body;
      const link = await shopEnv.rt.services.links.create(s.merchant, { type: 'amount', name: 'Pottery class', amount: 3900 });
      const started = await web().post(`/${s.merchant.handle}/${link.path}?c=${encodeURIComponent(shopEnv.rt.tokens.recipient(customer.id))}`).type('form').send(ada).expect(303);
      const session = fake.sessions.get(new URL(started.headers.location).pathname.split('/').pop()!)!;
      const paymentId = session.client_reference_id as string;
      expect((await fake.pay(session.id, '4242 4242 4242 4242', { save: true })).status).to.equal(303);
      await shopEnv.rt.jobs.drain();
      const mails = () => mailbox.messages.filter((mail) => mail.envelope.to.includes(ada.email));
      const before = mails().length;
      expect(before, 'the receipt sent after paying').to.equal(1);

      const bare = (await web().get(`/receipt/${paymentId}`).expect(200)).text;
      expect(bare).to.include('A card you paid with is saved with').and.include(`<form method="post" action="/receipt/${paymentId}/email-link">`);
      expect(bare).not.to.include('<strong>Visa •••• 4242</strong> is saved').and.not.include('forget-card');
      const asked = await web().post(`/receipt/${paymentId}/email-link`).expect(303);
      expect(asked.headers.location).to.equal(`/receipt/${paymentId}?emailed=1#saved-title`);
      expect((await web().get(asked.headers.location).expect(200)).text).to.include('where you can see or forget it, is on its way to the email address you paid with');
      await shopEnv.rt.jobs.drain();
      expect(mails()).to.have.length(before + 1);
      const keyed = new URL(/View your receipt: (\S+)/.exec(mails()[before].text ?? '')![1]);
      const managed = (await web().get(keyed.pathname + keyed.search).expect(200)).text;
      expect(managed).to.include('<strong>Visa •••• 4242</strong> is saved').and.include(`action="/receipt/${paymentId}/forget-card?k=`).and.not.include('email-link');

      await web().post(`/receipt/${paymentId}/forget-card${keyed.search}`).type('form').send({}).expect(303);
      // Nothing left to manage: no offer, and the route refuses.
      expect((await web().get(`/receipt/${paymentId}`).expect(200)).text).not.to.include('Saved for next time').and.not.include('email-link');
      await web().post(`/receipt/${paymentId}/email-link`).expect(404);
      await shopEnv.rt.jobs.drain();
      expect(mails()).to.have.length(before + 1);
    });
  });
});
