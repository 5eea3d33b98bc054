// Checkout through the pay page and the sandbox provider's card page, as a customer does it:
// form → 303 to the card page → a test card → receipt (or the merchant's redirect).
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, receiptPath as keyedReceipt, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { PaymentProvider } from '../src/plugin-api.ts';

const CUSTOMER = { name: 'Ann Example', email: 'ann@example.test' };

forEachTarget('checkout', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  const calls = { capture: 0, void: 0 };
  const http = () => supertest(env.app);

  async function merchant(opts: { currency?: string; timezone?: string } = {}): Promise<Merchant> {
    const handle = uniqueHandle('co');
    return (await env.rt.services.merchants.signUp({ name: 'Corner Bakery', handle, email: `${handle}@example.test`, password: 'correct horse battery' }, opts)).merchant;
  }
  const link = (m: Merchant, fields: Record<string, unknown> = {}) =>
    env.rt.services.links.create(m, { type: 'amount', name: 'Birthday cake', amount: 1250, ...fields });
  const count = async (table: string) => Number(((await env.rt.db(table).count({ n: '*' }).first()) as { n: number | string }).n);
  const linkRow = (id: string) => env.rt.db('links').where({ public_id: id }).first();
  const eventTypes = async (since: number) => (await env.rt.db('events').where('id', '>', since).orderBy('id').select('type')).map((r) => r.type as string);
  const lastEventKey = async () => Number(((await env.rt.db('events').max({ m: 'id' }).first()) as { m: number | null }).m ?? 0);

  /** Submits the pay page and answers the card page's path. */
  async function checkout(url: string, fields: Record<string, string> = CUSTOMER): Promise<string> {
    const res = await http().post(url).type('form').send(fields);
    expect(res.status, res.text.slice(0, 400)).to.equal(303);
    const location = new URL(res.headers.location);
    expect(location.pathname).to.match(/^\/p\/provider-sandbox\/pay\/cs_[0-9A-Za-z]{22}$/);
    return location.pathname;
  }
  const pay = (cardPage: string, card: string) => http().post(cardPage).type('form').send({ card_number: card });
  /** Post/Redirect/Get: a card form that fails answers 303 back to the card page, whose GET shows why. */
  async function payFailing(cardPage: string, card: string, status: number) {
    const post = await pay(cardPage, card).expect(303);
    expect(post.headers.location.split('?')[0]).to.equal(cardPage);
    return http().get(post.headers.location).expect(status);
  }
  const receiptPath = (location: string) => new URL(location, 'http://x').pathname;

  before(async () => {
    env = await build(target);
    shop = await merchant();
    // Count what core asks of the provider (the sandbox's capture/void do nothing else).
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const { capture, void: voidIt } = sandbox;
    sandbox.capture = async (p, s) => void (calls.capture++, await capture(p, s));
    sandbox.void = async (p, s) => void (calls.void++, await voidIt(p, s));
  });
  beforeEach(() => {
    calls.capture = 0;
    calls.void = 0;
  });
  after(() => env?.close());

  describe('the pay page form', () => {
    it('answers 422 with a message by each bad field and writes nothing', async () => {
      const l = await link(shop);
      const before = [await count('checkout_sessions'), await count('payments'), await count('events')];
      for (const [fields, bad] of [
        [{}, ['name', 'email']],
        [{ name: '   ', email: 'ann@example.test' }, ['name']],
        [{ name: 'Ann', email: 'not-an-email' }, ['email']],
        [{ name: 'x'.repeat(121), email: 'ann@example.test' }, ['name']],
        [{ name: 'Ann\nEvil', email: 'ann@example.test' }, ['name']],
      ] as const) {
        const res = await http().post(`/${shop.handle}/${l.path}`).type('form').send(fields);
        expect(res.status, JSON.stringify(fields)).to.equal(422);
        expect(res.text).to.include('role="alert"');
        for (const field of ['name', 'email']) {
          const message = new RegExp(`id="f-${field}-error">([^<]*)<`).exec(res.text)![1];
          if ((bad as readonly string[]).includes(field)) {
            expect(message, `${field} for ${JSON.stringify(fields)}`).not.to.equal('');
            expect(res.text).to.match(new RegExp(`id="f-${field}"[^>]* aria-invalid="true"`));
          } else {
            expect(message).to.equal('');
          }
        }
      }
      // What the customer typed stays in the form.
      const res = await http().post(`/${shop.handle}/${l.path}`).type('form').send({ name: 'Ann <b>', email: 'oops' }).expect(422);
      expect(res.text).to.include('value="Ann &lt;b&gt;"');
      expect([await count('checkout_sessions'), await count('payments'), await count('events')]).to.deep.equal(before);
    });

    it('never answers 500 to odd bodies', async () => {
      const l = await link(shop);
      const url = `/${shop.handle}/${l.path}`;
      await http().post(url).type('form').send('name=a&name=b&email=ann%40example.test').expect(422);
      await http().post(url).set('Content-Type', 'application/json').send('{"name":"Ann"').expect(422);
      await http().post(url).type('form').send(`name=${'a'.repeat(20_000)}`).expect(413);
      await http().post(url).type('form').send('%%%=%%%').expect(422);
    });

    it('parses open amounts in the currency’s precision (EUR, JPY, KWD)', async () => {
      const yen = await merchant({ currency: 'JPY' });
      const dinar = await merchant({ currency: 'KWD' });
      const cases: [Merchant, string, number | null][] = [
        [shop, '12.50', 1250], [shop, '12,5', 1250], [shop, ' 7 ', 700], [shop, '1 000', 100000],
        [shop, '12.505', null], [shop, 'abc', null], [shop, '0', null], [shop, '-5', null], [shop, '', null], [shop, '1000000.01', null],
        [yen, '1500', 1500], [yen, '1500.5', null],
        [dinar, '1.234', 1234], [dinar, '1.2345', null],
      ];
      for (const [m, typed, minor] of cases) {
        const before = await count('payments');
        const res = await http().post(`/${m.handle}`).type('form').send({ ...CUSTOMER, amount: typed });
        if (minor === null) {
          expect(res.status, `${m.currency} "${typed}"`).to.equal(422);
          expect(/id="f-amount-error">([^<]*)</.exec(res.text)![1], typed).not.to.equal('');
          expect(await count('payments')).to.equal(before);
        } else {
          expect(res.status, `${m.currency} "${typed}"`).to.equal(303);
          const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
          expect([Number(payment.amount), payment.currency], typed).to.deep.equal([minor, m.currency]);
        }
      }
    });

    it('opens a checkout session and a pending payment, then answers 303 to the sandbox card page', async () => {
      const l = await link(shop);
      const since = await lastEventKey();
      const cardPage = await checkout(`/${shop.handle}/${l.path}`);
      const session = await env.rt.db('checkout_sessions').where({ public_id: cardPage.split('/').pop() }).first();
      expect(session).to.include({ customer_name: 'Ann Example', customer_email: 'ann@example.test', status: 'open', currency: 'EUR' });
      expect(Number(session.amount)).to.equal(1250);
      const payment = await env.rt.db('payments').where({ checkout_session_id: session.id }).first();
      expect(payment).to.include({ status: 'pending', provider: 'sandbox' });
      expect(await eventTypes(since)).to.deep.equal(['checkout.started']);
      const page = await http().get(cardPage).expect(200);
      expect(page.text).to.include('Corner Bakery');
      expect(page.text).to.include('Birthday cake');
      expect(page.text).to.include('€12.50');
      expect(page.text).to.match(/<input id="card_number" name="card_number"/);
      expect(page.headers['set-cookie']).to.equal(undefined);
    });

    it('answers 404 and writes nothing when the link was switched off between showing the page and paying', async () => {
      const l = await link(shop);
      await http().get(`/${shop.handle}/${l.path}`).expect(200);
      await env.rt.services.links.update(shop, l.id, { active: false });
      const before = await count('checkout_sessions');
      await http().post(`/${shop.handle}/${l.path}`).type('form').send(CUSTOMER).expect(404);
      expect(await count('checkout_sessions')).to.equal(before);
    });
  });

  describe('paying on the sandbox card page', () => {
    it('takes 4242 4242 4242 4242: paid, receipt with amount and reference, counters on the link', async () => {
      const l = await link(shop);
      const since = await lastEventKey();
      const cardPage = await checkout(`/${shop.handle}/${l.path}`);
      const res = await pay(cardPage, '4242 4242 4242 4242').expect(303);
      const receipt = receiptPath(res.headers.location);
      const paymentId = receipt.split('/').pop()!;
      expect(receipt).to.equal(`/receipt/${paymentId}`);
      const page = await http().get(receipt).expect(200);
      expect(page.text).to.include('Payment successful');
      expect(page.text).to.include('€12.50');
      expect(page.text).to.include(paymentId);
      expect(page.text).to.include('Birthday cake');
      expect(page.text).to.include('Corner Bakery');
      expect(page.text).to.include('2 March 2026');
      expect(page.text).to.match(/@media print|\/static\/css\/pay\.[0-9a-f]{10}\.css/);
      const payment = await env.rt.db('payments').where({ public_id: paymentId }).first();
      expect(payment.status).to.equal('paid');
      expect(payment.provider_ref).to.match(/^sbx_/);
      const row = await linkRow(l.id);
      expect([Number(row.payments_count), Number(row.revenue), Number(row.paid_count)]).to.deep.equal([1, 1250, 1]);
      expect(calls).to.deep.equal({ capture: 1, void: 0 });
      expect(await eventTypes(since)).to.deep.equal(['checkout.started', 'payment.authorized', 'payment.succeeded']);
    });

    it('shows the receipt’s date in the merchant’s time zone', async () => {
      const m = await merchant({ timezone: 'Europe/Amsterdam' });
      const cardPage = await checkout(`/${m.handle}/12.50`);
      const res = await pay(cardPage, '4242424242424242').expect(303);
      const page = await http().get(receiptPath(res.headers.location)).expect(200);
      expect(page.text).to.include('2 March 2026 at 10:00 CET');
    });

    it('sends the customer to the merchant’s redirect URL (same tab) with a 303', async () => {
      const l = await link(shop, { redirect_url: 'https://shop.example/thanks?order=7' });
      const res = await pay(await checkout(`/${shop.handle}/${l.path}`), '4242424242424242').expect(303);
      expect(res.headers.location).to.equal('https://shop.example/thanks?order=7');
    });

    it('for "new tab" shows the receipt with a button that opens the link’s redirect URL in a new tab', async () => {
      const l = await link(shop, { redirect_url: 'https://shop.example/next', redirect_target: 'new' });
      const res = await pay(await checkout(`/${shop.handle}/${l.path}`), '4242424242424242').expect(303);
      const location = new URL(res.headers.location);
      expect(location.pathname + location.search).to.equal(`${keyedReceipt(env, location.pathname.split('/').pop()!)}&continue=1`);
      const page = await http().get(`${location.pathname}${location.search}&url=https://evil.example/`).expect(200);
      expect(page.text).to.include('Payment successful');
      expect(page.text).to.match(/<a class="pay-button" href="https:\/\/shop\.example\/next" target="_blank" rel="noopener">/);
      expect(page.text, 'the URL comes from the link, never from the query').not.to.include('evil.example');
      // Without ?continue=1 it is the plain receipt.
      expect((await http().get(location.pathname).expect(200)).text).not.to.include('target="_blank"');
    });

    it('puts the payment’s id in place of {PAYMENT_ID} in the redirect URL, same tab and new tab', async () => {
      const same = await link(shop, { redirect_url: 'https://shop.example/orders/{PAYMENT_ID}?p={PAYMENT_ID}#{PAYMENT_ID}' });
      expect(same.redirectUrl, 'the placeholder survives validation').to.equal('https://shop.example/orders/{PAYMENT_ID}?p={PAYMENT_ID}#{PAYMENT_ID}');
      const res = await pay(await checkout(`/${shop.handle}/${same.path}`), '4242424242424242').expect(303);
      const paymentId = (await env.rt.db('payments').where({ link_id: same.key, status: 'paid' }).first()).public_id;
      expect(res.headers.location).to.equal(`https://shop.example/orders/${paymentId}?p=${paymentId}#${paymentId}`);

      const tab = await link(shop, { redirect_url: 'https://shop.example/thanks?payment={PAYMENT_ID}', redirect_target: 'new' });
      const paid = await pay(await checkout(`/${shop.handle}/${tab.path}`), '4242424242424242').expect(303);
      const receipt = new URL(paid.headers.location);
      const id = receipt.pathname.split('/').pop();
      const page = await http().get(`${receipt.pathname}?continue=1`).expect(200);
      expect(page.text).to.include(`href="https://shop.example/thanks?payment=${id}"`);
    });

    it('refuses {PAYMENT_ID} in a redirect URL’s host', async () => {
      let err: unknown;
      try {
        await link(shop, { redirect_url: 'https://{PAYMENT_ID}.shop.example/' });
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string; status?: number })?.status).to.equal(422);
    });

    it('declines 4000 0000 0000 0002 with a clear message, and the customer can try again and pay', async () => {
      const l = await link(shop);
      const since = await lastEventKey();
      const cardPage = await checkout(`/${shop.handle}/${l.path}`);
      const declined = await payFailing(cardPage, '4000 0000 0000 0002', 402);
      expect(declined.text).to.include('Your card was declined');
      expect(declined.text).to.include('role="alert"');
      expect(declined.text).to.match(/<input id="card_number" name="card_number"/);
      const paid = await pay(cardPage, '4242 4242 4242 4242').expect(303);
      const paymentId = receiptPath(paid.headers.location).split('/').pop()!;
      const session = await env.rt.db('checkout_sessions').where({ public_id: cardPage.split('/').pop() }).first();
      const attempts = await env.rt.db('payments').where({ checkout_session_id: session.id }).orderBy('id').select('public_id', 'status', 'failure_code');
      expect(attempts.map((a) => [a.status, a.failure_code])).to.deep.equal([['failed', 'card_declined'], ['paid', null]]);
      expect(attempts[1].public_id).to.equal(paymentId);
      expect(session.status).to.equal('completed');
      expect(calls.capture).to.equal(1);
      expect(await eventTypes(since)).to.deep.equal(['checkout.started', 'payment.failed', 'payment.authorized', 'payment.succeeded']);
      const row = await linkRow(l.id);
      expect([Number(row.payments_count), Number(row.paid_count)]).to.deep.equal([1, 1]);
    });

    it('declines 4000 0000 0000 9995 for insufficient funds', async () => {
      const cardPage = await checkout(`/${shop.handle}/12.50`);
      const res = await payFailing(cardPage, '4000000000009995', 402);
      expect(res.text).to.include('insufficient funds');
      const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
      expect([payment.status, payment.failure_code]).to.deep.equal(['failed', 'insufficient_funds']);
    });

    it('answers 422 by the field for a card that is not a sandbox test card, and charges nothing', async () => {
      const cardPage = await checkout(`/${shop.handle}/12.50`);
      for (const card of ['4111 1111 1111 1111', '', 'abcd']) {
        const res = await payFailing(cardPage, card, 422);
        expect(/id="card_number-error"[^>]*>([^<]*)</.exec(res.text)![1], card).to.match(card ? /sandbox test cards/ : /Enter a card number/);
      }
      const payment = await env.rt.db('payments').orderBy('id', 'desc').first();
      expect(payment.status).to.equal('pending');
      expect(calls.capture).to.equal(0);
    });

    it('is idempotent: submitting the card form again, or twice at once, captures once', async () => {
      const cardPage = await checkout(`/${shop.handle}/${(await link(shop)).path}`);
      const [a, b] = await Promise.all([pay(cardPage, '4242424242424242'), pay(cardPage, '4242424242424242')]);
      expect([a.status, b.status]).to.deep.equal([303, 303]);
      const again = await pay(cardPage, '4242424242424242').expect(303);
      expect(receiptPath(again.headers.location)).to.equal(receiptPath(a.headers.location));
      expect(calls.capture).to.equal(1);
      // The card page of a paid checkout leads to its receipt.
      expect(receiptPath((await http().get(cardPage).expect(303)).headers.location)).to.equal(receiptPath(a.headers.location));
    });

    it('opens one new attempt when a declined customer retries twice at once', async () => {
      const cardPage = await checkout(`/${shop.handle}/12.50`);
      await payFailing(cardPage, '4000000000000002', 402);
      const results = await Promise.all([pay(cardPage, '4242424242424242'), pay(cardPage, '4242424242424242')]);
      expect(results.map((r) => r.status)).to.deep.equal([303, 303]);
      const session = await env.rt.db('checkout_sessions').where({ public_id: cardPage.split('/').pop() }).first();
      const statuses = (await env.rt.db('payments').where({ checkout_session_id: session.id }).orderBy('id').select('status')).map((r) => r.status);
      expect(statuses).to.deep.equal(['failed', 'paid']);
      expect(calls.capture).to.equal(1);
    });

    it('records link.limit_reached when the last allowed payment succeeds', async () => {
      const l = await link(shop, { payment_limit: 1 });
      const since = await lastEventKey();
      await pay(await checkout(`/${shop.handle}/${l.path}`), '4242424242424242').expect(303);
      expect(await eventTypes(since)).to.deep.equal(['checkout.started', 'payment.authorized', 'link.limit_reached', 'payment.succeeded']);
      const row = await linkRow(l.id);
      expect([Boolean(row.active), row.inactive_reason]).to.deep.equal([false, 'limit_reached']);
    });

    it('voids a payment whose slot was taken meanwhile and says the customer was not charged', async () => {
      const l = await link(shop, { payment_limit: 1 });
      const first = await checkout(`/${shop.handle}/${l.path}`);
      const second = await checkout(`/${shop.handle}/${l.path}`);
      await pay(first, '4242424242424242').expect(303);
      const res = await pay(second, '4242424242424242').expect(303);
      const page = await http().get(receiptPath(res.headers.location)).expect(200);
      expect(page.text).to.include('Payment limit reached');
      expect(page.text).to.include('You were not charged');
      expect(calls).to.deep.equal({ capture: 1, void: 1 });
      const voided = await env.rt.db('payments').where({ public_id: receiptPath(res.headers.location).split('/').pop() }).first();
      expect([voided.status, voided.failure_code]).to.deep.equal(['voided', 'limit_reached']);
    });

    it('voids a payment for a link deleted while the customer was paying', async () => {
      const l = await link(shop);
      const cardPage = await checkout(`/${shop.handle}/${l.path}`);
      await env.rt.services.links.remove(shop, l.id);
      const res = await pay(cardPage, '4242424242424242').expect(303);
      const page = await http().get(receiptPath(res.headers.location)).expect(200);
      expect(page.text).to.include('You were not charged');
      expect(page.text).not.to.include('Payment limit reached');
      expect(calls).to.deep.equal({ capture: 0, void: 1 });
    });

    it('shows a clear 410 page for an expired checkout, and 404 for an unknown one', async () => {
      const cardPage = await checkout(`/${shop.handle}/12.50`);
      env.clock.advance(2 * 60 * 60 * 1000 + 1000);
      try {
        expect((await http().get(cardPage).expect(410)).text).to.include('expired');
        expect((await pay(cardPage, '4242424242424242').expect(410)).text).to.include('expired');
      } finally {
        env.clock.advance(-(2 * 60 * 60 * 1000 + 1000));
      }
      await http().get('/p/provider-sandbox/pay/cs_AAAAAAAAAAAAAAAAAAAAAA').expect(404);
      await http().get('/p/provider-sandbox/pay/not-a-session').expect(404);
      await pay('/p/provider-sandbox/pay/cs_AAAAAAAAAAAAAAAAAAAAAA', '4242424242424242').expect(404);
      expect(calls.capture).to.equal(0);
    });
  });

  describe('receipts', () => {
    it('answer the same 404 for unknown payments as for unknown pages', async () => {
      const strip = (s: string) => s.replace(/nonce="[^"]*"/g, '');
      const unknown = await http().get('/receipt/pay_AAAAAAAAAAAAAAAAAAAAAA').expect(404);
      const garbage = await http().get('/receipt/whatever').expect(404);
      const page = await http().get('/no-such-page-anywhere').expect(404);
      expect(strip(unknown.text)).to.equal(strip(page.text));
      expect(strip(garbage.text)).to.equal(strip(page.text));
    });

    it('say "processing" for a payment that has not finished', async () => {
      const cardPage = await checkout(`/${shop.handle}/12.50`);
      const session = await env.rt.db('checkout_sessions').where({ public_id: cardPage.split('/').pop() }).first();
      const payment = await env.rt.db('payments').where({ checkout_session_id: session.id }).first();
      const res = await http().get(`/receipt/${payment.public_id}`).expect(200);
      expect(res.text).to.include('Processing your payment');
      expect(res.text).to.match(/<meta http-equiv="refresh" content="5">/);
    });
  });
});
