// Payment limits under concurrency (DESIGN.md "Checkout and the payment limit"): exactly N paid,
// whatever the concurrency, because the slot claim is one conditional UPDATE. The negative control
// runs a read-check-write claim against the same tables at the same concurrency and shows that this
// test would catch an oversell.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import type { Payment } from '../src/features/checkout/service.ts';
import type { PaymentProvider } from '../src/plugin-api.ts';

const LIMIT = 50;
const CUSTOMERS = 200;
const AMOUNT = 3900;

forEachTarget('payment limits', (target) => {
  let env: TestEnv;
  let shop: Merchant;
  const calls = { capture: 0, void: 0 };
  /** Payment ids whose capture the provider refuses. */
  const refuseCapture = new Set<string>();

  before(async () => {
    env = await build(target);
    const handle = uniqueHandle('limit');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Early Bird Gym', handle, email: `${handle}@example.test`, password: 'correct horse battery' }));
    // Count what core asks of the provider; a tick of "network" in each call widens every race window.
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const { capture, void: voidIt } = sandbox;
    sandbox.capture = async (p, s) => {
      calls.capture++;
      await new Promise((r) => setTimeout(r, 1));
      if (refuseCapture.has(p.paymentId)) throw new Error('sandbox: capture refused');
      await capture(p, s);
    };
    sandbox.void = async (p, s) => {
      calls.void++;
      await new Promise((r) => setTimeout(r, 1));
      await voidIt(p, s);
    };
  });
  beforeEach(() => {
    calls.capture = 0;
    calls.void = 0;
  });
  after(() => env?.close());

  const newLink = (limit: number, name = 'Early Bird 2026') => env.rt.services.links.create(shop, { type: 'amount', name, amount: AMOUNT, payment_limit: limit });
  /** `n` customers who each reached the card page: a session and a pending payment apiece. */
  async function customers(link: Link, n: number): Promise<Payment[]> {
    const out: Payment[] = [];
    for (let i = 0; i < n; i++) {
      const { payment } = await env.rt.services.checkout.start(shop, link, { amount: AMOUNT, currency: 'EUR', name: `Customer ${i}`, email: `c${i}@example.test` });
      out.push(payment);
    }
    return out;
  }
  const statusCounts = async (link: Link) => {
    const rows: { status: string; n: number | string }[] = await env.rt.db('payments').where({ link_id: link.key }).groupBy('status').select('status').count({ n: '*' });
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  };
  const row = (link: Link) => env.rt.db('links').where({ id: link.key }).first();

  it(`lets exactly ${LIMIT} of ${CUSTOMERS} concurrent completions pay, voids the rest, and closes the link`, async function () {
    this.timeout(120_000);
    const link = await newLink(LIMIT);
    const payments = await customers(link, CUSTOMERS);
    const outcomes = await Promise.all(payments.map((p, i) => env.rt.services.checkout.authorize(p.id, `sbx_race_${i}`)));

    expect(outcomes.filter((o) => o.status === 'paid')).to.have.length(LIMIT);
    expect(outcomes.filter((o) => o.status === 'voided' && o.reason === 'limit_reached')).to.have.length(CUSTOMERS - LIMIT);
    expect(await statusCounts(link)).to.deep.equal({ paid: LIMIT, voided: CUSTOMERS - LIMIT });
    expect(calls, 'the provider captured exactly the winners and voided the rest').to.deep.equal({ capture: LIMIT, void: CUSTOMERS - LIMIT });
    const r = await row(link);
    expect([Number(r.paid_count), Number(r.payments_count), Number(r.revenue)]).to.deep.equal([LIMIT, LIMIT, LIMIT * AMOUNT]);
    expect([Boolean(r.active), r.inactive_reason]).to.deep.equal([false, 'limit_reached']);
    const closed = await env.rt.db('events').where({ type: 'link.limit_reached' }).andWhere('payload', 'like', `%${link.id}%`).count({ n: '*' }).first();
    expect(Number((closed as { n: number }).n), 'link.limit_reached is recorded once').to.equal(1);

    // Authorizing any of them again changes nothing.
    const again = await Promise.all(payments.slice(0, 20).map((p) => env.rt.services.checkout.authorize(p.id, 'sbx_again')));
    expect(again.map((o) => o.status)).to.deep.equal(outcomes.slice(0, 20).map((o) => o.status));
    expect(calls.capture).to.equal(LIMIT);

    const page = await supertest(env.app).get(`/${shop.handle}/${link.path}`).expect(410);
    expect(page.text).to.include('Payment limit reached');

    // Raising the limit reopens the link for exactly the new slots.
    await env.rt.services.links.update(shop, link.id, { payment_limit: LIMIT + 2 });
    await supertest(env.app).get(`/${shop.handle}/${link.path}`).expect(200);
    const late = await customers(link, 3);
    const lateOutcomes = await Promise.all(late.map((p) => env.rt.services.checkout.authorize(p.id, 'sbx_late')));
    expect(lateOutcomes.map((o) => o.status).sort()).to.deep.equal(['paid', 'paid', 'voided']);
    expect(Number((await row(link)).paid_count)).to.equal(LIMIT + 2);
    await supertest(env.app).get(`/${shop.handle}/${link.path}`).expect(410);
  });

  it('counts only paid payments: declines and refused captures leave the slot free', async () => {
    const link = await newLink(1, 'One-to-one session');
    const [declined, refused, paid, late] = await customers(link, 4);
    await env.rt.services.checkout.decline(declined.id, { code: 'card_declined', message: 'Declined' });
    refuseCapture.add(refused.id);
    const r1 = await env.rt.services.checkout.authorize(refused.id, 'sbx_refused');
    expect([r1.status, r1.reason]).to.deep.equal(['failed', 'capture_failed']);
    let r = await row(link);
    expect([Number(r.paid_count), Boolean(r.active)], 'the refused capture gave its slot back').to.deep.equal([0, true]);
    expect((await env.rt.services.checkout.authorize(paid.id, 'sbx_paid')).status).to.equal('paid');
    expect((await env.rt.services.checkout.authorize(late.id, 'sbx_late')).status).to.equal('voided');
    r = await row(link);
    expect([Number(r.paid_count), Number(r.payments_count), Boolean(r.active), r.inactive_reason]).to.deep.equal([1, 1, false, 'limit_reached']);
  });

  it('negative control: a read-check-write claim on the same tables oversells at the same concurrency', async function () {
    this.timeout(120_000);
    const link = await newLink(LIMIT, 'Naive');
    const payments = await customers(link, CUSTOMERS);
    const db = env.rt.db;
    /** What DESIGN.md forbids: read the count, decide, write the count back. */
    async function naiveAuthorize(payment: Payment): Promise<'paid' | 'voided'> {
      const current = await db('links').where({ id: link.key }).first('paid_count', 'payment_limit');
      await new Promise((r) => setImmediate(r)); // the provider's round trip, or just another request's turn
      if (Number(current.paid_count) >= Number(current.payment_limit)) {
        await db('payments').where({ id: payment.key }).update({ status: 'voided' });
        return 'voided';
      }
      await db('links').where({ id: link.key }).update({ paid_count: Number(current.paid_count) + 1 });
      await db('payments').where({ id: payment.key }).update({ status: 'paid' });
      return 'paid';
    }
    const outcomes = await Promise.all(payments.map((p) => naiveAuthorize(p)));
    const paid = outcomes.filter((o) => o === 'paid').length;
    expect((await statusCounts(link)).paid).to.equal(paid);
    expect(paid, 'the naive claim must oversell, or this suite could not catch an oversell').to.be.above(LIMIT);
  });
});
