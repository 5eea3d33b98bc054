// A capture (or void) that fails with a retryable ProviderError is retried as a job with backoff while
// the payment stays authorized and keeps its slot; a permanent error, or the last attempt, fails the
// payment and gives the slot back — and lets go of the authorization. Nothing is left hanging.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { SETTLE_RECOVERY_MS, SETTLE_RETRY_ATTEMPTS, SETTLE_RETRY_FIRST_MS } from '../src/features/checkout/service.ts';
import { ProviderError, type PaymentProvider } from '../src/plugin-api.ts';

forEachTarget('capture retries', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  const calls = { capture: 0, void: 0 };
  /** How many of the next captures fail with a retryable error. */
  let failNext = 0;

  before(async () => {
    env = await build(target);
    const handle = uniqueHandle('retry');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Kiln Club', handle, email: `${handle}@example.test`, password: 'correct horse battery' }));
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    sandbox.capture = async () => {
      calls.capture++;
      if (failNext > 0) {
        failNext--;
        throw new ProviderError('the bank is busy', { retryable: true, code: 'bank_busy' });
      }
    };
    sandbox.void = async () => void calls.void++;
  });
  beforeEach(() => {
    calls.capture = 0;
    calls.void = 0;
  });
  after(() => env?.close());

  let made = 0;
  /** A one-place link and a customer's pending payment on it. */
  const payment1 = async () => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: `Wheel class ${++made}`, amount: 4500, payment_limit: 1 });
    const { payment } = await env.rt.services.checkout.start(shop, link, { amount: 4500, currency: 'EUR', name: 'Ada', email: 'ada@example.test' });
    return { link, payment };
  };
  const row = (id: string) => env.rt.db('payments').where({ public_id: id }).first();
  const linkRow = (key: number) => env.rt.db('links').where({ id: key }).first();

  it('retries a capture that fails twice, then succeeds; the payment stays authorized with its slot meanwhile', async () => {
    const { link, payment } = await payment1();
    failNext = 2;
    const outcome = await env.rt.services.checkout.authorize(payment.id, 'sbx_retry');
    expect([outcome.status, outcome.reason]).to.deep.equal(['processing', 'capture_retrying']);
    let p = await row(payment.id);
    expect([p.status, p.failure_code]).to.deep.equal(['authorized', 'capture_retrying']);
    let l = await linkRow(link.key);
    expect([Number(l.paid_count), Boolean(l.active), l.inactive_reason], 'the slot stays taken while capturing').to.deep.equal([1, false, 'limit_reached']);

    await env.rt.jobs.drain();
    expect(calls.capture, 'not before the first retry is due').to.equal(1);
    env.clock.advance(SETTLE_RETRY_FIRST_MS + 1);
    await env.rt.jobs.drain();
    expect(calls.capture).to.equal(2);
    expect((await row(payment.id)).status).to.equal('authorized');

    env.clock.advance(60_000); // past the queue's backoff
    await env.rt.jobs.drain();
    expect(calls.capture).to.equal(3);
    p = await row(payment.id);
    expect([p.status, p.failure_code]).to.deep.equal(['paid', null]);
    l = await linkRow(link.key);
    expect([Number(l.paid_count), Number(l.payments_count), Number(l.revenue)]).to.deep.equal([1, 1, 4500]);

    // The recovery job of the claim finds it settled and does nothing.
    env.clock.advance(SETTLE_RECOVERY_MS);
    await env.rt.jobs.drain();
    expect([calls.capture, calls.void]).to.deep.equal([3, 0]);
    const succeeded = await env.rt.db('events').where({ type: 'payment.succeeded' }).andWhere('payload', 'like', `%${payment.id}%`).count({ n: '*' }).first();
    expect(Number((succeeded as { n: number }).n)).to.equal(1);
  });

  it('after the last attempt: failed, the slot released and the authorization voided', async () => {
    const { link, payment } = await payment1();
    failNext = 1_000;
    await env.rt.services.checkout.authorize(payment.id, 'sbx_never');
    for (let i = 0; i < SETTLE_RETRY_ATTEMPTS + 2 && (await row(payment.id)).status === 'authorized'; i++) {
      env.clock.advance(2 * 60 * 60_000);
      await env.rt.jobs.drain();
    }
    failNext = 0;
    const p = await row(payment.id);
    expect([p.status, p.failure_code]).to.deep.equal(['failed', 'capture_failed']);
    expect(calls.capture, 'the first try and every retry').to.equal(1 + SETTLE_RETRY_ATTEMPTS);
    expect(calls.void, 'the authorization is let go').to.equal(1);
    const l = await linkRow(link.key);
    expect([Number(l.paid_count), Boolean(l.active)]).to.deep.equal([0, true]);
    const job = await env.rt.db('jobs').where({ unique_key: `settle-retry:${payment.id}` }).first('state');
    expect(job.state).to.equal('done');
  });

  it('retries a void that fails with a retryable error; the payment ends voided and the winner keeps the slot', async () => {
    const { link, payment } = await payment1();
    const late = (await env.rt.services.checkout.start(shop, link, { amount: 4500, currency: 'EUR', name: 'Bo', email: 'bo@example.test' })).payment;
    expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_first')).status).to.equal('paid');
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const voidIt = sandbox.void;
    let failVoids = 2;
    sandbox.void = async () => {
      calls.void++;
      if (failVoids-- > 0) throw new ProviderError('bank timeout', { retryable: true });
    };
    try {
      const outcome = await env.rt.services.checkout.authorize(late.id, 'sbx_second');
      expect([outcome.status, outcome.reason]).to.deep.equal(['processing', 'void_retrying']);
      env.clock.advance(SETTLE_RETRY_FIRST_MS + 1);
      await env.rt.jobs.drain();
      env.clock.advance(60_000);
      await env.rt.jobs.drain();
    } finally {
      sandbox.void = voidIt;
    }
    const p = await row(late.id);
    expect([p.status, p.failure_code]).to.deep.equal(['voided', 'limit_reached']);
    expect(calls.void).to.equal(3);
    expect(Number((await linkRow(link.key)).paid_count)).to.equal(1);
  });

  it('an immediate-capture provider is never asked to capture; a lost slot is refunded in full instead of voided', async () => {
    const { link, payment } = await payment1();
    const late = (await env.rt.services.checkout.start(shop, link, { amount: 4500, currency: 'EUR', name: 'Bo', email: 'bo@example.test' })).payment;
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const refunds: [string, number][] = [];
    const refund = sandbox.refund;
    sandbox.captureModel = 'immediate';
    sandbox.refund = async (p, amount) => void refunds.push([p.refundId, amount]);
    try {
      expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_now')).status).to.equal('paid');
      const lost = await env.rt.services.checkout.authorize(late.id, 'sbx_late');
      expect([lost.status, lost.reason]).to.deep.equal(['voided', 'limit_reached']);
    } finally {
      delete sandbox.captureModel;
      sandbox.refund = refund;
    }
    expect([calls.capture, calls.void]).to.deep.equal([0, 0]);
    expect(refunds).to.deep.equal([[`${late.id}_limit`, 4500]]);
  });

  it('a permanent capture error fails at once and frees the slot (no retry job)', async () => {
    const { link, payment } = await payment1();
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const capture = sandbox.capture;
    sandbox.capture = async () => {
      throw new ProviderError('card expired', { retryable: false, code: 'expired_card' });
    };
    try {
      const outcome = await env.rt.services.checkout.authorize(payment.id, 'sbx_perm');
      expect([outcome.status, outcome.reason]).to.deep.equal(['failed', 'capture_failed']);
    } finally {
      sandbox.capture = capture;
    }
    expect(Number((await linkRow(link.key)).paid_count)).to.equal(0);
    expect(await env.rt.db('jobs').where({ unique_key: `settle-retry:${payment.id}` }).first()).to.equal(undefined);
  });
});
