// Saved payment profiles with provider-stripe against the fake Stripe (the real SDK pointed at it):
// a customer record paying through Checkout may save their card; the next checkout offers it; the
// merchant (API, dashboard) and the customer (receipt) remove it — at Stripe first, and not at all
// while Stripe is unreachable; a card removed in Stripe's dashboard drops the profile. A payer with
// no customer record is never asked to save.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, receiptPath, type TestEnv } from './support/harness.ts';
import type { FakeStripe } from './support/fake-stripe.ts';
import { stripeShop, useStripeApp, type StripeShop } from './support/stripe-app.ts';

forEachTarget('saved payment profiles (provider-stripe)', (target) => {
  const app = useStripeApp(target);
  let fake: FakeStripe;
  let env: TestEnv;
  before(() => {
    ({ fake, env } = app);
  });

  type Shop = StripeShop & { customerId: string; path: string };

  /** A merchant on Stripe with one customer (Ada) and one link. */
  async function shop(): Promise<Shop> {
    const s = await stripeShop(app);
    const customer = (await s.call('post', '/customers', { name: 'Ada Lovelace', email: 'ada@example.test' }).expect(201)).body;
    const link = await env.rt.services.links.create(s.merchant, { type: 'amount', name: 'Pottery class', amount: 3900 });
    return { ...s, customerId: customer.id, path: link.path! };
  }

  /** Submits the pay page — as the customer the link was sent to (`?c=`), or as anyone — and answers Stripe's session. */
  async function checkout(s: Shop, asCustomer = true) {
    const query = asCustomer ? `?c=${encodeURIComponent(env.rt.tokens.recipient(s.customerId))}` : '';
    const res = await supertest(env.app).post(`/${s.merchant.handle}/${s.path}${query}`).type('form').send({ name: 'Ada Lovelace', email: 'ada@example.test' });
    expect(res.status, res.text.slice(0, 300)).to.equal(303);
    const session = fake.sessions.get(new URL(res.headers.location).pathname.split('/').pop()!)!;
    const created = fake.requests.filter((r) => r.path === '/v1/checkout/sessions' && r.body.client_reference_id === session.client_reference_id);
    return { session, paymentId: session.client_reference_id as string, asked: created[0].body };
  }
  const profiles = async (s: Shop) => (await s.call('get', `/customers/${s.customerId}/payment_profiles`).expect(200)).body.data as { id: string; provider: string; label: string }[];
  const customersMade = (s: Shop) => fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/customers' && r.body.metadata?.paylink_merchant_id === s.merchant.id);

  it('a customer saves their card at checkout; the next checkout offers it; the merchant sees it', async () => {
    const s = await shop();
    const first = await checkout(s);
    // Checkout runs for the customer's own Stripe customer, with "save my card" offered.
    const made = customersMade(s);
    expect(made, 'one Stripe customer for the customer record').to.have.length(1);
    expect(made[0].body).to.deep.include({ email: 'ada@example.test', name: 'Ada Lovelace' });
    expect(made[0].body.metadata).to.deep.equal({ paylink_customer_id: s.customerId, paylink_merchant_id: s.merchant.id });
    const stripeCustomer = first.session.customer as string;
    expect(stripeCustomer).to.match(/^cus_/);
    expect(first.asked.saved_payment_method_options).to.deep.equal({ payment_method_save: 'enabled' });
    expect(first.asked, 'Stripe refuses customer with customer_email').not.to.have.property('customer_email');
    expect(fake.offered(first.session.id), 'nothing saved yet').to.deep.equal([]);

    expect((await fake.pay(first.session.id, '4242 4242 4242 4242', { save: true })).status).to.equal(303);
    expect((await s.call('get', `/payments/${first.paymentId}`).expect(200)).body.status).to.equal('paid');
    const saved = await profiles(s);
    expect(saved.map((p) => [p.provider, p.label])).to.deep.equal([['stripe', 'Visa •••• 4242']]);
    expect(saved[0].id).to.match(/^cpp_/);

    // The receipt tells the customer and lets them forget it; the merchant's customer page shows it.
    const receipt = await supertest(env.app).get(receiptPath(env, first.paymentId)).expect(200);
    expect(receipt.text).to.include('Saved for next time').and.to.include('Visa •••• 4242').and.to.include(`action="/receipt/${first.paymentId}/forget-card?k=`);
    // The payment id alone (the merchant's redirect URL, the API, webhooks carry it) shows the receipt
    // and that a card is saved, not the way to forget it (nor, without email going out, a link by email).
    const bare = await supertest(env.app).get(`/receipt/${first.paymentId}`).expect(200);
    expect(bare.text).to.include('Payment successful').and.to.include('A card you paid with is saved with').and.not.to.include('Forget this card');
    expect(bare.text).to.include('To see or forget it, open this receipt from the link you were given after paying, or ask').and.not.to.include('email-link');
    await supertest(env.app).post(`/receipt/${first.paymentId}/forget-card`).type('form').send({}).expect(404);
    await supertest(env.app).post(`/receipt/${first.paymentId}/forget-card?k=${'A'.repeat(22)}`).type('form').send({}).expect(404);
    expect(await profiles(s)).to.have.length(1);
    const page = await s.owner.agent.get(`/app/customers/${s.customerId}`).expect(200);
    expect(page.text).to.include('Saved payment details').and.to.include('Visa •••• 4242').and.to.include('with Stripe');
    const list = await s.owner.agent.get('/app/customers').expect(200);
    expect(list.text.slice(list.text.indexOf(`id="customer-${s.customerId}"`)).split('</tr>')[0]).to.include('Card saved');

    // Next time: the same Stripe customer (none made), and Checkout offers the saved card.
    const second = await checkout(s);
    expect(customersMade(s)).to.have.length(1);
    expect(second.session.customer).to.equal(stripeCustomer);
    const offered = fake.offered(second.session.id);
    expect(offered.map((pm) => pm.card.last4)).to.deep.equal(['4242']);
    await fake.pay(second.session.id, undefined, { savedPaymentMethod: offered[0].id });
    const paid = (await s.call('get', `/payments/${second.paymentId}`).expect(200)).body;
    expect(paid).to.deep.include({ status: 'paid', payment_method: { type: 'card', brand: 'visa', last4: '4242' } });
    expect(await profiles(s)).to.have.length(1);
  });

  it('nothing is kept when the customer does not tick "save"; a payer with no customer record is never asked', async () => {
    const s = await shop();
    const unticked = await checkout(s);
    await fake.pay(unticked.session.id);
    expect((await s.call('get', `/payments/${unticked.paymentId}`).expect(200)).body.status).to.equal('paid');
    expect(await profiles(s)).to.deep.equal([]);
    expect((await supertest(env.app).get(receiptPath(env, unticked.paymentId)).expect(200)).text).not.to.include('Saved for next time');

    const anonymous = await checkout(s, false);
    expect(anonymous.session.customer).to.equal(null);
    expect(anonymous.asked).to.include({ customer_email: 'ada@example.test' });
    expect(anonymous.asked).not.to.have.property('saved_payment_method_options');
    // Even when the payer ticks "save" (the fake keeps nothing without a customer, as Stripe shows no box).
    await fake.pay(anonymous.session.id, undefined, { save: true });
    expect(await profiles(s)).to.deep.equal([]);
  });

  it('the merchant removes it: detached at Stripe first; while Stripe is down nothing is removed; only their own', async () => {
    const s = await shop();
    const first = await checkout(s);
    await fake.pay(first.session.id, '4000 0566 5566 5556', { save: true });
    const [profile] = await profiles(s);
    expect(profile.label).to.equal('Visa •••• 5556');
    const pm = fake.intents.get(first.session.payment_intent)!.payment_method as string;

    // Another merchant can neither see nor remove it.
    const other = await shop();
    await other.call('delete', `/customers/${s.customerId}/payment_profiles/${profile.id}`).expect(404);
    await other.call('delete', `/customers/${other.customerId}/payment_profiles/${profile.id}`).expect(404);

    fake.down = true;
    try {
      const down = await s.call('delete', `/customers/${s.customerId}/payment_profiles/${profile.id}`);
      expect(down.status, down.text).to.equal(503);
      expect(down.body.detail).to.match(/Stripe could not be reached/);
    } finally {
      fake.down = false;
    }
    expect(await profiles(s), 'kept while Stripe is unreachable').to.have.length(1);
    expect(fake.paymentMethods.get(pm)!.customer).to.equal(first.session.customer);

    await s.call('delete', `/customers/${s.customerId}/payment_profiles/${profile.id}`).expect(204);
    expect(await profiles(s)).to.deep.equal([]);
    expect(fake.paymentMethods.get(pm)!.customer, 'detached at Stripe').to.equal(null);
    await fake.idle();
    const next = await checkout(s);
    expect(fake.offered(next.session.id), 'never offered again').to.deep.equal([]);
    await s.call('delete', `/customers/${s.customerId}/payment_profiles/${profile.id}`).expect(404);
  });

  it('the merchant removes it from the customer page; the customer forgets it from the receipt', async () => {
    const s = await shop();
    const first = await checkout(s);
    await fake.pay(first.session.id, undefined, { save: true });
    const [profile] = await profiles(s);
    const page = await s.owner.agent.get(`/app/customers/${s.customerId}`).expect(200);
    const removed = await s.owner.agent.post(`/app/customers/${s.customerId}/payment-profiles/${profile.id}/delete`).type('form').send({ _csrf: csrfFrom(page.text) }).expect(303);
    expect(removed.headers.location).to.equal(`/app/customers/${s.customerId}`);
    const after = await s.owner.agent.get(removed.headers.location).expect(200);
    expect(after.text).to.include('Visa •••• 4242 (Stripe) removed');
    expect(after.text).not.to.include('Saved payment details');
    expect((await s.owner.agent.get('/app/customers').expect(200)).text).not.to.include('Card saved');
    expect(await profiles(s)).to.deep.equal([]);

    // Saved again on the next payment; this time the customer forgets it from their receipt.
    const second = await checkout(s);
    await fake.pay(second.session.id, undefined, { save: true });
    expect(await profiles(s)).to.have.length(1);
    const pm = fake.intents.get(second.session.payment_intent)!.payment_method as string;
    fake.down = true;
    try {
      const down = await supertest(env.app).post(receiptPath(env, second.paymentId, 'forget-card')).type('form').send({}).expect(503);
      expect(down.text).to.include('Nothing was removed');
    } finally {
      fake.down = false;
    }
    expect(await profiles(s)).to.have.length(1);
    const forgot = await supertest(env.app).post(receiptPath(env, second.paymentId, 'forget-card')).type('form').send({}).expect(303);
    expect(forgot.headers.location).to.equal(`${receiptPath(env, second.paymentId)}&forgotten=1`);
    const receipt = await supertest(env.app).get(forgot.headers.location).expect(200);
    expect(receipt.text).to.include('Your saved card was removed').and.not.to.include('Forget this card');
    expect(await profiles(s)).to.deep.equal([]);
    expect(fake.paymentMethods.get(pm)!.customer).to.equal(null);
    await supertest(env.app).post('/receipt/pay_nosuchpaymentxxxxxxxxxxx/forget-card').type('form').send({}).expect(404);
  });

  it('a card removed in Stripe’s dashboard drops the profile once no saved card is left', async () => {
    const s = await shop();
    const cards: string[] = [];
    for (const number of ['4242424242424242', '5555555555554444']) {
      const c = await checkout(s);
      await fake.pay(c.session.id, number, { save: true });
      cards.push(fake.intents.get(c.session.payment_intent)!.payment_method as string);
    }
    expect((await profiles(s)).map((p) => p.label), 'the newest card names the profile').to.deep.equal(['Visa •••• 4444']);
    await fake.detach(cards[0]);
    const first = fake.sent.filter((w) => w.event.type === 'payment_method.detached').pop()!;
    expect([first.status, JSON.parse(first.body).outcome]).to.deep.equal([200, 'cards_left']);
    expect(await profiles(s)).to.have.length(1);
    await fake.detach(cards[1]);
    const last = fake.sent.filter((w) => w.event.type === 'payment_method.detached').pop()!;
    expect([last.status, JSON.parse(last.body).outcome]).to.deep.equal([200, 'dropped:1']);
    expect(await profiles(s)).to.deep.equal([]);
  });
});
