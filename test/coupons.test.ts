// Coupons (issue 16): API and dashboard CRUD, the pay page's coupon field with "Apply" (no JavaScript),
// every refusal by the field, the discount through to the payment (API, CSV, webhook), redemptions
// held with the checkout and released when it ends unpaid, and the redemption maximum under 100
// concurrent payers — exact, with a negative control that shows the test can catch an over-redemption.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, type ApiCall, type ApiMerchant } from './support/api.ts';
import { startReceiver, type TestReceiver } from './support/webhook-receiver.ts';
import type { PaymentProvider } from '../src/plugin-api.ts';

const CARD_OK = '4242424242424242';
const CARD_DECLINED = '4000000000000002';
const PAYER = { name: 'Ann Example', email: 'ann@example.test' };

forEachTarget('coupons', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let hook: TestReceiver;
  const http = () => supertest(env.app);
  /** A signed-in dashboard agent for merchant a. */
  async function signIn() {
    const agent = supertest.agent(env.app);
    const page = await agent.get('/login').expect(200);
    await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: a.merchant.email, password: 'correct horse battery' }).expect(303);
    return agent;
  }
  /** Payment ids whose capture the provider refuses. */
  const refuseCapture = new Set<string>();

  before(async () => {
    hook = await startReceiver();
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' } });
    a = await apiMerchant(env, 'Kiln Club');
    b = await apiMerchant(env, 'Other Shop');
    call = apiClient(env.app, a.secret);
    callB = apiClient(env.app, b.secret);
    const sandbox = env.rt.registries.providers.get('sandbox') as PaymentProvider;
    const { capture } = sandbox;
    sandbox.capture = async (p, s) => {
      if (refuseCapture.has(p.paymentId)) throw new Error('sandbox: capture refused');
      await capture(p, s);
    };
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });

  let made = 0;
  const coupon = async (body: Record<string, unknown>) => {
    const res = await call('post', '/coupons', { code: `C${++made}X`, ...body });
    expect(res.status, res.text).to.equal(201);
    return res.body as { id: string; code: string; redeemed_count: number };
  };
  const link = async (fields: Record<string, unknown> = {}) => {
    const res = await call('post', '/links', { type: 'amount', name: `Pottery class ${++made}`, amount: 5000, currency: 'EUR', allow_coupons: true, ...fields });
    expect(res.status, res.text).to.equal(201);
    return res.body as { id: string; path: string; allow_coupons: boolean };
  };
  const pagePath = (l: { path: string }) => `/${a.handle}/${l.path}`;
  const errorOf = (html: string, field: string) => new RegExp(`id="f-${field}-error"[^>]*>([^<]*)<`).exec(html)?.[1] ?? null;
  /** Submits the pay form; answers the card page's path. */
  async function checkout(l: { path: string }, fields: Record<string, string>): Promise<string> {
    const res = await http().post(pagePath(l)).type('form').send({ ...PAYER, ...fields });
    expect(res.status, res.text.slice(0, 600)).to.equal(303);
    return new URL(res.headers.location).pathname;
  }
  const payCard = async (cardPage: string, card = CARD_OK) => http().post(cardPage).type('form').send({ card_number: card });
  const couponRow = (id: string) => env.rt.db('coupons').where({ public_id: id }).first();
  const counts = async (id: string) => {
    const r = await couponRow(id);
    return { redeemed: Number(r.redeemed_count), held: Number(r.held_count) };
  };

  describe('API', () => {
    it('creates, reads, lists, updates and deletes coupons in the API.md shape', async () => {
      const res = await call('post', '/coupons', { code: 'Summer10', percent_off: 10, valid_until: '2026-12-31T23:00:00Z', max_redemptions: 50 });
      expect(res.status, res.text).to.equal(201);
      expect(res.headers.location).to.equal(`/api/v1/coupons/${res.body.id}`);
      expect(res.body).to.include({ object: 'coupon', code: 'Summer10', percent_off: 10, amount_off: null, currency: null, valid_from: null, valid_until: '2026-12-31T23:00:00.000Z', max_redemptions: 50, redeemed_count: 0, active: true });
      expect(res.body.id).to.match(/^cpn_/);
      const fixed = await call('post', '/coupons', { code: 'FIVE-OFF', amount_off: 500, currency: 'eur' });
      expect(fixed.body).to.include({ percent_off: null, amount_off: 500, currency: 'EUR', max_redemptions: null });
      expect((await call('get', `/coupons/${res.body.id}`)).body.code).to.equal('Summer10');
      const list = await call('get', '/coupons?limit=100').expect(200);
      expect(list.body.data.map((c: { id: string }) => c.id)).to.include.members([res.body.id, fixed.body.id]);
      // Switching kind replaces the other one.
      const switched = await call('patch', `/coupons/${fixed.body.id}`, { percent_off: 12.5 }).expect(200);
      expect(switched.body).to.include({ percent_off: 12.5, amount_off: null, currency: null });
      const off = await call('patch', `/coupons/${res.body.id}`, { active: false, max_redemptions: null }).expect(200);
      expect(off.body).to.include({ active: false, max_redemptions: null, percent_off: 10 });
      expect((await call('delete', `/coupons/${fixed.body.id}`).expect(200)).body).to.deep.equal({ id: fixed.body.id, object: 'coupon', deleted: true });
      await call('get', `/coupons/${fixed.body.id}`).expect(404);
      // A deleted coupon's code is free again.
      expect((await call('post', '/coupons', { code: 'five-off', amount_off: 300, currency: 'EUR' })).status).to.equal(201);
    });

    it('answers 422 by field for bad coupons and 409 for a code in use (any case); another merchant’s coupon is a 404', async () => {
      for (const [body, fields] of [
        [{}, ['code']],
        [{ code: 'X1' }, ['percent_off']],
        [{ code: 'X1', percent_off: 10, amount_off: 100, currency: 'EUR' }, ['amount_off', 'currency']],
        [{ code: 'X1', amount_off: 100 }, ['currency']],
        [{ code: 'X1', percent_off: 10, currency: 'EUR' }, ['currency']],
        [{ code: 'X1', percent_off: 100 }, ['percent_off']],
        [{ code: 'X1', percent_off: 0 }, ['percent_off']],
        [{ code: 'X1', percent_off: 10.555 }, ['percent_off']],
        [{ code: 'X1', percent_off: '10' }, ['percent_off']],
        [{ code: 'X1', amount_off: -5, currency: 'EUR' }, ['amount_off']],
        [{ code: 'X1', amount_off: 1.5, currency: 'EUR' }, ['amount_off']],
        [{ code: 'X1', amount_off: 100, currency: 'EURO' }, ['currency']],
        [{ code: 'bad code!', percent_off: 10 }, ['code']],
        [{ code: 'X'.repeat(41), percent_off: 10 }, ['code']],
        [{ code: 'X1', percent_off: 10, valid_from: 'tomorrow' }, ['valid_from']],
        [{ code: 'X1', percent_off: 10, valid_from: '2026-05-01T00:00:00Z', valid_until: '2026-04-01T00:00:00Z' }, ['valid_until']],
        [{ code: 'X1', percent_off: 10, max_redemptions: 0 }, ['max_redemptions']],
        [{ code: 'X1', percent_off: 10, max_redemptions: 2.5 }, ['max_redemptions']],
        [{ code: 'X1', percent_off: 10, active: 'yes' }, ['active']],
      ] as const) {
        expectFieldErrors(await call('post', '/coupons', body), [...fields]);
      }
      expect(Number(((await env.rt.db('coupons').where({ code_key: 'X1' }).count({ n: '*' }).first()) as { n: number }).n), 'nothing half-written').to.equal(0);
      const c = await coupon({ code: 'TAKEN', percent_off: 5 });
      const taken = expectProblem(await call('post', '/coupons', { code: 'taken', percent_off: 5 }), 409, 'code_taken');
      expect(taken.errors.map((e) => e.field)).to.deep.equal(['code']);
      expectProblem(await call('patch', `/coupons/${c.id}`, { valid_until: 'soon' }), 422, 'validation_failed');
      // The same code at another merchant is theirs to use.
      expect((await callB('post', '/coupons', { code: 'TAKEN', percent_off: 5 })).status).to.equal(201);
      await callB('get', `/coupons/${c.id}`).expect(404);
      await callB('patch', `/coupons/${c.id}`, { active: false }).expect(404);
      await callB('get', `/coupons/${c.id}/redemptions`).expect(404);
      await callB('delete', `/coupons/${c.id}`).expect(404);
    });

    it('sets allow_coupons on links (false by default) and validates it', async () => {
      const plain = await call('post', '/links', { type: 'amount', name: 'No codes', amount: 100 }).expect(201);
      expect(plain.body.allow_coupons).to.equal(false);
      const patched = await call('patch', `/links/${plain.body.id}`, { allow_coupons: true }).expect(200);
      expect(patched.body.allow_coupons).to.equal(true);
      expectFieldErrors(await call('patch', `/links/${plain.body.id}`, { allow_coupons: 'yes' }), ['allow_coupons']);
    });
  });

  describe('the pay page', () => {
    it('shows the coupon field only on links that allow codes, and "Apply" shows the new total without JavaScript', async () => {
      const without = await link({ allow_coupons: false });
      expect((await http().get(pagePath(without)).expect(200)).text).not.to.include('name="coupon"');
      const l = await link();
      const page = await http().get(pagePath(l)).expect(200);
      expect(page.text).to.include('name="coupon"').and.include('name="apply"').and.include('Pay €50.00');
      const c = await coupon({ code: 'TENOFF', percent_off: 10 });
      const applied = await http().post(pagePath(l)).type('form').send({ name: 'Ann', email: '', coupon: ' tenoff ', apply: '1' });
      expect(applied.status, applied.text.slice(0, 400)).to.equal(200);
      expect(applied.text).to.include('−€5.00').and.include('€45.00').and.include('Pay €45.00');
      expect(applied.text, 'what was typed stays').to.include('value="Ann"').and.include('value="tenoff"');
      expect(errorOf(applied.text, 'email'), 'Apply does not judge the other fields').to.equal('');
      expect(await counts(c.id), 'applying holds nothing').to.deep.equal({ redeemed: 0, held: 0 });
      // A field on a link that does not allow codes is ignored: the full price is charged.
      const card = await checkout(without, { coupon: 'TENOFF' });
      const sessionId = card.split('/').pop()!;
      expect((await env.rt.services.checkout.getSession(sessionId))!.amount).to.equal(5000);
    });

    it('refuses an unknown, inactive, not-yet-valid, expired, used-up, other-currency or too-large code by the field (422), writing nothing', async () => {
      const l = await link();
      const now = env.clock.now().getTime();
      const iso = (ms: number) => new Date(now + ms).toISOString();
      const inactive = await coupon({ percent_off: 10, active: false });
      const future = await coupon({ percent_off: 10, valid_from: iso(86_400_000) });
      const past = await coupon({ percent_off: 10, valid_until: iso(-1) });
      const usd = await coupon({ amount_off: 500, currency: 'USD' });
      const huge = await coupon({ amount_off: 5000, currency: 'EUR' });
      const once = await coupon({ percent_off: 10, max_redemptions: 1 });
      await env.rt.db('coupons').where({ public_id: once.id }).update({ redeemed_count: 1 }); // used once already
      const sessions = async () => Number(((await env.rt.db('checkout_sessions').count({ n: '*' }).first()) as { n: number }).n);
      const before = await sessions();
      for (const [code, message] of [
        ['NOPE', /not valid/],
        [inactive.code, /not valid/],
        [future.code, /not valid yet/],
        [past.code, /expired/],
        [once.code, /used up/],
        [usd.code, /USD/],
        [huge.code, /whole payment/],
      ] as const) {
        for (const apply of [true, false]) {
          const res = await http().post(pagePath(l)).type('form').send({ ...PAYER, coupon: code, ...(apply ? { apply: '1' } : {}) });
          expect(res.status, `${code} apply=${apply}`).to.equal(422);
          expect(errorOf(res.text, 'coupon'), code).to.match(message);
          expect(res.text).to.match(/id="f-coupon"[^>]* aria-invalid="true"/);
        }
      }
      // Every problem at once: the code's and the other fields'.
      const both = await http().post(pagePath(l)).type('form').send({ name: '', email: 'ann@example.test', coupon: 'NOPE' }).expect(422);
      expect([errorOf(both.text, 'name'), errorOf(both.text, 'coupon')].map(Boolean)).to.deep.equal([true, true]);
      // A good code with a bad field: the new total stays in view while the field is fixed.
      const good = await coupon({ percent_off: 10 });
      const kept = await http().post(pagePath(l)).type('form').send({ name: '', email: 'ann@example.test', coupon: good.code }).expect(422);
      expect(kept.text).to.include('Pay €45.00');
      expect(await sessions(), 'no checkout was opened').to.equal(before);
    });

    it('charges the discounted total and carries the discount on the payment: API, CSV, webhook; redemptions are listed', async () => {
      hook.received.length = 0;
      const ep = await call('post', '/webhook_endpoints', { url: `${hook.url}/hooks`, events: ['payment.succeeded'] });
      expect(ep.status, ep.text).to.equal(201);
      const l = await link({ amount: 3333 });
      const c = await coupon({ percent_off: 12.5, max_redemptions: 5 });
      // 12.5 % of €33.33 is €4.16625: rounded half up to €4.17.
      const cardPage = await checkout(l, { coupon: c.code.toLowerCase() });
      expect(await counts(c.id)).to.deep.equal({ redeemed: 0, held: 1 });
      expect((await payCard(cardPage)).status).to.equal(303);
      expect(await counts(c.id)).to.deep.equal({ redeemed: 1, held: 0 });
      const payments = await call('get', `/payments?link_id=${l.id}`).expect(200);
      const p = payments.body.data[0];
      expect(p).to.include({ amount: 2916, status: 'paid' });
      expect(p.discount).to.deep.equal({ coupon_id: c.id, code: c.code, amount_before: 3333, amount_off: 417 });
      expect((await call('get', `/coupons/${c.id}`)).body.redeemed_count).to.equal(1);
      const reds = await call('get', `/coupons/${c.id}/redemptions`).expect(200);
      expect(reds.body.has_more).to.equal(false);
      expect(reds.body.data).to.have.length(1);
      expect(reds.body.data[0]).to.include({ object: 'coupon_redemption', coupon_id: c.id, payment_id: p.id, status: 'redeemed', amount_before: 3333, amount_off: 417, currency: 'EUR' });
      expect(reds.body.data[0].id).to.match(/^red_/);

      await env.rt.jobs.drain();
      const delivered = hook.received.map((r) => JSON.parse(r.body)).find((b) => b.type === 'payment.succeeded' && b.data.id === p.id);
      expect(delivered, 'the webhook was delivered').to.exist;
      expect(delivered.data.discount).to.deep.equal(p.discount);
      await call('delete', `/webhook_endpoints/${ep.body.id}`).expect(200);

      const agent = await signIn();
      const csv = await agent.get('/app/payments.csv').expect(200);
      const [header, ...rows] = csv.text.trim().split(/\r?\n/);
      const cols = header.split(',');
      const row = rows.find((r) => r.startsWith(p.id))!.split(',');
      expect([row[cols.indexOf('amount')], row[cols.indexOf('amount_before_discount')], row[cols.indexOf('discount')], row[cols.indexOf('coupon_code')]]).to.deep.equal(['29.16', '33.33', '4.17', c.code]);
      const detail = await agent.get(`/app/payments/${p.id}`).expect(200);
      expect(detail.text).to.include(c.code).and.include('€4.17');
      const couponPage = await agent.get(`/app/coupons/${c.id}`).expect(200);
      expect(couponPage.text).to.include(p.id).and.include('Redeemed');
    });

    it('keeps the hold through a declined card (the customer retries) and releases it when the checkout ends unpaid', async () => {
      const l = await link();
      const c = await coupon({ amount_off: 1000, currency: 'EUR', max_redemptions: 1 });
      const cardPage = await checkout(l, { coupon: c.code });
      expect((await payCard(cardPage, CARD_DECLINED)).status).to.equal(303);
      expect(await counts(c.id), 'a decline keeps the redemption for the retry').to.deep.equal({ redeemed: 0, held: 1 });
      // Meanwhile the code is used up for everyone else.
      const other = await http().post(pagePath(l)).type('form').send({ ...PAYER, coupon: c.code });
      expect(other.status).to.equal(422);
      expect(errorOf(other.text, 'coupon')).to.match(/used up/);
      // The checkout expires unpaid: the sweep releases the hold.
      env.clock.advance(2 * 60 * 60 * 1000 + 1000);
      await env.rt.jobs.enqueue(env.rt.db, 'coupons.release_holds', {});
      await env.rt.jobs.drain();
      expect(await counts(c.id)).to.deep.equal({ redeemed: 0, held: 0 });
      expect((await call('get', `/coupons/${c.id}/redemptions`)).body.data.map((r: { status: string }) => r.status)).to.deep.equal(['released']);
      // Free again: the next customer pays €40.00.
      const next = await checkout(l, { coupon: c.code });
      expect((await payCard(next)).status).to.equal(303);
      expect(await counts(c.id)).to.deep.equal({ redeemed: 1, held: 0 });
      const paid = (await call('get', `/payments?link_id=${l.id}&status=paid`)).body.data;
      expect(paid.map((p: { amount: number }) => p.amount)).to.deep.equal([4000]);
    });

    it('gives the redemption back when the capture fails, and voids a payment whose lapsed hold finds the code used up', async () => {
      const l = await link();
      const c = await coupon({ percent_off: 20, max_redemptions: 1 });
      const first = await checkout(l, { coupon: c.code });
      const session = (await env.rt.services.checkout.getSession(first.split('/').pop()!))!;
      const payment = (await env.rt.services.checkout.currentPayment(session))!;
      refuseCapture.add(payment.id);
      const failed = await env.rt.services.checkout.authorize(payment.id, 'sbx_refused');
      expect([failed.status, failed.reason]).to.deep.equal(['failed', 'capture_failed']);
      expect(await counts(c.id), 'the failed capture released it').to.deep.equal({ redeemed: 0, held: 0 });

      // A checkout whose hold lapsed, while another customer took the last redemption: voided.
      const late = await checkout(l, { coupon: c.code });
      env.clock.advance(2 * 60 * 60 * 1000 + 1000);
      await env.rt.services.coupons.releaseLapsed();
      const winner = await checkout(l, { coupon: c.code });
      expect((await payCard(winner)).status).to.equal(303);
      const lateSession = (await env.rt.services.checkout.getSession(late.split('/').pop()!))!;
      const latePayment = (await env.rt.services.checkout.currentPayment(lateSession))!;
      const outcome = await env.rt.services.checkout.authorize(latePayment.id, 'sbx_late');
      expect([outcome.status, outcome.reason]).to.deep.equal(['voided', 'coupon_unavailable']);
      expect(await counts(c.id)).to.deep.equal({ redeemed: 1, held: 0 });
    });
  });

  describe(`the redemption maximum under concurrency`, () => {
    const MAX = 10;
    const PAYERS = 100;

    it(`lets exactly ${MAX} of ${PAYERS} concurrent payers use a code limited to ${MAX}`, async function () {
      this.timeout(180_000);
      const l = await link();
      const c = await coupon({ percent_off: 50, max_redemptions: MAX });
      const answers = await Promise.all(
        Array.from({ length: PAYERS }, (_, i) => http().post(pagePath(l)).type('form').send({ name: `Payer ${i}`, email: `p${i}@example.test`, coupon: c.code })),
      );
      const started = answers.filter((r) => r.status === 303);
      const refused = answers.filter((r) => r.status === 422);
      expect(started.length + refused.length, answers.map((r) => r.status).join(',')).to.equal(PAYERS);
      expect(started).to.have.length(MAX);
      for (const r of refused) expect(errorOf(r.text, 'coupon')).to.match(/used up/);
      expect(await counts(c.id)).to.deep.equal({ redeemed: 0, held: MAX });
      // Every winner pays, at once.
      const paid = await Promise.all(started.map((r) => payCard(new URL(r.headers.location).pathname)));
      expect(paid.map((r) => r.status)).to.deep.equal(Array(MAX).fill(303));
      expect(await counts(c.id)).to.deep.equal({ redeemed: MAX, held: 0 });
      const reds = await call('get', `/coupons/${c.id}/redemptions?limit=100`).expect(200);
      expect(reds.body.data.filter((r: { status: string }) => r.status === 'redeemed')).to.have.length(MAX);
      const payments = await call('get', `/payments?link_id=${l.id}&status=paid&limit=100`).expect(200);
      expect(payments.body.data).to.have.length(MAX);
      for (const p of payments.body.data) expect(p).to.include({ amount: 2500 });
    });

    it('negative control: a read-check-write claim on the same table over-redeems at the same concurrency', async function () {
      this.timeout(180_000);
      const c = await coupon({ percent_off: 50, max_redemptions: MAX });
      const db = env.rt.db;
      /** What the coupons feature must never do: read the counts, decide, write them back. */
      async function naiveHold(): Promise<boolean> {
        const row = await db('coupons').where({ public_id: c.id }).first('redeemed_count', 'held_count', 'max_redemptions');
        await new Promise((r) => setImmediate(r)); // another request's turn
        if (Number(row.redeemed_count) + Number(row.held_count) >= Number(row.max_redemptions)) return false;
        await db('coupons').where({ public_id: c.id }).update({ held_count: Number(row.held_count) + 1 });
        return true;
      }
      const won = (await Promise.all(Array.from({ length: PAYERS }, () => naiveHold()))).filter(Boolean).length;
      expect(won, 'the naive claim must over-redeem, or this suite could not catch it').to.be.above(MAX);
    });
  });

  describe('dashboard', () => {
    it('lists, creates (422 by field), edits and deletes coupons; the link form sets “Allow coupon codes”', async () => {
      const agent = await signIn();
      const nav = await agent.get('/app/coupons').expect(200);
      expect(nav.text).to.include('href="/app/coupons"');
      const form = await agent.get('/app/coupons/new').expect(200);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(form.text)![1];
      const bad = await agent.post('/app/coupons').type('form').send({ _csrf: csrf, code: 'bad code', kind: 'percent', percent_off: '150', valid_from: '2026-02-30', max_redemptions: '0' });
      expect(bad.status).to.equal(422);
      for (const f of ['code', 'percent_off', 'valid_from', 'max_redemptions']) expect(errorOf(bad.text, f), f).to.not.equal('');
      const amountBad = await agent.post('/app/coupons').type('form').send({ _csrf: csrf, code: 'EUROS', kind: 'amount', amount_off: '1.234', currency: 'EUR' });
      expect(amountBad.status).to.equal(422);
      expect(errorOf(amountBad.text, 'amount_off')).to.not.equal('');
      await agent.post('/app/coupons').type('form').send({ _csrf: csrf, code: 'DASH5', kind: 'amount', amount_off: '5', currency: 'EUR', valid_until: '2026-12-31', max_redemptions: '3', active: 'on' }).expect(303);
      const made = (await call('get', '/coupons?limit=100')).body.data.find((c: { code: string }) => c.code === 'DASH5');
      // The last valid day is the merchant's whole day (Europe/Amsterdam by default: CET, UTC+1).
      expect(made).to.include({ amount_off: 500, currency: 'EUR', max_redemptions: 3, active: true });
      expect(new Date(made.valid_until).getTime()).to.be.above(Date.parse('2026-12-31T12:00:00Z'));
      const list = await agent.get('/app/coupons').expect(200);
      expect(list.text).to.include('DASH5').and.include('€5.00 off');
      const edit = await agent.get(`/app/coupons/${made.id}/edit`).expect(200);
      expect(edit.text).to.include('value="2026-12-31"');
      await agent.post(`/app/coupons/${made.id}`).type('form').send({ _csrf: csrf, code: 'DASH5', kind: 'percent', percent_off: '15', active: 'on' }).expect(303);
      expect((await call('get', `/coupons/${made.id}`)).body).to.include({ percent_off: 15, amount_off: null, valid_until: null });
      await agent.post(`/app/coupons/${made.id}/deactivate`).type('form').send({ _csrf: csrf }).expect(303);
      expect((await call('get', `/coupons/${made.id}`)).body.active).to.equal(false);
      await agent.post(`/app/coupons/${made.id}/delete`).type('form').send({ _csrf: csrf }).expect(303);
      await call('get', `/coupons/${made.id}`).expect(404);

      const l = await link({ allow_coupons: false });
      const linkForm = await agent.get(`/app/links/${l.id}/edit`).expect(200);
      expect(linkForm.text).to.include('name="allow_coupons"');
    });
  });
});
