// A request that claimed a payment-limit slot can die between its commit and the provider call
// (DESIGN.md: "a crash between commit and side effect loses nothing"). The claim records a
// `checkout.settle` job in the same transaction; once the recovery delay has passed, the job captures
// (slot won) or voids (slot lost) the authorization, and a late original request changes nothing.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { SETTLE_RECOVERY_MS } from '../src/features/checkout/service.ts';
import type { PaymentProvider, ProviderPaymentRef } from '../src/plugin-api.ts';
import { waitFor } from './support/wait.ts';

forEachTarget('checkout recovery', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  let sandbox: PaymentProvider;
  const calls = { capture: 0, void: 0 };
  /** While set, the next provider call hangs until released: the request "dies" there. */
  let stall: { release: () => void } | null = null;

  const maybeStall = async () => {
    if (!stall) return;
    await new Promise<void>((resolve) => {
      stall = { release: resolve };
    });
  };

  before(async () => {
    env = await build(target);
    const handle = uniqueHandle('recover');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Kiln Club', handle, email: `${handle}@example.test`, password: 'correct horse battery' }));
    sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const { capture, void: voidIt } = sandbox;
    sandbox.capture = async (p: ProviderPaymentRef, s) => {
      calls.capture++;
      await maybeStall();
      await capture(p, s);
    };
    sandbox.void = async (p: ProviderPaymentRef, s) => {
      calls.void++;
      await maybeStall();
      await voidIt(p, s);
    };
  });
  beforeEach(() => {
    calls.capture = 0;
    calls.void = 0;
    stall = null;
  });
  after(() => env?.close());

  const start = async (linkId: string) => {
    const link = await env.rt.services.links.get(shop, linkId);
    return (await env.rt.services.checkout.start(shop, link, { amount: 4500, currency: 'EUR', name: 'Ada', email: 'ada@example.test' })).payment;
  };
  const statusOf = async (paymentId: string) => (await env.rt.db('payments').where({ public_id: paymentId }).first('status')).status as string;
  const eventsOf = async (type: string, paymentId: string) =>
    (await env.rt.db('events').where({ type }).select('payload')).filter((e: { payload: string }) => JSON.parse(e.payload).paymentId === paymentId).length;

  it('captures an authorization whose request died before capturing, once the recovery delay has passed', async () => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Saturday wheel class', amount: 4500, payment_limit: 3 });
    const payment = await start(link.id);
    stall = { release: () => {} };
    const original = env.rt.services.checkout.authorize(payment.id, 'sbx_stalled');
    await waitFor(() => calls.capture === 1, { message: 'the recovery job to capture' });
    expect(await statusOf(payment.id)).to.equal('authorized');
    const held = stall as { release: () => void } | null;
    stall = null;

    // Not before the delay: a slow provider call is not a dead request.
    await env.rt.jobs.drain();
    expect(await statusOf(payment.id)).to.equal('authorized');

    env.clock.advance(SETTLE_RECOVERY_MS + 1);
    await env.rt.jobs.drain();
    expect(await statusOf(payment.id)).to.equal('paid');
    const row = await env.rt.db('links').where({ id: link.key }).first();
    expect([Number(row.paid_count), Number(row.payments_count), Number(row.revenue)]).to.deep.equal([1, 1, 4500]);

    // The original request wakes up late: it records nothing twice.
    held!.release();
    const outcome = await original;
    expect(outcome.status).to.equal('paid');
    expect(await eventsOf('payment.succeeded', payment.id)).to.equal(1);
    expect(Number((await env.rt.db('links').where({ id: link.key }).first()).payments_count)).to.equal(1);
  });

  it('voids an authorization that lost the last slot when its request died before voiding', async () => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Private firing', amount: 4500, payment_limit: 1 });
    const first = await start(link.id);
    const second = await start(link.id);
    expect((await env.rt.services.checkout.authorize(first.id, 'sbx_first')).status).to.equal('paid');

    stall = { release: () => {} };
    const original = env.rt.services.checkout.authorize(second.id, 'sbx_second');
    await waitFor(() => calls.void === 1, { message: 'the recovery job to void' });
    const held = stall as { release: () => void } | null;
    stall = null;
    expect(await statusOf(second.id)).to.equal('authorized');

    env.clock.advance(SETTLE_RECOVERY_MS + 1);
    await env.rt.jobs.drain();
    expect(await statusOf(second.id)).to.equal('voided');
    expect(Number((await env.rt.db('links').where({ id: link.key }).first()).paid_count)).to.equal(1);

    held!.release();
    expect((await original).status).to.equal('voided');
    expect(await eventsOf('payment.failed', second.id)).to.equal(1);
  });

  it('leaves settled payments alone when their recovery job comes due', async () => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Glaze night', amount: 4500 });
    const payment = await start(link.id);
    expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_ok')).status).to.equal('paid');
    env.clock.advance(SETTLE_RECOVERY_MS + 1);
    await env.rt.jobs.drain();
    expect(calls.capture).to.equal(1);
    expect(await eventsOf('payment.succeeded', payment.id)).to.equal(1);
  });
});
