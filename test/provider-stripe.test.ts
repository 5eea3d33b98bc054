// provider-stripe against a fake Stripe on loopback (the real SDK pointed at it): settings checked
// with a live call, a card payment from the pay page through Checkout and signed webhooks to a
// captured payment, webhooks that come twice, late, badly signed or for nobody, Stripe down at start
// and at capture, refunds from Paylink and from Stripe's dashboard, disputes, the sweep, and methods
// that capture at once.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, signUp, type TestEnv } from './support/harness.ts';
import { apiClient, expectFieldErrors } from './support/api.ts';
import type { FakeStripe, FakeStripeAccount } from './support/fake-stripe.ts';
import { stripeKey, stripeShop, useStripeApp, type StripeShop } from './support/stripe-app.ts';
import { waitFor } from './support/wait.ts';
import { SETTLE_RETRY_FIRST_MS } from '../src/features/checkout/service.ts';

const AMOUNT = 3900;
const key = stripeKey;

forEachTarget('provider-stripe', (target) => {
  const app = useStripeApp(target);
  let fake: FakeStripe;
  let env: TestEnv;
  before(() => {
    ({ fake, env } = app);
  });

  type Shop = StripeShop;
  const shop = (methods: 'card' | 'all' = 'card') => stripeShop(app, methods);

  const newLink = (s: Shop, limit: number | null = null, name = 'Pottery class') => env.rt.services.links.create(s.merchant, { type: 'amount', name, amount: AMOUNT, payment_limit: limit });
  /** A customer submits the pay page: answers the Checkout Session Stripe opened. */
  async function checkout(s: Shop, path: string, email = 'ada@example.test') {
    const res = await supertest(env.app).post(`/${s.merchant.handle}/${path}`).type('form').send({ name: 'Ada Lovelace', email });
    expect(res.status, res.text.slice(0, 300)).to.equal(303);
    const url = new URL(res.headers.location);
    expect(url.origin).to.equal(fake.origin);
    const session = fake.sessions.get(url.pathname.split('/').pop()!)!;
    return { session, paymentId: session.client_reference_id as string };
  }
  const payment = async (s: Shop, id: string) => (await s.call('get', `/payments/${id}`).expect(200)).body;
  const eventsOf = async (type: string, paymentId: string) => (await env.rt.db('events').where({ type }).andWhere('payload', 'like', `%${paymentId}%`)).map((e: { payload: string }) => JSON.parse(e.payload));

  describe('settings', () => {
    it('checks the key with Stripe on save: a bad one is refused by its field, Stripe down saves nothing', async () => {
      const owner = await signUp(env.app);
      const merchant = (await env.rt.services.merchants.getByHandle(owner.handle))!;
      const { secret } = await env.rt.services.apiKeys.create(merchant, { name: 'test' });
      const call = apiClient(env.app, secret);
      const good = { secretKey: key('sk_test_'), webhookSecret: key('whsec_'), webhookUrl: null };
      fake.addAccount(good);

      expectFieldErrors(await call('patch', '/providers/stripe', { settings: { secretKey: 'pk_test_123', webhookSecret: good.webhookSecret } }), ['settings.secretKey']);
      expectFieldErrors(await call('patch', '/providers/stripe', { settings: { secretKey: good.secretKey, webhookSecret: 'nope' } }), ['settings.webhookSecret']);
      // Well-formed, but Stripe does not know it.
      const unknown = await call('patch', '/providers/stripe', { settings: { secretKey: key('sk_test_'), webhookSecret: good.webhookSecret } });
      expectFieldErrors(unknown, ['settings.secretKey'], 'validation_failed');
      expect(unknown.body.errors[0].message).to.match(/Stripe did not accept this key/);
      fake.down = true;
      try {
        const down = await call('patch', '/providers/stripe', { settings: { secretKey: good.secretKey, webhookSecret: good.webhookSecret } });
        expect(down.status, down.text).to.equal(503);
      } finally {
        fake.down = false;
      }
      expect((await call('get', '/providers').expect(200)).body.data.find((p: { id: string }) => p.id === 'stripe')).to.include({ enabled: false }).and.to.have.property('secrets_set').that.deep.equals([]);

      await call('patch', '/providers/stripe', { enabled: true, settings: { secretKey: good.secretKey, webhookSecret: good.webhookSecret } }).expect(200);
      const listed = (await call('get', '/providers').expect(200)).body.data.find((p: { id: string }) => p.id === 'stripe');
      expect(listed).to.deep.include({ enabled: true, plugin: 'provider-stripe', secrets_set: ['secretKey', 'webhookSecret'] });
      expect(listed.settings, 'the key, masked').to.deep.equal({ methods: 'card', secretKeyHint: `sk_test_…${good.secretKey.slice(-4)}` });
      expect(JSON.stringify(listed)).not.to.include(good.secretKey.slice(8));
      const row = await env.rt.db('merchant_providers').where({ merchant_id: merchant.key, provider: 'stripe' }).first();
      expect(String(row.secrets), 'stored encrypted').not.to.include(good.secretKey);

      // The page: masked secrets, the webhook URL to paste into Stripe (with a copy button), the events.
      const page = await owner.agent.get('/app/settings/payments').expect(200);
      expect(page.text).to.include(`/p/provider-stripe/webhook/${merchant.id}`);
      expect(page.text).to.match(/data-copy="[^"]*\/p\/provider-stripe\/webhook\//);
      expect(page.text).to.include('checkout.session.completed');
      expect(page.text).not.to.include(good.secretKey);
      expect(page.text).to.include(`<code>sk_test_…${good.secretKey.slice(-4)}</code> is set`);
      // A bad key on the form: 422, the message by the field, nothing saved.
      const bad = await owner.agent.post('/app/settings/payments/stripe').type('form').send({ _csrf: csrfFrom(page.text), enabled: ['0', '1'], 'settings.secretKey': key('sk_test_'), 'settings.webhookSecret': '', 'settings.methods': 'card' }).expect(422);
      expect(bad.text).to.match(/id="f-stripe-secretKey-error">Stripe did not accept this key/);
    });
  });

  describe('a card payment', () => {
    let s: Shop;
    before(async () => {
      s = await shop();
    });

    it('goes through Checkout with manual capture and comes back captured, with the card on the payment', async () => {
      const link = await newLink(s, 10);
      const { session, paymentId } = await checkout(s, link.path!);
      // What Paylink asked Stripe for.
      const created = fake.requests.find((r) => r.path === '/v1/checkout/sessions' && r.body.client_reference_id === paymentId)!;
      expect(created.idempotencyKey).to.equal(`paylink_checkout_${paymentId}`);
      expect(created.body).to.deep.include({ mode: 'payment', client_reference_id: paymentId, customer_email: 'ada@example.test', payment_method_types: ['card'] });
      expect(created.body.line_items[0]).to.deep.equal({ quantity: '1', price_data: { currency: 'eur', unit_amount: String(AMOUNT), product_data: { name: 'Pottery class' } } });
      expect(created.body.metadata.paylink_payment_id).to.equal(paymentId);
      expect(created.body.payment_intent_data).to.deep.include({ capture_method: 'manual' });
      expect(created.body.payment_intent_data.metadata.paylink_payment_id).to.equal(paymentId);
      expect(created.body.success_url).to.match(new RegExp(`/p/provider-stripe/return/mer_\\w+/${paymentId}\\?session_id=\\{CHECKOUT_SESSION_ID\\}$`));

      const paid = await fake.pay(session.id);
      expect(paid.status).to.equal(303);
      const pi = fake.intents.get(session.payment_intent)!;
      expect(pi.status, 'captured at Stripe').to.equal('succeeded');
      expect(fake.requests.filter((r) => r.path === `/v1/payment_intents/${pi.id}/capture`).map((r) => r.idempotencyKey)).to.deep.equal([`paylink_capture_${paymentId}`]);
      const p = await payment(s, paymentId);
      expect(p).to.deep.include({ status: 'paid', provider: 'stripe', payment_method: { type: 'card', brand: 'visa', last4: '4242' } });

      // Back from Stripe: the success URL sends the customer on to the receipt.
      const back = await supertest(env.app).get(new URL(paid.location!).pathname + new URL(paid.location!).search).expect(303);
      expect(back.headers.location).to.equal(env.rt.services.checkout.receiptUrl({ id: paymentId }));
      // A return URL naming a payment the Stripe session is not for leads nowhere.
      const other = await checkout(s, link.path!, 'eve@example.test');
      await supertest(env.app).get(`/p/provider-stripe/return/${s.merchant.id}/${other.paymentId}?session_id=${session.id}`).expect(404);
      await supertest(env.app).get(`/p/provider-stripe/return/${s.merchant.id}/pay_nosuchpayment?session_id=${session.id}`).expect(404);
      expect((await payment(s, other.paymentId)).status).to.equal('pending');
      const page = await s.owner.agent.get(`/app/payments/${paymentId}`).expect(200);
      expect(page.text).to.include('Visa •••• 4242');
    });

    it('applies each event once: duplicates, late expiries, bad signatures and unknown payments change nothing', async () => {
      const link = await newLink(s, 10, 'Glaze workshop');
      const { session, paymentId } = await checkout(s, link.path!);
      await fake.pay(session.id);
      const completed = fake.sent.find((w) => w.event.type === 'checkout.session.completed' && w.event.data.object.id === session.id)!;
      expect(completed.status).to.equal(200);
      const captures = () => fake.requests.filter((r) => r.path.endsWith('/capture')).length;
      const before = captures();

      // The same event again (Stripe retries when it missed our answer).
      const again = await fake.send(s.account, completed.event);
      expect([again.status, JSON.parse(again.body).duplicate]).to.deep.equal([200, true]);
      // An `expired` that arrives after `completed`.
      const late = await fake.send(s.account, fake.event('checkout.session.expired', { ...session, status: 'expired' }));
      expect(late.status).to.equal(200);
      expect((await payment(s, paymentId)).status).to.equal('paid');
      expect(captures()).to.equal(before);

      // Badly signed: 400, nothing read or changed (a pending payment stays pending).
      const other = await checkout(s, link.path!, 'bob@example.test');
      const forged = JSON.stringify(fake.event('checkout.session.expired', { ...other.session, status: 'expired' }));
      const t = Math.floor(Date.now() / 1000);
      expect((await fake.post(s.account.webhookUrl!, forged, `t=${t},v1=${'0'.repeat(64)}`)).status).to.equal(400);
      expect((await fake.post(s.account.webhookUrl!, forged, '')).status).to.equal(400);
      // Signed with another merchant's secret.
      const stranger = await shop();
      const cross = await fake.send({ ...stranger.account, webhookUrl: s.account.webhookUrl }, fake.event('checkout.session.expired', { ...other.session, status: 'expired' }));
      expect(cross.status).to.equal(400);
      expect((await payment(s, other.paymentId)).status).to.equal('pending');

      // A payment Paylink does not know: acknowledged (so Stripe stops retrying), nothing changes.
      const unknown = await fake.send(s.account, fake.event('checkout.session.completed', { ...session, id: 'cs_test_unknown', client_reference_id: 'pay_doesnotexist', metadata: { paylink_payment_id: 'pay_doesnotexist' } }));
      expect([unknown.status, JSON.parse(unknown.body).outcome]).to.deep.equal([200, 'unknown_payment']);
      // Another merchant's payment, under this merchant's endpoint: ignored too.
      const strangerLink = await newLink(stranger, null, 'Their class');
      const theirs = await checkout(stranger, strangerLink.path!);
      const foreign = await fake.send(s.account, fake.event('checkout.session.expired', { ...theirs.session, status: 'expired' }));
      expect(JSON.parse(foreign.body).outcome).to.equal('unknown_payment');
      expect((await payment(stranger, theirs.paymentId)).status).to.equal('pending');

      // A declined card on Stripe's page leaves the checkout open; the customer pays with another card.
      expect((await fake.pay(other.session.id, '4000000000000002')).status).to.equal(402);
      expect((await payment(s, other.paymentId)).status).to.equal('pending');
      await fake.pay(other.session.id);
      expect((await payment(s, other.paymentId)).status).to.equal('paid');
    });

    it('cancels a card authorized after Paylink let its payment expire, and counts nothing', async () => {
      const link = await newLink(s, 3, 'Late bird');
      const { session, paymentId } = await checkout(s, link.path!);
      expect(await env.rt.plugins.checkoutFor('provider-stripe').expire(paymentId)).to.equal(true);
      await fake.pay(session.id); // Stripe's page was still open
      expect(fake.intents.get(session.payment_intent)!.status).to.equal('canceled');
      const p = await payment(s, paymentId);
      expect([p.status, p.failure_code]).to.deep.equal(['failed', 'expired']);
      expect(Number((await env.rt.db('links').where({ id: link.key }).first()).paid_count)).to.equal(0);
    });

    it('allows exactly Stripe’s origins as form targets of the pay page (CSP form-action)', async () => {
      const link = await newLink(s, 3, 'Slip casting');
      const page = await supertest(env.app).get(`/${s.merchant.handle}/${link.path}`).expect(200);
      const formAction = /form-action ([^;]*)/.exec(String(page.headers['content-security-policy']))![1].split(' ');
      expect(formAction).to.include.members(['https://checkout.stripe.com', fake.origin]);
    });

    it('takes a customer who goes back from Stripe’s page to the pay page, closing that checkout', async () => {
      const link = await newLink(s, 3, 'Handbuilding');
      const { session, paymentId } = await checkout(s, link.path!);
      const cancel = String(session.cancel_url).replace('{CHECKOUT_SESSION_ID}', session.id);
      const back = await supertest(env.app).get(new URL(cancel).pathname + new URL(cancel).search).expect(303);
      expect(new URL(back.headers.location).pathname).to.equal(`/${s.merchant.handle}/${link.path}`);
      expect(fake.sessions.get(session.id)!.status).to.equal('expired');
      const p = await payment(s, paymentId);
      expect([p.status, p.failure_code]).to.deep.equal(['failed', 'expired']);
      await fake.idle();
      // Stripe's checkout.session.expired for it changes nothing more.
      expect((await eventsOf('payment.failed', paymentId)).map((e) => e.reason)).to.deep.equal(['expired']);
    });

    it('still sends the customer on when Stripe is slow on return: the webhook settles the payment', async () => {
      const link = await newLink(s, 3, 'Porcelain');
      const { session, paymentId } = await checkout(s, link.path!);
      const paid = await fake.pay(session.id);
      fake.down = true;
      try {
        const back = await supertest(env.app).get(new URL(paid.location!).pathname + new URL(paid.location!).search).expect(303);
        expect(back.headers.location, 'the receipt, which says "processing" until it is settled').to.equal(env.rt.services.checkout.receiptUrl({ id: paymentId }));
      } finally {
        fake.down = false;
      }
      expect((await payment(s, paymentId)).status).to.equal('paid');
    });

    it('answers a clear 503 page when Stripe is down at start, and leaves nothing payable behind', async () => {
      const link = await newLink(s, 5, 'Raku evening');
      const sessionsBefore = fake.sessions.size;
      fake.down = true;
      let res: supertest.Response;
      try {
        res = await supertest(env.app).post(`/${s.merchant.handle}/${link.path}`).type('form').send({ name: 'Ada', email: 'ada@example.test' });
      } finally {
        fake.down = false;
      }
      expect(res.status).to.equal(503);
      expect(res.text).to.include('The payment provider is not reachable right now');
      expect(fake.sessions.size).to.equal(sessionsBefore);
      const rows = await env.rt.db('payments').where({ link_id: link.key });
      expect(rows.map((r: { status: string; failure_code: string }) => [r.status, r.failure_code])).to.deep.equal([['failed', 'provider_unavailable']]);
      expect(Number((await env.rt.db('links').where({ id: link.key }).first()).paid_count)).to.equal(0);
    });

    it('retries a capture Stripe could not take (a job with backoff) until it is captured', async () => {
      const link = await newLink(s, 1, 'Wheel throwing');
      const { session, paymentId } = await checkout(s, link.path!);
      fake.failNext('POST /v1/payment_intents/', 1);
      await fake.pay(session.id);
      const row = () => env.rt.db('payments').where({ public_id: paymentId }).first();
      expect([(await row()).status, (await row()).failure_code]).to.deep.equal(['authorized', 'capture_retrying']);
      expect(fake.intents.get(session.payment_intent)!.status).to.equal('requires_capture');
      env.clock.advance(SETTLE_RETRY_FIRST_MS + 1);
      await env.rt.jobs.drain();
      expect((await row()).status).to.equal('paid');
      expect(fake.intents.get(session.payment_intent)!.status).to.equal('succeeded');
      // Both attempts used one idempotency key.
      expect(new Set(fake.requests.filter((r) => r.path.endsWith(`${session.payment_intent}/capture`)).map((r) => r.idempotencyKey))).to.deep.equal(new Set([`paylink_capture_${paymentId}`]));
    });
  });

  describe('refunds and disputes', () => {
    let s: Shop;
    let paymentId: string;
    let intentId: string;
    before(async () => {
      s = await shop();
      const link = await newLink(s, null, 'Kiln hire');
      const c = await checkout(s, link.path!);
      await fake.pay(c.session.id);
      paymentId = c.paymentId;
      intentId = c.session.payment_intent;
    });

    it('refunds part from the API, part in Stripe’s dashboard, the rest from the dashboard page', async () => {
      const partial = await s.call('post', `/payments/${paymentId}/refunds`, { amount: 1000, reason: 'Shorter session' }).expect(201);
      expect(partial.body.status).to.equal('succeeded');
      const sent = fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/refunds');
      expect(sent.map((r) => [r.idempotencyKey, r.body.amount, r.body.metadata.paylink_refund_id])).to.deep.equal([[partial.body.id, '1000', partial.body.id]]);
      await fake.idle(); // Stripe's refund.created / charge.refunded for Paylink's own refund: recognised, not recorded twice
      expect(await payment(s, paymentId)).to.deep.include({ status: 'partially_refunded', amount_refunded: 1000 });

      // The merchant refunds 5.00 in Stripe's dashboard: recorded once (refund.created and charge.refunded both report it).
      const made = await fake.dashboardRefund(intentId, 500);
      let p = await payment(s, paymentId);
      expect(p).to.deep.include({ status: 'partially_refunded', amount_refunded: 1500 });
      expect(p.refunds.map((r: { amount: number; status: string }) => [r.amount, r.status])).to.deep.equal([[1000, 'succeeded'], [500, 'succeeded']]);
      const refundedEvents = await eventsOf('payment.refunded', paymentId);
      expect(refundedEvents.map((e) => e.amount)).to.deep.equal([1000, 500]);
      const row = await env.rt.db('refunds').where({ provider_ref: made.id }).first();
      expect(row.source).to.equal('provider');

      // The rest from the payment page (review, confirm).
      const page = await s.owner.agent.get(`/app/payments/${paymentId}`).expect(200);
      const csrf = csrfFrom(page.text);
      const review = await s.owner.agent.post(`/app/payments/${paymentId}/refund`).type('form').send({ _csrf: csrf, amount: '24.00', reason: 'Cancelled' }).expect(200);
      const k = /name="key" value="([^"]+)"/.exec(review.text)![1];
      await s.owner.agent.post(`/app/payments/${paymentId}/refunds`).type('form').send({ _csrf: csrf, amount: '24.00', reason: 'Cancelled', key: k }).expect(303);
      await fake.idle();
      p = await payment(s, paymentId);
      expect(p).to.deep.include({ status: 'refunded', amount_refunded: AMOUNT });
      expect(fake.charges.get(fake.intents.get(intentId)!.latest_charge)!.amount_refunded).to.equal(AMOUNT);
      // Revenue is net of every refund.
      const link = await env.rt.db('links').where({ id: (await env.rt.db('payments').where({ public_id: paymentId }).first()).link_id }).first();
      expect(Number(link.revenue)).to.equal(0);
    });

    it('flags a disputed payment and says so each time the dispute moves', async () => {
      await fake.dispute(intentId);
      let p = await payment(s, paymentId);
      expect(p.dispute_status).to.equal('needs_response');
      await fake.dispute(intentId, 'won');
      p = await payment(s, paymentId);
      expect(p.dispute_status).to.equal('won');
      const events = await eventsOf('payment.disputed', paymentId);
      expect(events.map((e) => [e.status, e.reason, e.provider])).to.deep.equal([['needs_response', 'fraudulent', 'stripe'], ['won', 'fraudulent', 'stripe']]);
      const page = await s.owner.agent.get(`/app/payments/${paymentId}`).expect(200);
      expect(page.text).to.include('Disputed');
    });
  });

  describe('the sweep', () => {
    it('settles payments whose webhooks never came: paid ones are captured, abandoned ones expire', async () => {
      const s = await shop();
      const link = await newLink(s, 5, 'Night class');
      const paidOne = await checkout(s, link.path!);
      const abandoned = await checkout(s, link.path!, 'bob@example.test');
      fake.holdWebhooks = true;
      try {
        await fake.pay(paidOne.session.id);
      } finally {
        fake.holdWebhooks = false;
      }
      expect((await payment(s, paidOne.paymentId)).status, 'no webhook came').to.equal('pending');

      // Not yet: the sessions may still be paid.
      await env.rt.scheduler.tick('plugin.provider-stripe.sweep');
      await env.rt.jobs.drain();
      expect((await payment(s, abandoned.paymentId)).status).to.equal('pending');

      env.clock.advance(2 * 60 * 60_000 + 10 * 60_000);
      await env.rt.scheduler.tick('plugin.provider-stripe.sweep');
      await env.rt.jobs.drain();
      expect(await payment(s, paidOne.paymentId)).to.deep.include({ status: 'paid', payment_method: { type: 'card', brand: 'visa', last4: '4242' } });
      expect(fake.intents.get(paidOne.session.payment_intent)!.status).to.equal('succeeded');
      const gone = await payment(s, abandoned.paymentId);
      expect([gone.status, gone.failure_code]).to.deep.equal(['failed', 'expired']);
      expect(fake.sessions.get(abandoned.session.id)!.status, 'closed at Stripe too').to.equal('expired');
      await fake.idle();
      // The webhooks that finally arrive change nothing.
      expect(await fake.deliver(fake.held.splice(0))).to.deep.equal([200, 200]);
      expect((await payment(s, paidOne.paymentId)).status).to.equal('paid');
    });

    it('forgets applied event ids after 30 days (Stripe retries for 3), keeping newer ones', async () => {
      const events = () => env.rt.db('plugin_records').where({ plugin_id: 'provider-stripe', collection: 'events' }).count({ n: '*' }).first().then((r) => Number(r!.n));
      const s = await shop();
      await fake.pay((await checkout(s, (await newLink(s, 5, 'Old class')).path!)).session.id);
      await fake.idle();
      const before = await events();
      expect(before).to.be.greaterThan(0);
      env.clock.advance(31 * 86_400_000);
      await fake.pay((await checkout(s, (await newLink(s, 5, 'New class')).path!)).session.id);
      await fake.idle();
      const withNew = await events();
      await env.rt.scheduler.tick('plugin.provider-stripe.sweep');
      await env.rt.jobs.drain();
      expect(await events()).to.equal(withNew - before);
    });
  });

  describe('the payment limit, through Stripe', () => {
    const LIMIT = 50;
    const CUSTOMERS = 200;
    let s: Shop;
    before(async function () {
      this.timeout(120_000);
      s = await shop();
    });
    /** `n` customers on Stripe's page at once, each with a Checkout Session of the link. */
    async function customers(path: string, n: number) {
      const out: { session: Record<string, any>; paymentId: string }[] = [];
      for (let i = 0; i < n; i++) out.push(await checkout(s, path, `c${i}@example.test`));
      return out;
    }
    const intentStatuses = (sessions: { session: Record<string, any> }[]) => {
      const counts: Record<string, number> = {};
      for (const { session } of sessions) {
        const st = fake.intents.get(fake.sessions.get(session.id)!.payment_intent)!.status as string;
        counts[st] = (counts[st] ?? 0) + 1;
      }
      return counts;
    };

    it(`captures exactly ${LIMIT} of ${CUSTOMERS} concurrent card payments and cancels the rest at Stripe`, async function () {
      this.timeout(180_000);
      const link = await newLink(s, LIMIT, 'Early Bird 2026');
      const all = await customers(link.path!, CUSTOMERS);
      const paid = await Promise.all(all.map(({ session }) => fake.pay(session.id)));
      expect(paid.every((p) => p.status === 303)).to.equal(true);
      expect(fake.sent.filter((w) => w.status !== 200 && all.some((c) => w.event.data.object.metadata?.paylink_payment_id === c.paymentId)), 'every webhook answered 200').to.deep.equal([]);
      expect(intentStatuses(all)).to.deep.equal({ succeeded: LIMIT, canceled: CUSTOMERS - LIMIT });
      const rows: { status: string; n: number | string }[] = await env.rt.db('payments').where({ link_id: link.key }).groupBy('status').select('status').count({ n: '*' });
      expect(Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]))).to.deep.equal({ paid: LIMIT, voided: CUSTOMERS - LIMIT });
      const l = await env.rt.db('links').where({ id: link.key }).first();
      expect([Number(l.paid_count), Boolean(l.active), l.inactive_reason]).to.deep.equal([LIMIT, false, 'limit_reached']);
    });

    it('negative control: a read-check-write claim behind the same webhooks oversells at Stripe', async function () {
      this.timeout(180_000);
      const link = await newLink(s, LIMIT, 'Naive Bird');
      const all = await customers(link.path!, CUSTOMERS);
      const checkoutService = env.rt.services.checkout;
      const original = checkoutService.authorize;
      const provider = env.rt.registries.providers.get('stripe')!;
      const settings = await env.rt.services.providers.settingsFor(s.merchant.key, 'stripe');
      const db = env.rt.db;
      // What DESIGN.md forbids: read the count, decide, capture at Stripe, write the count back.
      checkoutService.authorize = async (paymentId: string, providerRef: string) => {
        const p = (await checkoutService.getPayment(paymentId))!;
        const current = await db('links').where({ id: link.key }).first('paid_count', 'payment_limit');
        await new Promise((r) => setImmediate(r));
        const won = Number(current.paid_count) < Number(current.payment_limit);
        const ref = { paymentId, providerRef, amount: p.amount, currency: p.currency };
        if (won) {
          await provider.capture(ref, settings);
          await db('links').where({ id: link.key }).update({ paid_count: Number(current.paid_count) + 1 });
          await db('payments').where({ id: p.key }).update({ status: 'paid', provider_ref: providerRef });
        } else {
          await db('payments').where({ id: p.key }).update({ status: 'voided', provider_ref: providerRef });
          await provider.void(ref, settings);
        }
        return checkoutService.outcomeOf(paymentId);
      };
      try {
        await Promise.all(all.map(({ session }) => fake.pay(session.id)));
      } finally {
        checkoutService.authorize = original;
      }
      const captured = intentStatuses(all).succeeded ?? 0;
      expect(captured, 'the naive claim must oversell, or this test could not catch an oversell').to.be.above(LIMIT);
    });
  });

  describe('methods Stripe captures at once', () => {
    it('pays a bank debit when Stripe reports it succeeded, and fails one it reports failed', async () => {
      const s = await shop('all');
      const link = await newLink(s, 10, 'Studio membership');
      const ok = await checkout(s, link.path!);
      const created = fake.requests.find((r) => r.path === '/v1/checkout/sessions' && r.body.client_reference_id === ok.paymentId)!;
      expect(created.body.payment_intent_data.capture_method).to.equal('automatic');
      expect(created.body).not.to.have.property('payment_method_types');

      const bank = await supertest(fake.origin).post(`/c/pay/${ok.session.id}`).type('form').send({ method: 'bank' }).expect(303);
      expect(bank.headers.location).to.include('/p/provider-stripe/return/');
      expect((await payment(s, ok.paymentId)).status, 'processing at the bank').to.equal('pending');
      await fake.settleAsync(ok.session.id, true);
      expect(await payment(s, ok.paymentId)).to.deep.include({ status: 'paid', payment_method: { type: 'sepa_debit' } });
      expect(fake.requests.filter((r) => r.path.endsWith('/capture')).filter((r) => r.path.includes(ok.session.payment_intent)), 'nothing to capture').to.have.length(0);

      const no = await checkout(s, link.path!, 'bob@example.test');
      await supertest(fake.origin).post(`/c/pay/${no.session.id}`).type('form').send({ method: 'bank' }).expect(303);
      await fake.settleAsync(no.session.id, false);
      const failed = await payment(s, no.paymentId);
      expect([failed.status, failed.failure_code]).to.deep.equal(['failed', 'payment_failed']);
      await waitFor(async () => (await eventsOf('payment.failed', no.paymentId)).length === 1);
    });
  });
});

