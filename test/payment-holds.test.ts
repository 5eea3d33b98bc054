// Time-boxed holds (DESIGN.md "Checkout and the payment limit", point 5): an immediate-capture
// provider takes the money when the customer pays, so there is nothing to void — core holds a slot of
// the link when checkout starts (`paid_count + held_count < payment_limit`, one conditional UPDATE),
// turns it into the payment on success, and gives it back on failure or when it lapses (the
// `links.release_holds` job, on the moved clock). A payment that arrives after its hold lapsed on a
// link that filled up meanwhile is refunded in full and never counted. The negative control holds
// slots read-check-write at the same concurrency and oversells, so the race test can catch one.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';
import { fixturePlugin } from './fixtures/plugins/helpers.ts';
import { waitFor } from './support/wait.ts';
import { apiClient } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import { NoSlotError, LATE_REFUND_MESSAGE } from '../src/features/checkout/service.ts';
import type { PaymentProvider } from '../src/plugin-api.ts';

const LIMIT = 50;
const CUSTOMERS = 200;
const AMOUNT = 2500;
const MINUTE = 60_000;

forEachTarget('payment holds (immediate capture)', (target) => {
  let env: TestEnv;
  let owner: Account;
  let shop: Merchant;
  const refunds: [string, number][] = [];
  let failStarts = 0;

  before(async function () {
    this.timeout(30_000);
    env = await build(target, { env: { PAYLINK_PLUGINS: fixturePlugin('provider-instant') } });
    owner = await signUp(env.app, { name: 'Harbour Yoga' });
    shop = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    // Count the refunds core asks for; a tick of "network" in start widens every race window.
    const instant = env.rt.registries.providers.get('instant') as PaymentProvider;
    const { start } = instant;
    instant.start = async (s, settings) => {
      await new Promise((r) => setImmediate(r));
      if (failStarts > 0) {
        failStarts--;
        throw new Error('bank unreachable');
      }
      return start(s, settings);
    };
    instant.refund = async (p, amount) => void refunds.push([p.refundId, amount]);
  });
  beforeEach(() => {
    refunds.length = 0;
  });
  after(() => env?.close());

  let made = 0;
  const newLink = (limit: number | null, extra: Record<string, unknown> = {}) => env.rt.services.links.create(shop, { type: 'amount', name: `Sunrise class ${++made}`, amount: AMOUNT, payment_limit: limit, ...extra });
  const begin = (link: Link, i = 0, provider = 'instant') => env.rt.services.checkout.start(shop, link, { amount: AMOUNT, currency: 'EUR', name: `Customer ${i}`, email: `c${i}@example.test`, provider });
  const row = (link: Link) => env.rt.db('links').where({ id: link.key }).first();
  const holdRows = async (link: Link) => Number(((await env.rt.db('link_holds').where({ link_id: link.key }).count({ n: '*' }).first()) as { n: number }).n);
  const statusCounts = async (link: Link) => {
    const rows: { status: string; n: number | string }[] = await env.rt.db('payments').where({ link_id: link.key }).groupBy('status').select('status').count({ n: '*' });
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  };
  const releaseLapsed = async () => {
    await env.rt.jobs.enqueue(env.rt.db, 'links.release_holds', {});
    await env.rt.jobs.drain();
  };
  /** Watches paid + held while `work` runs: the most slots ever taken at once. */
  async function maxTaken<T>(link: Link, work: () => Promise<T>): Promise<{ result: T; max: number }> {
    let done = false;
    let max = 0;
    const watch = (async () => {
      while (!done) {
        const r = await row(link);
        max = Math.max(max, Number(r.paid_count) + Number(r.held_count));
        await new Promise((res) => setImmediate(res));
      }
    })();
    try {
      return { result: await work(), max };
    } finally {
      done = true;
      await watch;
      const r = await row(link);
      max = Math.max(max, Number(r.paid_count) + Number(r.held_count));
    }
  }

  it(`holds exactly ${LIMIT} slots for ${CUSTOMERS} concurrent checkouts, writes nothing for the rest, and all ${LIMIT} holders pay`, async function () {
    this.timeout(180_000);
    const link = await newLink(LIMIT);
    const watched = await maxTaken(link, () => Promise.allSettled(Array.from({ length: CUSTOMERS }, (_, i) => begin(link, i))));
    const started = watched.result.filter((o) => o.status === 'fulfilled').map((o) => (o as PromiseFulfilledResult<Awaited<ReturnType<typeof begin>>>).value);
    const refused = watched.result.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason);
    expect(started).to.have.length(LIMIT);
    expect(refused).to.have.length(CUSTOMERS - LIMIT);
    for (const err of refused) expect(err).to.be.instanceOf(NoSlotError).and.to.include({ code: 'spots_held', status: 409 });
    expect(watched.max, 'never more than the limit held at once').to.be.at.most(LIMIT);
    let r = await row(link);
    expect([Number(r.paid_count), Number(r.held_count), await holdRows(link)]).to.deep.equal([0, LIMIT, LIMIT]);
    expect(await statusCounts(link), 'a refused checkout leaves no session or payment behind').to.deep.equal({ pending: LIMIT });
    expect(Number(((await env.rt.db('checkout_sessions').where({ link_id: link.key }).count({ n: '*' }).first()) as { n: number }).n)).to.equal(LIMIT);

    const paid = await maxTaken(link, () => Promise.all(started.map(({ payment }, i) => env.rt.services.checkout.authorize(payment.id, `ib_race_${i}`))));
    expect(paid.result.map((o) => o.status)).to.deep.equal(Array(LIMIT).fill('paid'));
    expect(paid.max).to.be.at.most(LIMIT);
    r = await row(link);
    expect([Number(r.paid_count), Number(r.held_count), await holdRows(link), Number(r.payments_count), Number(r.revenue)]).to.deep.equal([LIMIT, 0, 0, LIMIT, LIMIT * AMOUNT]);
    expect([Boolean(r.active), r.inactive_reason]).to.deep.equal([false, 'limit_reached']);
    expect(refunds, 'nobody paid for a slot they did not get').to.deep.equal([]);
  });

  it(`${CUSTOMERS} customers starting and paying at once: exactly ${LIMIT} paid, never more than ${LIMIT} taken`, async function () {
    this.timeout(180_000);
    const link = await newLink(LIMIT);
    const watched = await maxTaken(link, () =>
      Promise.all(
        Array.from({ length: CUSTOMERS }, async (_, i) => {
          try {
            const { payment } = await begin(link, i);
            return (await env.rt.services.checkout.authorize(payment.id, `ib_mix_${i}`)).status;
          } catch (err) {
            if (err instanceof NoSlotError) return err.code;
            throw err;
          }
        }),
      ),
    );
    const tally = watched.result.reduce<Record<string, number>>((t, s) => ({ ...t, [s]: (t[s] ?? 0) + 1 }), {});
    expect(tally.paid).to.equal(LIMIT);
    expect(tally.paid + (tally.spots_held ?? 0) + (tally.limit_reached ?? 0)).to.equal(CUSTOMERS);
    expect(watched.max).to.be.at.most(LIMIT);
    expect(await statusCounts(link)).to.deep.equal({ paid: LIMIT });
    const r = await row(link);
    expect([Number(r.paid_count), Number(r.held_count), Number(r.revenue), Boolean(r.active)]).to.deep.equal([LIMIT, 0, LIMIT * AMOUNT, false]);
    expect(refunds).to.deep.equal([]);
  });

  it('late payments racing the release job and new checkouts: nothing oversells, counters match the rows', async function () {
    this.timeout(180_000);
    const limit = 20;
    const link = await newLink(limit);
    const lapsing = await Promise.all(Array.from({ length: limit }, (_, i) => begin(link, i)));
    // Half the holds end early and are released before their payments arrive; the rest lapse and
    // are released while they do.
    await env.rt.db('link_holds').where({ link_id: link.key }).whereIn('checkout_session_id', lapsing.slice(0, limit / 2).map((l) => l.session.key)).update({ expires_at: new Date(env.clock.now().getTime() + 10 * MINUTE) });
    env.clock.advance(15 * MINUTE);
    await releaseLapsed();
    expect(Number((await row(link)).held_count)).to.equal(limit / 2);
    env.clock.advance(16 * MINUTE);
    let newHolds = 0;
    const watched = await maxTaken(link, () =>
      Promise.all([
        // Every lapsed checkout's payment still arrives, once new checkouts took some of the freed slots…
        ...lapsing.map(async ({ payment }, i) => {
          await waitFor(() => newHolds >= 5, { message: 'new checkouts to hold freed slots', interval: 1 });
          return (await env.rt.services.checkout.authorize(payment.id, `ib_lapsed_${i}`)).status;
        }),
        // …while the job releases the other lapsed holds…
        releaseLapsed().then(() => 'swept'),
        // …and new customers start and pay.
        ...Array.from({ length: limit * 2 }, async (_, i) => {
          try {
            const { payment } = await begin(link, 1000 + i);
            newHolds++;
            return (await env.rt.services.checkout.authorize(payment.id, `ib_new_${i}`)).status;
          } catch (err) {
            if (err instanceof NoSlotError) return err.code;
            throw err;
          }
        }),
      ]),
    );
    await releaseLapsed();
    const counts = await statusCounts(link);
    const r = await row(link);
    expect(watched.max, 'never more than the limit taken at once').to.be.at.most(limit);
    expect(Number(r.paid_count), 'paid_count is the number of paid payments').to.equal(counts.paid);
    expect(counts.paid).to.equal(limit);
    expect(Number(r.held_count), 'held_count is the number of hold rows').to.equal(await holdRows(link));
    expect(Number(r.revenue)).to.equal(limit * AMOUNT);
    // Every lapsed payment that lost was refunded in full, once; nothing else was.
    const refundedLate = counts.refunded ?? 0;
    expect(refundedLate, 'late payments whose slot a new checkout took are refunded').to.be.at.least(5);
    expect(refunds).to.have.length(refundedLate);
    expect(new Set(refunds.map(([id]) => id)).size).to.equal(refundedLate);
    expect(watched.result.filter((s) => s === 'voided')).to.have.length(refundedLate);
  });

  it('negative control: a read-check-write hold on the same tables holds more slots than the limit at the same concurrency', async function () {
    this.timeout(120_000);
    const link = await newLink(LIMIT);
    const db = env.rt.db;
    /** What DESIGN.md forbids: read paid + held, decide, write the count back. */
    async function naiveHold(): Promise<boolean> {
      const current = await db('links').where({ id: link.key }).first('paid_count', 'held_count', 'payment_limit');
      await new Promise((r) => setImmediate(r)); // another request's turn
      if (Number(current.paid_count) + Number(current.held_count) >= Number(current.payment_limit)) return false;
      await db('links').where({ id: link.key }).update({ held_count: Number(current.held_count) + 1 });
      return true;
    }
    const won = (await Promise.all(Array.from({ length: CUSTOMERS }, () => naiveHold()))).filter(Boolean).length;
    expect(won, 'the naive hold must oversell, or this suite could not catch an oversell').to.be.above(LIMIT);
  });

  it('a card payment cannot take a slot held by a checkout under way', async () => {
    const link = await newLink(1);
    await begin(link, 1);
    const card = await begin(link, 2, 'sandbox');
    const outcome = await env.rt.services.checkout.authorize(card.payment.id, 'sbx_card');
    expect([outcome.status, outcome.reason]).to.deep.equal(['voided', 'limit_reached']);
    expect([Number((await row(link)).paid_count), Number((await row(link)).held_count)]).to.deep.equal([0, 1]);
  });

  it('tells the provider when the checkout ends: the hold’s end, 30 minutes by default, and the session ends with it', async () => {
    const link = await newLink(5);
    const { session, payment } = await begin(link, 1);
    const told = (await supertest(env.app).get('/p/provider-instant/started').expect(200)).body as { paymentId: string; expiresAt: string }[];
    const end = new Date(env.clock.now().getTime() + 30 * MINUTE).toISOString();
    expect(told.find((t) => t.paymentId === payment.id)?.expiresAt).to.equal(end);
    expect(session.expiresAt.toISOString()).to.equal(end);
    expect((await env.rt.db('link_holds').where({ checkout_session_id: session.key }).first()).link_id).to.equal(link.key);
  });

  it('the pay page counts held slots as taken, says when one may free up, and reopens once a lapsed hold is released', async () => {
    const link = await newLink(2, { show_remaining: true });
    const url = `/${shop.handle}/${link.path}`;
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('Only 2 left');
    const first = await begin(link, 1);
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('Only 1 left');
    env.clock.advance(10 * MINUTE);
    const second = await begin(link, 2);

    const page = await supertest(env.app).get(url).expect(200);
    expect(page.text).to.include('All remaining spots are being paid for').and.include('Try again in <strong>20 minutes</strong>');
    expect(page.text).not.to.include('<form');
    // A checkout now finds no slot: 409 with Retry-After, the same page, nothing written.
    const before = await statusCounts(link);
    const post = await supertest(env.app).post(url).type('form').send({ name: 'Late Lou', email: 'lou@example.test', provider: 'instant' }).expect(409);
    expect(post.headers['retry-after']).to.equal(String(20 * 60));
    expect(post.text).to.include('All remaining spots are being paid for');
    expect(await statusCounts(link)).to.deep.equal(before);
    // The API shows the holds (additive); `remaining` still counts paid payments only.
    const api = await env.rt.services.links.get(shop, link.id);
    expect([api.heldCount, api.paidCount]).to.deep.equal([2, 0]);
    const { secret } = await env.rt.services.apiKeys.create(shop, { name: 'holds' });
    const json = (await apiClient(env.app, secret)('get', `/links/${link.id}`).expect(200)).body;
    expect(json).to.include({ paid_count: 0, held_count: 2, remaining: 2 });
    const card = (await owner.agent.get(`/app/links/${link.id}`).expect(200)).text;
    expect(card).to.match(/Being paid for<\/dt><dd>2 /);

    // 20 minutes on (seconds before the first hold's end: still held), then past it, and the job runs.
    env.clock.advance(20 * MINUTE - 1000);
    await releaseLapsed();
    expect(Number((await row(link)).held_count)).to.equal(2);
    expect((await supertest(env.app).get(url).expect(200)).text).to.include('Try again in <strong>1 minute</strong>');
    env.clock.advance(1000);
    await releaseLapsed();
    expect([Number((await row(link)).held_count), await holdRows(link)]).to.deep.equal([1, 1]);
    const reopened = await supertest(env.app).get(url).expect(200);
    expect(reopened.text).to.include('Only 1 left').and.include('<form');

    // The lapsed checkout cannot be retried; the other one still holds and pays.
    await env.rt.services.checkout.decline(first.payment.id, { code: 'bank_declined', message: 'Declined' });
    try {
      await env.rt.services.checkout.retry(first.session.id);
      expect.fail('a lapsed checkout must not be retried');
    } catch (err) {
      expect(err).to.include({ code: 'checkout_expired', status: 410 });
    }
    expect((await env.rt.services.checkout.authorize(second.payment.id, 'ib_second')).status).to.equal('paid');
    expect([Number((await row(link)).paid_count), Number((await row(link)).held_count)]).to.deep.equal([1, 0]);
  });

  it('a retry after a decline keeps the session’s hold; a failed start gives it back', async () => {
    const link = await newLink(1);
    const { session, payment } = await begin(link, 1);
    await env.rt.services.checkout.decline(payment.id, { code: 'bank_declined', message: 'Declined by the bank' });
    expect(Number((await row(link)).held_count), 'a decline keeps the hold for a retry').to.equal(1);
    const again = await env.rt.services.checkout.retry(session.id);
    expect((await env.rt.services.checkout.authorize(again.id, 'ib_retry')).status).to.equal('paid');
    expect([Number((await row(link)).paid_count), Number((await row(link)).held_count)]).to.deep.equal([1, 0]);

    const other = await newLink(1);
    failStarts = 1;
    try {
      await begin(other, 2);
      expect.fail('the start must fail');
    } catch (err) {
      expect(err).to.include({ status: 503 });
    }
    expect([Number((await row(other)).held_count), await holdRows(other)]).to.deep.equal([0, 0]);
    expect(await statusCounts(other)).to.deep.equal({ failed: 1 });
    // releaseHold (a provider's "abandoned" or "expired unpaid") gives a slot back once.
    const { payment: p3 } = await begin(other, 3);
    expect(await env.rt.services.checkout.releaseHold(p3.id)).to.equal(true);
    expect(await env.rt.services.checkout.releaseHold(p3.id)).to.equal(false);
    expect(Number((await row(other)).held_count)).to.equal(0);
  });

  it('a late payment on a link with room is accepted; on a full link it is refunded in full and shown so', async () => {
    const roomy = await newLink(2);
    const early = await begin(roomy, 1);
    env.clock.advance(31 * MINUTE);
    await releaseLapsed();
    expect(Number((await row(roomy)).held_count)).to.equal(0);
    expect((await env.rt.services.checkout.authorize(early.payment.id, 'ib_late_ok')).status).to.equal('paid');
    expect(Number((await row(roomy)).paid_count)).to.equal(1);

    const link = await newLink(1);
    const late = await begin(link, 1);
    env.clock.advance(31 * MINUTE);
    await releaseLapsed();
    const onTime = await begin(link, 2);
    expect((await env.rt.services.checkout.authorize(onTime.payment.id, 'ib_on_time')).status).to.equal('paid');
    const outcome = await env.rt.services.checkout.authorize(late.payment.id, 'ib_too_late');
    expect([outcome.status, outcome.reason]).to.deep.equal(['voided', 'limit_reached']);
    expect(refunds).to.deep.equal([[`${late.payment.id}_limit`, AMOUNT]]);

    const p = await env.rt.db('payments').where({ id: late.payment.key }).first();
    expect([p.status, p.failure_code, p.failure_message, Number(p.amount_refunded), p.paid_at]).to.deep.equal(['refunded', 'limit_reached', LATE_REFUND_MESSAGE, AMOUNT, null]);
    const refund = await env.rt.db('refunds').where({ payment_id: late.payment.key }).first();
    expect([refund.status, Number(refund.amount)]).to.deep.equal(['succeeded', AMOUNT]);
    const r = await row(link);
    expect([Number(r.paid_count), Number(r.held_count), Number(r.payments_count), Number(r.revenue)], 'the refunded payment is never counted').to.deep.equal([1, 0, 1, AMOUNT]);
    // Authorizing it again changes nothing and refunds nothing twice.
    expect((await env.rt.services.checkout.authorize(late.payment.id, 'ib_too_late')).status).to.equal('voided');
    expect(refunds).to.have.length(1);

    const receipt = await supertest(env.app).get(`/receipt/${late.payment.id}`).expect(200);
    expect(receipt.text).to.include('Payment refunded').and.include(LATE_REFUND_MESSAGE).and.include('goes back to you');
    const dash = await owner.agent.get(`/app/payments/${late.payment.id}`).expect(200);
    expect(dash.text).to.include('Why refunded').and.include(LATE_REFUND_MESSAGE).and.include('Automatic: the payment limit was reached');
  });

  it('a payment request that expires while a checkout holds its slot: that payment is honoured, a late one without a hold is refunded', async () => {
    const ask = (ref: string) => env.rt.services.requests.create(shop, { amount: AMOUNT, currency: 'EUR', reference: ref, customer: { name: 'Ada', email: `ada.${ref}@example.test` }, expires_in: 10 * 60 }, { source: 'api' });
    const held = await ask(`HOLD-${made}`);
    const heldLink = await env.rt.services.links.get(shop, held.link.id);
    const holder = await begin(heldLink, 1);
    env.clock.advance(11 * MINUTE);
    await env.rt.jobs.enqueue(env.rt.db, 'links.expire', {});
    await env.rt.jobs.drain();
    expect([(await row(heldLink)).active, (await row(heldLink)).inactive_reason].map((v) => (typeof v === 'number' ? Boolean(v) : v))).to.deep.equal([false, 'expired']);
    expect((await env.rt.services.checkout.authorize(holder.payment.id, 'ib_held_in_time')).status).to.equal('paid');
    expect(refunds).to.deep.equal([]);
    expect((await env.rt.services.requests.get(shop.key, held.id)).status).to.equal('paid');

    // Its hold released (the lapse job), the payment arriving after the expiry is refunded in full.
    const lapsed = await ask(`LAPSE-${made}`);
    const lapsedLink = await env.rt.services.links.get(shop, lapsed.link.id);
    const late = await begin(lapsedLink, 2);
    expect(await env.rt.services.checkout.releaseHold(late.payment.id)).to.equal(true);
    env.clock.advance(11 * MINUTE);
    expect((await env.rt.services.checkout.authorize(late.payment.id, 'ib_too_late_expired')).status).to.equal('voided');
    expect(refunds).to.deep.equal([[`${late.payment.id}_limit`, AMOUNT]]);
    expect((await env.rt.services.requests.get(shop.key, lapsed.id)).status).to.equal('expired');
    // And no checkout starts on it any more.
    let refused: unknown = null;
    await begin(lapsedLink, 3).catch((err) => (refused = err));
    expect(refused, 'a checkout after the expiry').to.be.instanceOf(Error);
  });

  it('a merchant who lowers the limit below what is held refunds the holder that no longer fits', async () => {
    const link = await newLink(2);
    const a = await begin(link, 1);
    const b = await begin(link, 2);
    expect((await env.rt.services.checkout.authorize(a.payment.id, 'ib_a')).status).to.equal('paid');
    await env.rt.services.links.update(shop, link.id, { payment_limit: 1 });
    const outcome = await env.rt.services.checkout.authorize(b.payment.id, 'ib_b');
    expect([outcome.status, outcome.reason]).to.deep.equal(['voided', 'limit_reached']);
    const r = await row(link);
    expect([Number(r.paid_count), Number(r.held_count), await holdRows(link)]).to.deep.equal([1, 0, 0]);
  });
});

describe('payment holds: the pay page of a link with no slot left (unit)', () => {
  it('rounds the minutes up and never says 0', async () => {
    const { minutesUntil } = await import('../src/features/checkout/service.ts');
    const now = new Date('2026-03-02T09:00:00Z');
    expect(minutesUntil(new Date(now.getTime() + 61_000), now)).to.equal(2);
    expect(minutesUntil(new Date(now.getTime() + 60_000), now)).to.equal(1);
    expect(minutesUntil(new Date(now.getTime() - 5_000), now)).to.equal(1);
  });
});

