// Refunds: `POST /api/v1/payments/:id/refunds` and the payment page's button call the provider; the
// payment becomes partially_refunded / refunded, revenue is shown net, a limit slot is not reopened,
// `payment.refunded` is recorded, and two refunds at once never exceed what is left (with a negative
// control showing that a read-check-write refund would).
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, signUp, type TestEnv } from './support/harness.ts';
import { expectFieldErrors, expectProblem, twoApiMerchants, type ApiCall, type ApiMerchant } from './support/api.ts';
import { REFUND_RETRY_FIRST_MS } from '../src/features/checkout/refunds.ts';
import { ProviderError, type PaymentProvider, type ProviderRefundRef } from '../src/plugin-api.ts';
import type { Link } from '../src/features/links/service.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

const AMOUNT = 5000;

forEachTarget('refunds', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  const refunded: { refundId: string; amount: number }[] = [];
  /** What the sandbox's refund does next: nothing (succeeds) or throw this. */
  let refundFails: ProviderError[] = [];

  before(async () => {
    ({ env, a, b, call, callB } = await twoApiMerchants(target, ['Kiln Club', 'Other Shop']));
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    sandbox.refund = async (p: ProviderRefundRef, amount: number) => {
      await new Promise((r) => setTimeout(r, 1)); // the provider's round trip widens any race
      const failure = refundFails.shift();
      if (failure) throw failure;
      refunded.push({ refundId: p.refundId, amount });
      return { providerRef: `sbx_re_${refunded.length}` };
    };
  });
  beforeEach(() => {
    refunded.length = 0;
    refundFails = [];
  });
  after(() => env?.close());

  let made = 0;
  /** A link (limit 1) paid once with the sandbox: its payment. */
  async function paid(merchant: Merchant = a.merchant, limit: number | null = 1): Promise<{ link: Link; paymentId: string }> {
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: `Pottery course ${++made}`, amount: AMOUNT, payment_limit: limit });
    const { payment } = await env.rt.services.checkout.start(merchant, link, { amount: AMOUNT, currency: link.currency, name: 'Ada', email: 'ada@example.test' });
    expect((await env.rt.services.checkout.authorize(payment.id, `sbx_${made}`)).status).to.equal('paid');
    return { link, paymentId: payment.id };
  }
  const linkRow = (link: Link) => env.rt.db('links').where({ id: link.key }).first();
  const hourlyRevenue = async (link: Link) => Number((await env.rt.db('link_stats_hourly').where({ link_id: link.key }).sum({ r: 'revenue' }).first())?.r ?? 0);

  it('refunds part, then the rest: statuses, amounts, net revenue, events; the slot stays taken', async () => {
    const { link, paymentId } = await paid();
    const first = await call('post', `/payments/${paymentId}/refunds`, { amount: 2000, reason: 'Missed the first class' }, { 'Idempotency-Key': `r1-${paymentId}` }).expect(201);
    expect(first.body).to.include({ object: 'refund', payment_id: paymentId, amount: 2000, currency: 'EUR', status: 'succeeded', reason: 'Missed the first class' });
    expect(first.body.id).to.match(/^re_/);
    expect(first.headers.location).to.equal(`/api/v1/payments/${paymentId}/refunds/${first.body.id}`);
    expect(refunded).to.deep.equal([{ refundId: first.body.id, amount: 2000 }]);
    expect((await call('get', first.headers.location.replace('/api/v1', '')).expect(200)).body).to.deep.equal(first.body);
    expectProblem(await callB('get', first.headers.location.replace('/api/v1', '')), 404, 'not_found');

    const replay = await call('post', `/payments/${paymentId}/refunds`, { amount: 2000, reason: 'Missed the first class' }, { 'Idempotency-Key': `r1-${paymentId}` }).expect(201);
    expect(replay.headers['idempotent-replayed']).to.equal('true');
    expect(replay.body.id).to.equal(first.body.id);
    expect(refunded).to.have.length(1);

    let payment = (await call('get', `/payments/${paymentId}`).expect(200)).body;
    expect(payment).to.include({ status: 'partially_refunded', amount_refunded: 2000, amount: AMOUNT });
    expect(payment.refunds.map((r: { id: string }) => r.id)).to.deep.equal([first.body.id]);
    let l = await linkRow(link);
    expect([Number(l.revenue), Number(l.payments_count), Number(l.paid_count), Boolean(l.active), l.inactive_reason]).to.deep.equal([3000, 1, 1, false, 'limit_reached']);
    expect(await hourlyRevenue(link)).to.equal(3000);
    expect((await call('get', `/links/${link.id}`).expect(200)).body.stats).to.include({ revenue: 3000, payments: 1 });
    // The link's payments carry their refunds too, as /payments does.
    const ofLink = (await call('get', `/links/${link.id}/payments`).expect(200)).body.data;
    expect(ofLink.map((p: { id: string; amount_refunded: number; refunds: { id: string }[] }) => [p.id, p.amount_refunded, p.refunds.map((r) => r.id)])).to.deep.equal([[paymentId, 2000, [first.body.id]]]);

    const tooMuch = await call('post', `/payments/${paymentId}/refunds`, { amount: 3001 });
    expect(expectFieldErrors(tooMuch, ['amount'], 'amount_too_large').errors[0].code).to.equal('amount_too_large');

    const rest = await call('post', `/payments/${paymentId}/refunds`, {}).expect(201);
    expect(rest.body).to.include({ amount: 3000, status: 'succeeded', reason: null });
    payment = (await call('get', `/payments/${paymentId}`).expect(200)).body;
    expect(payment).to.include({ status: 'refunded', amount_refunded: AMOUNT });
    l = await linkRow(link);
    expect([Number(l.revenue), Number(l.paid_count), Boolean(l.active)], 'a refund never reopens the link').to.deep.equal([0, 1, false]);
    expect(await hourlyRevenue(link)).to.equal(0);
    await supertest(env.app).get(`/${a.handle}/${link.path}`).expect(410);

    expectProblem(await call('post', `/payments/${paymentId}/refunds`, {}), 409, 'payment_not_refundable');
    const events = (await env.rt.db('events').where({ type: 'payment.refunded' }).orderBy('id')).map((e: { payload: string }) => JSON.parse(e.payload)).filter((p: { paymentId: string }) => p.paymentId === paymentId);
    expect(events).to.deep.equal([
      { merchantId: a.merchant.id, paymentId, refundId: first.body.id, linkId: link.id, amount: 2000, currency: 'EUR', amountRefunded: 2000, status: 'partially_refunded', reason: 'Missed the first class' },
      { merchantId: a.merchant.id, paymentId, refundId: rest.body.id, linkId: link.id, amount: 3000, currency: 'EUR', amountRefunded: AMOUNT, status: 'refunded', reason: null },
    ]);
    expect((await call('get', `/payments?status=partially_refunded`).expect(200)).body.data.map((p: { id: string }) => p.id)).not.to.include(paymentId);
    expect((await call('get', `/payments/${paymentId}/refunds`).expect(200)).body.data).to.have.length(2);
  });

  it('refuses bad input with errors by field, another merchant’s payment with 404, an unpaid one with 409', async () => {
    const { paymentId } = await paid();
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { amount: 'ten' }), ['amount']);
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { amount: 10.5 }), ['amount']);
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { amount: 0 }), ['amount']);
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { reason: 'x'.repeat(501) }), ['reason']);
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { reason: 'a\u0000b' }), ['reason']);
    expectProblem(await callB('post', `/payments/${paymentId}/refunds`, {}), 404, 'not_found');
    expectProblem(await call('post', '/payments/pay_nope/refunds', {}), 404, 'not_found');
    const link = await env.rt.services.links.create(a.merchant, { type: 'amount', name: `Unpaid ${++made}`, amount: AMOUNT });
    const { payment } = await env.rt.services.checkout.start(a.merchant, link, { amount: AMOUNT, currency: 'EUR', name: 'Bo', email: 'bo@example.test' });
    expectProblem(await call('post', `/payments/${payment.id}/refunds`, {}), 409, 'payment_not_refundable');
    expect(refunded).to.deep.equal([]);
    expect(await env.rt.db('refunds').whereIn('payment_id', env.rt.db('payments').select('id').whereIn('public_id', [paymentId, payment.id])).count({ n: '*' }).first()).to.deep.equal({ n: 0 });
  });

  it('records a refund the provider refuses as failed and gives its amount back', async () => {
    const { link, paymentId } = await paid();
    refundFails = [new ProviderError('charge is disputed', { retryable: false, code: 'charge_disputed' })];
    const res = await call('post', `/payments/${paymentId}/refunds`, { amount: 1000 }).expect(201);
    expect(res.body).to.include({ status: 'failed', failure_code: 'charge_disputed', amount: 1000 });
    const p = await env.rt.db('payments').where({ public_id: paymentId }).first();
    expect([p.status, Number(p.amount_refunded), Number(p.refund_claimed)]).to.deep.equal(['paid', 0, 0]);
    expect(Number((await linkRow(link)).revenue)).to.equal(AMOUNT);
    await call('post', `/payments/${paymentId}/refunds`, {}).expect(201);
    expect(refunded.map((r) => r.amount)).to.deep.equal([AMOUNT]);
  });

  it('keeps a refund pending on a retryable error and finishes it from a job with backoff', async () => {
    const { paymentId } = await paid();
    refundFails = [new ProviderError('try later', { retryable: true }), new ProviderError('still busy', { retryable: true })];
    const res = await call('post', `/payments/${paymentId}/refunds`, { amount: 1500 }).expect(201);
    expect(res.body.status).to.equal('pending');
    expectFieldErrors(await call('post', `/payments/${paymentId}/refunds`, { amount: 3501 }), ['amount'], 'amount_too_large');
    env.clock.advance(REFUND_RETRY_FIRST_MS + 1);
    await env.rt.jobs.drain();
    expect((await call('get', `/payments/${paymentId}`).expect(200)).body.refunds[0].status).to.equal('pending');
    env.clock.advance(60_000);
    await env.rt.jobs.drain();
    const payment = (await call('get', `/payments/${paymentId}`).expect(200)).body;
    expect(payment).to.include({ status: 'partially_refunded', amount_refunded: 1500 });
    expect(payment.refunds[0]).to.include({ id: res.body.id, status: 'succeeded' });
    expect(refunded).to.deep.equal([{ refundId: res.body.id, amount: 1500 }]);
  });

  it('on the payment page: amount and reason, a review step, one refund however often it is confirmed', async () => {
    const owner = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    const { paymentId } = await paid(merchant);
    const page = await owner.agent.get(`/app/payments/${paymentId}`).expect(200);
    expect(page.text).to.include('Up to €50.00 can be refunded.');
    const csrf = csrfFrom(page.text);

    const bad = await owner.agent.post(`/app/payments/${paymentId}/refund`).type('form').send({ _csrf: csrf, amount: '60.00', reason: '' }).expect(422);
    expect(bad.text).to.match(/id="f-refund-amount-error">At most €50.00 is left to refund\.</);
    const bad2 = await owner.agent.post(`/app/payments/${paymentId}/refund`).type('form').send({ _csrf: csrf, amount: '1.234', reason: '' }).expect(422);
    expect(bad2.text).to.include('EUR amounts have at most 2 decimals.');

    const review = await owner.agent.post(`/app/payments/${paymentId}/refund`).type('form').send({ _csrf: csrf, amount: '12.50', reason: 'Broken mug' }).expect(200);
    expect(review.text).to.include('Confirm refund of €12.50');
    expect(refunded, 'the review refunds nothing yet').to.deep.equal([]);
    const key = /name="key" value="([^"]+)"/.exec(review.text)![1];
    const confirm = { _csrf: csrf, amount: '12.50', reason: 'Broken mug', key };
    await owner.agent.post(`/app/payments/${paymentId}/refunds`).type('form').send(confirm).expect(303);
    await owner.agent.post(`/app/payments/${paymentId}/refunds`).type('form').send(confirm).expect(303);
    expect(refunded.map((r) => r.amount), 'confirmed twice, refunded once').to.deep.equal([1250]);

    const after = await owner.agent.get(`/app/payments/${paymentId}`).expect(200);
    expect(after.text).to.include('Refunded €12.50.');
    expect(after.text).to.include('Partially refunded');
    expect(after.text).to.include('Broken mug');
    expect(after.text).to.include('Up to €37.50 can be refunded.');
    const list = await owner.agent.get('/app/payments?status=partially_refunded').expect(200);
    expect(list.text).to.include(paymentId);
    const csv = (await owner.agent.get('/app/payments.csv').buffer(true).expect(200)).text.trim().split('\r\n');
    const column = csv[0].split(',').indexOf('amount_refunded');
    expect(column).to.be.above(0);
    expect(csv.find((line) => line.startsWith(paymentId))!.split(',')[column], 'the CSV says what was refunded').to.equal('12.50');
  });

  it('never refunds more than the payment when refunds race', async function () {
    this.timeout(60_000);
    const { paymentId } = await paid(a.merchant, null);
    const tries = 20;
    const results = await Promise.all(
      Array.from({ length: tries }, () =>
        env.rt.services.refunds.refund(a.merchant, paymentId, { amount: 1500 }).then(
          (r) => r.refund.status,
          (err: { code?: string }) => err.code,
        ),
      ),
    );
    expect(results.filter((r) => r === 'succeeded')).to.have.length(3);
    expect(results.filter((r) => r === 'amount_too_large')).to.have.length(tries - 3);
    const p = await env.rt.db('payments').where({ public_id: paymentId }).first();
    expect([Number(p.amount_refunded), Number(p.refund_claimed), p.status]).to.deep.equal([4500, 4500, 'partially_refunded']);
    expect(refunded.reduce((s, r) => s + r.amount, 0)).to.equal(4500);
  });

  it('negative control: a read-check-write refund on the same tables over-refunds at the same concurrency', async function () {
    this.timeout(60_000);
    const { paymentId } = await paid(a.merchant, null);
    const db = env.rt.db;
    const payment = await db('payments').where({ public_id: paymentId }).first();
    /** What refunds.ts must not do: read what is refunded, decide, then write. */
    async function naiveRefund(amount: number): Promise<boolean> {
      const row = await db('refunds').where({ payment_id: payment.id }).sum({ s: 'amount' }).first();
      await new Promise((r) => setTimeout(r, 1)); // the provider call between check and write
      if (Number(row?.s ?? 0) + amount > Number(payment.amount)) return false;
      const now = env.clock.now();
      await db('refunds').insert({ public_id: `re_naive_${Math.random().toString(36).slice(2)}`, merchant_id: payment.merchant_id, payment_id: payment.id, amount, currency: 'EUR', status: 'succeeded', created_at: now, updated_at: now });
      return true;
    }
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => naiveRefund(1500)));
    const total = outcomes.filter(Boolean).length * 1500;
    expect(total, 'the naive refund must over-refund, or this suite could not catch it').to.be.above(AMOUNT);
  });
});
