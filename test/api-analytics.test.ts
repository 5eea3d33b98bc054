// JSON API for link analytics (shared/API.md): GET /links/:id/views and /links/:id/activity —
// shapes, newest first, cursor walks, bad cursors, scoping and authentication.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import type { TestEnv } from './support/harness.ts';
import { expectFieldErrors, expectProblem, walkPages, ISO_TIME, type ApiMerchant, twoApiMerchants, type ApiCall } from './support/api.ts';
import { BROWSERS } from './support/user-agents.ts';

const VIEW_KEYS = ['id', 'object', 'viewed_at', 'ip', 'browser', 'os', 'device', 'referer'];

forEachTarget('JSON API: link views and activity', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let b: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let n = 0;

  const createLink = async (as = call) => (await as('post', '/links', { type: 'amount', name: `Class ${++n}`, amount: 1500, currency: 'EUR' }).expect(201)).body as { id: string; path: string };
  const visit = (handle: string, link: { path: string }, ua = BROWSERS[0].ua, referer?: string) => {
    const req = supertest(env.app).get(`/${handle}/${link.path}`).set('User-Agent', ua);
    return (referer ? req.set('Referer', referer) : req).expect(200);
  };
  /** A payment through the checkout service (optionally authorized, so it is paid). */
  async function payment(merchant: ApiMerchant, linkId: string, paid: boolean) {
    const model = await env.rt.services.links.get(merchant.merchant, linkId);
    const { payment } = await env.rt.services.checkout.start(merchant.merchant, model, { amount: 1500, currency: 'EUR', name: 'Jane Payer', email: 'jane@example.test' });
    if (paid) await env.rt.services.checkout.authorize(payment.id, `ref_${payment.id}`);
    return payment.id;
  }

  before(async () => {
    ({ env, a, b, call, callB } = await twoApiMerchants(target, ['Gym', 'Other Gym'], { viewFlushMs: 3_600_000 }));
  });
  after(() => env?.close());

  describe('GET /links/:id/views', () => {
    it('lists the link’s views newest first, as API.md views (masked IP, browser, OS, device, referer)', async () => {
      const link = await createLink();
      const other = await createLink();
      await visit(a.handle, link, BROWSERS[0].ua, 'https://news.example.com/a?utm=1');
      env.clock.advance(60_000);
      await visit(a.handle, link, BROWSERS[5].ua);
      await visit(a.handle, other);
      await env.rt.views!.flush();

      const res = await call('get', `/links/${link.id}/views`).expect(200);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      expect(res.body).to.have.all.keys('data', 'has_more');
      expect(res.body.has_more).to.equal(false);
      const [newest, oldest] = res.body.data;
      expect(res.body.data).to.have.length(2);
      for (const v of res.body.data) {
        expect(v).to.have.all.keys(...VIEW_KEYS);
        expect(v.id).to.match(/^vw_[A-Za-z0-9_-]{22}$/);
        expect(v.viewed_at).to.match(ISO_TIME);
      }
      expect(newest).to.deep.include({ object: 'view', viewed_at: env.clock.now().toISOString(), ip: '127.0.0.xxx', browser: 'Safari', os: 'iOS', device: 'mobile', referer: null });
      expect(oldest).to.deep.include({ object: 'view', ip: '127.0.0.xxx', browser: 'Chrome', os: 'macOS', device: 'desktop', referer: 'https://news.example.com/a' });
      expect(Date.parse(newest.viewed_at) - Date.parse(oldest.viewed_at)).to.equal(60_000);
    });

    it('walks every view exactly once with limit and starting_after, views in the same instant included', async () => {
      const link = await createLink();
      for (let i = 0; i < 23; i++) {
        if (i % 4 === 0) env.clock.advance(1_000);
        await visit(a.handle, link, BROWSERS[i % BROWSERS.length].ua);
      }
      await env.rt.views!.flush();
      const all = (await call('get', `/links/${link.id}/views?limit=100`).expect(200)).body;
      expect(all.data).to.have.length(23);
      expect(all.has_more).to.equal(false);
      const times = all.data.map((v: { viewed_at: string }) => Date.parse(v.viewed_at));
      expect(times).to.deep.equal([...times].sort((x, y) => y - x));
      for (const limit of [1, 4, 5, 22, 23]) {
        const { ids, pages } = await walkPages(call, `/links/${link.id}/views`, limit);
        expect(ids, `limit ${limit}`).to.deep.equal(all.data.map((v: { id: string }) => v.id));
        expect(pages).to.equal(Math.ceil(23 / limit));
      }
      // The default page is 20.
      const first = (await call('get', `/links/${link.id}/views`).expect(200)).body;
      expect(first.data).to.have.length(20);
      expect(first.has_more).to.equal(true);
    });

    it('answers an empty list for a link nobody has viewed', async () => {
      const link = await createLink();
      expect((await call('get', `/links/${link.id}/views`).expect(200)).body).to.deep.equal({ data: [], has_more: false });
    });

    it('refuses a cursor that is not one of this link’s views (422 invalid_cursor)', async () => {
      const link = await createLink();
      const other = await createLink();
      await visit(a.handle, link);
      await visit(a.handle, other);
      await env.rt.views!.flush();
      const mine = (await call('get', `/links/${link.id}/views`).expect(200)).body.data[0].id as string;
      const theirs = (await call('get', `/links/${other.id}/views`).expect(200)).body.data[0].id as string;
      const tampered = mine.slice(0, -2) + (mine.at(-2) === 'A' ? 'B' : 'A') + mine.at(-1);
      for (const cursor of [theirs, tampered, 'vw_AAAAAAAAAAAAAAAAAAAAAA', 'vw_nope', 'pay_123', 'lnk_123', `${mine}x`]) {
        const body = expectFieldErrors(await call('get', `/links/${link.id}/views?starting_after=${encodeURIComponent(cursor)}`), ['starting_after']);
        expect(body.errors[0].code, cursor).to.equal('invalid_cursor');
      }
      // Its own view works as a cursor.
      expect((await call('get', `/links/${link.id}/views?starting_after=${mine}`).expect(200)).body).to.deep.equal({ data: [], has_more: false });
    });

    it('validates limit (1–100)', async () => {
      const link = await createLink();
      for (const limit of ['0', '101', '-1', '2.5', 'ten']) expectFieldErrors(await call('get', `/links/${link.id}/views?limit=${limit}`), ['limit']);
    });
  });

  describe('GET /links/:id/activity', () => {
    it('merges views and payments newest first, each with its type; payments as on /payments', async () => {
      const link = await createLink();
      await visit(a.handle, link);
      env.clock.advance(1_000);
      const paid = await payment(a, link.id, true);
      await visit(a.handle, link, BROWSERS[9].ua); // the same instant as the payment: payments sort first
      env.clock.advance(1_000);
      const pending = await payment(a, link.id, false);
      env.clock.advance(1_000);
      await visit(a.handle, link, BROWSERS[5].ua);
      await env.rt.views!.flush();

      const res = await call('get', `/links/${link.id}/activity`).expect(200);
      expect(res.body.has_more).to.equal(false);
      const items = res.body.data as Record<string, unknown>[];
      expect(items.map((i) => i.type)).to.deep.equal(['view', 'payment', 'payment', 'view', 'view']);
      expect(items.map((i) => i.object)).to.deep.equal(['view', 'payment', 'payment', 'view', 'view']);
      expect(items[1].id).to.equal(pending);
      expect(items[2].id).to.equal(paid);
      for (const v of [items[0], items[3], items[4]]) expect(v).to.have.all.keys('type', ...VIEW_KEYS);
      expect(items[0]).to.include({ browser: 'Safari', os: 'iOS' });
      expect(items[3]).to.include({ browser: 'Chrome', os: 'Android' });
      const payments = (await call('get', `/links/${link.id}/payments`).expect(200)).body.data;
      expect(items[1]).to.deep.equal({ type: 'payment', ...payments[0] });
      expect(items[2]).to.deep.equal({ type: 'payment', ...payments[1] });
      expect(items[2]).to.include({ status: 'paid', link_id: link.id, amount: 1500, currency: 'EUR' });
      expect(items[1]).to.include({ status: 'pending', paid_at: null });
    });

    it('walks views and payments exactly once with limit and starting_after (view and payment ids as cursors)', async () => {
      const link = await createLink();
      for (let i = 0; i < 15; i++) {
        if (i % 3 === 0) env.clock.advance(1_000);
        if (i % 4 === 1) await payment(a, link.id, i % 8 === 1);
        else await visit(a.handle, link);
      }
      await env.rt.views!.flush();
      const all = (await call('get', `/links/${link.id}/activity?limit=100`).expect(200)).body.data as { id: string; type: string }[];
      expect(all).to.have.length(15);
      expect(new Set(all.map((i) => i.type))).to.deep.equal(new Set(['view', 'payment']));
      for (const limit of [1, 2, 3, 7, 15]) {
        const { ids } = await walkPages(call, `/links/${link.id}/activity`, limit);
        expect(ids, `limit ${limit}`).to.deep.equal(all.map((i) => i.id));
      }
    });

    it('refuses a cursor from another link or that is no item at all (422 invalid_cursor)', async () => {
      const link = await createLink();
      const other = await createLink();
      await visit(a.handle, other);
      await env.rt.views!.flush();
      const otherView = (await call('get', `/links/${other.id}/views`).expect(200)).body.data[0].id as string;
      const otherPayment = await payment(a, other.id, false);
      const theirLink = await createLink(callB);
      const theirPayment = await payment(b, theirLink.id, false);
      for (const cursor of [otherView, otherPayment, theirPayment, 'pay_doesnotexist', 'vw_AAAAAAAAAAAAAAAAAAAAAA', 'garbage']) {
        const body = expectFieldErrors(await call('get', `/links/${link.id}/activity?starting_after=${encodeURIComponent(cursor)}`), ['starting_after']);
        expect(body.errors[0].code, cursor).to.equal('invalid_cursor');
      }
    });
  });

  describe('scoping and authentication', () => {
    it('answers 404 for another merchant’s link, a deleted link and an unknown one', async () => {
      const theirs = await createLink(callB);
      await visit(b.handle, theirs);
      await env.rt.views!.flush();
      const gone = await createLink();
      await call('delete', `/links/${gone.id}`).expect(200);
      for (const sub of ['views', 'activity', 'payments']) {
        expectProblem(await call('get', `/links/${theirs.id}/${sub}`), 404, 'not_found');
        expectProblem(await call('get', `/links/${gone.id}/${sub}`), 404, 'not_found');
        expectProblem(await call('get', `/links/lnk_unknown/${sub}`), 404, 'not_found');
      }
      // The owner sees the view.
      expect((await callB('get', `/links/${theirs.id}/views`).expect(200)).body.data).to.have.length(1);
    });

    it('answers 401 without a key or with a wrong one', async () => {
      const link = await createLink();
      for (const sub of ['views', 'activity']) {
        expectProblem(await supertest(env.app).get(`/api/v1/links/${link.id}/${sub}`), 401, 'missing_api_key');
        expectProblem(await supertest(env.app).get(`/api/v1/links/${link.id}/${sub}`).set('Authorization', 'Bearer not-a-key'), 401, 'invalid_api_key');
      }
    });
  });
});
