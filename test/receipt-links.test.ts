/**
 * A customer who opens a subscription's receipt by its payment id alone (as a merchant's redirect
 * URL or a webhook names it) cannot cancel there, but can have the keyed receipt link emailed again
 * — through a real SMTP server, to the address the payment was made with, three times an hour.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant } from './support/api.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';

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
});