forEachTarget('provider-stripe with an install-wide key', (target) => {
  const account: FakeStripeAccount = { secretKey: key('sk_test_'), webhookSecret: key('whsec_'), webhookUrl: null };
  const app = useStripeApp(target, {
    plugin: (fake) => {
      fake.addAccount(account);
      return { secretKey: account.secretKey, webhookSecret: account.webhookSecret };
    },
  });
  let fake: FakeStripe;
  let env: TestEnv;
  before(() => {
    ({ fake, env } = app);
    account.webhookUrl = `${app.origin}/p/provider-stripe/webhook`;
  });

  it('serves a merchant who set no keys: checkout, the install’s webhook endpoint, paid', async () => {
    const owner = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    const { secret } = await env.rt.services.apiKeys.create(merchant, { name: 'test' });
    const call = apiClient(env.app, secret);
    await call('patch', '/providers/stripe', { enabled: true }).expect(200);
    await call('patch', '/providers/sandbox', { enabled: false }).expect(200);
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Open studio', amount: AMOUNT });
    const res = await supertest(env.app).post(`/${merchant.handle}/${link.path}`).type('form').send({ name: 'Ada', email: 'ada@example.test' }).expect(303);
    const session = fake.sessions.get(new URL(res.headers.location).pathname.split('/').pop()!)!;
    await fake.pay(session.id);
    expect(fake.sent.map((w) => w.status)).to.deep.equal([200, 200]);
    expect((await call('get', `/payments/${session.client_reference_id}`).expect(200)).body.status).to.equal('paid');
  });
});
