/**
 * Text-to-Pay: an amount texted to one customer as a one-off, single-use payment request
 * (`/r/<signed token>`), paid through the real pay page and checkout, naming the customer.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { apiMerchant, type ApiMerchant } from './support/api.ts';
import { build, type TestEnv } from './support/harness.ts';
import type { Customer } from '../src/features/customers/service.ts';

const DAY = 86_400_000;

/** The SMS that channel-outbox kept for a delivery. */
async function smsFor(env: TestEnv, deliveryId: string): Promise<{ channel: string; to: string; text: string }> {
  const rows = (await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).orderBy('id')) as { data: string }[];
  const found = rows.map((r) => JSON.parse(r.data)).filter((m) => m.messageId === deliveryId);
  expect(found, `outbox messages for ${deliveryId}`).to.have.length(1);
  return found[0];
}

async function validationFields(p: Promise<unknown>): Promise<[string, string][]> {
  try {
    await p;
  } catch (err) {
    const e = err as { status?: number; errors?: { field: string; code: string }[] };
    expect(e.status, String(err)).to.equal(422);
    return e.errors!.map((x) => [x.field, x.code]);
  }
  throw new Error('expected a 422');
}

forEachTarget('Text-to-Pay', (target) => {
  let env: TestEnv;
  let shop: ApiMerchant;
  let stranger: ApiMerchant;
  let jane: Customer;

  before(async () => {
    env = await build(target);
    env.clock.set('2026-03-02T09:00:00Z');
    shop = await apiMerchant(env, 'Acme Yoga');
    stranger = await apiMerchant(env, 'Other Shop');
    jane = await env.rt.services.customers.create(shop.merchant.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' });
  });
  after(() => env?.close());

  const pathOf = (url: string) => new URL(url).pathname;

  it('texts a single-use payment request for €12.50 that names the customer when paid, then shows its receipt', async () => {
    const { link, url, deliveryId, requestId } = await env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount: 1250 });
    expect(link.kind).to.equal('request');
    expect(url).to.match(/^http:\/\/pay\.test\/r\/[A-Za-z0-9_-]{23}$/);
    const request = await env.rt.services.requests.get(shop.merchant.key, requestId);
    expect(request).to.deep.include({ source: 'text_to_pay', status: 'pending' });
    expect(env.rt.services.requests.urlOf(request)).to.equal(url);
    await env.rt.jobs.drain();
    const sms = await smsFor(env, deliveryId);
    expect(sms).to.include({ channel: 'sms', to: '+31612345678' });
    expect(sms.text).to.match(/^Hi Jane, /).and.include('€12.50').and.include(url);
    const d = await env.rt.services.deliveries.get(shop.merchant.key, deliveryId);
    expect(d).to.include({ status: 'sent', channel: 'sms', kind: 'initial', customerId: jane.id });

    const page = await supertest(env.app).get(pathOf(url)).expect(200);
    expect(page.text).to.include('€12.50');
    expect(page.text).to.include(`action="${pathOf(url)}"`);

    const post = await supertest(env.app).post(pathOf(url)).type('form').send({ name: 'Jane Doe', email: 'jane@example.test' });
    expect(post.status, post.text.slice(0, 300)).to.equal(303);
    const pending = await env.rt.db('payments').where({ link_id: link.key, status: 'pending' }).first();
    expect(pending, 'a pending payment').to.not.equal(undefined);
    expect(Number(pending.amount)).to.equal(1250);
    expect(pending.customer_id).to.equal(jane.key);
    const outcome = await env.rt.services.checkout.authorize(pending.public_id, `sbx_${pending.public_id}`);
    expect(outcome.status).to.equal('paid');
    await env.rt.jobs.drain();

    // Single use: paid once; the URL shows the receipt from then on, and a second checkout is not taken.
    const receipt = `/receipt/${pending.public_id}`;
    expect((await supertest(env.app).get(pathOf(url)).expect(302)).headers.location).to.equal(receipt);
    const again = await supertest(env.app).post(pathOf(url)).type('form').send({ name: 'Jane Doe', email: 'jane@example.test' });
    expect([again.status, again.headers.location]).to.deep.equal([303, receipt]);
    expect((await env.rt.services.requests.get(shop.merchant.key, requestId)).status).to.equal('paid');
    expect(await env.rt.db('payments').where({ link_id: link.key }).count({ n: '*' }).then((r) => Number(r[0].n))).to.equal(1);
  });

  it('answers 404 for a tampered token, and 410 naming the merchant once the request expired', async () => {
    const { url } = await env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount: 990, description: 'Yoga mat' });
    const path = pathOf(url);
    await supertest(env.app).get(path).expect(200);
    const last = path.at(-1)!;
    const tampered = path.slice(0, -1) + (last === 'A' ? 'B' : 'A');
    await supertest(env.app).get(tampered).expect(404);
    const mid = path.length - 15;
    await supertest(env.app).get(path.slice(0, mid) + (path[mid] === 'x' ? 'y' : 'x') + path.slice(mid + 1)).expect(404);
    // One request's random part with another's MAC: still not found.
    const other = await env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount: 100 });
    const mine = path.split('/r/')[1];
    const theirs = pathOf(other.url).split('/r/')[1];
    await supertest(env.app).get(`/r/${mine.slice(0, 11)}${theirs.slice(11)}`).expect(404);
    await supertest(env.app).post(tampered).type('form').send({ name: 'X', email: 'x@example.test' }).expect(404);

    env.clock.advance(29 * DAY);
    await supertest(env.app).get(path).expect(200);
    env.clock.advance(2 * DAY);
    const gone = await supertest(env.app).get(path).expect(410);
    expect(gone.text).to.include('This payment request expired').and.include('Yoga mat');
    await supertest(env.app).post(path).type('form').send({ name: 'Jane Doe', email: 'jane@example.test' }).expect(410);
  });

  it('still opens a request link texted before payment requests (/r/lnk_….<mac>)', async () => {
    const made = await env.rt.db.transaction((trx) =>
      env.rt.services.links.createRequest(trx, shop.merchant, { name: 'Old request', description: null, amount: 700, currency: 'EUR', customerKey: jane.key, expiresAt: new Date(env.clock.now().getTime() + DAY), by: { source: 'text_to_pay' } }),
    );
    const page = await supertest(env.app).get(`/r/${env.rt.tokens.request(made.id)}`).expect(200);
    expect(page.text).to.include('Old request').and.include('€7.00');
    const token = env.rt.tokens.request(made.id);
    await supertest(env.app).get(`/r/${token.slice(0, -1)}${token.endsWith('x') ? 'y' : 'x'}`).expect(404);
  });

  it('refuses a customer without a phone (phone) and a bad amount (amount), writing nothing', async () => {
    const nophone = await env.rt.services.customers.create(shop.merchant.key, { name: 'Nora Nophone', email: 'nora@example.test' });
    const links = Number((await env.rt.db('links').count({ n: '*' }))[0].n);
    const deliveries = Number((await env.rt.db('deliveries').count({ n: '*' }))[0].n);
    expect(await validationFields(env.rt.services.sending.textToPay(shop.merchant, nophone.id, { amount: 1000 }))).to.deep.equal([['phone', 'no_phone']]);
    for (const amount of [0, -1, 'x', 12.5, null]) {
      expect(await validationFields(env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount })), String(amount)).to.deep.equal([['amount', 'invalid_amount']]);
    }
    // Over the currency's ceiling (core/money.ts maxAmount): said as such.
    expect(await validationFields(env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount: 1e15 }))).to.deep.equal([['amount', 'amount_too_large']]);
    expect((await validationFields(env.rt.services.sending.textToPay(shop.merchant, jane.id, { amount: 100, description: 'Line\r\nBreak' }))).map(([f]) => f)).to.deep.equal(['description']);
    expect(Number((await env.rt.db('links').count({ n: '*' }))[0].n)).to.equal(links);
    expect(Number((await env.rt.db('deliveries').count({ n: '*' }))[0].n)).to.equal(deliveries);
  });

  it("answers 404 for another merchant's customer", async () => {
    let err: unknown;
    try {
      await env.rt.services.sending.textToPay(stranger.merchant, jane.id, { amount: 1000 });
    } catch (e) {
      err = e;
    }
    expect(err).to.include({ status: 404 });
  });
});
