import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import type { TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, walkPages, ISO_TIME, type ApiMerchant, twoApiMerchants, type ApiCall } from './support/api.ts';

/** Every field of the Link object in shared/API.md. */
const LINK_KEYS = [
  'id', 'object', 'kind', 'type', 'name', 'path', 'url', 'description', 'internal_notes', 'amount', 'currency', 'product_id',
  'payment_limit', 'paid_count', 'remaining', 'active', 'inactive_reason', 'redirect_url', 'redirect_target', 'tags', 'qr', 'stats',
  'created_at', 'updated_at',
];

forEachTarget('JSON API: links', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;
  let n = 0;
  const amountLink = (extra: Record<string, unknown> = {}) => ({ type: 'amount', name: `Link ${++n}`, amount: 1500, currency: 'EUR', ...extra });
  const create = async (extra: Record<string, unknown> = {}) => (await call('post', '/links', amountLink(extra)).expect(201)).body;
  const linkCount = async (merchantKey = a.merchant.key) => Number((await env.rt.db('links').where({ merchant_id: merchantKey }).count({ c: '*' }))[0].c);

  before(async () => {
    ({ env, a, call, callB } = await twoApiMerchants(target, ['Gym', 'Other Shop']));
  });
  after(() => env?.close());

  describe('POST /links', () => {
    it('creates an amount link and answers the Link object of API.md', async () => {
      const res = await call('post', '/links', {
        type: 'amount',
        name: 'Early Bird 2025',
        amount: 3900,
        currency: 'EUR',
        description: 'Entry for the early birds',
        internal_notes: 'Only for members',
        payment_limit: 50,
        tags: ['Summer 2025'],
        redirect_url: 'https://example.com/thanks',
        redirect_target: 'new',
      }).expect(201);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      const link = res.body;
      expect(link).to.include.all.keys(...LINK_KEYS);
      expect(res.headers.location).to.equal(`/api/v1/links/${link.id}`);
      expect(link.id).to.match(/^lnk_[0-9A-Za-z]{22}$/);
      expect(link).to.include({
        object: 'link', kind: 'smart', type: 'amount', name: 'Early Bird 2025', path: 'early-bird-2025',
        url: `http://pay.test/${a.handle}/early-bird-2025`, description: 'Entry for the early birds', internal_notes: 'Only for members',
        amount: 3900, currency: 'EUR', product_id: null, payment_limit: 50, paid_count: 0, remaining: 50, active: true,
        inactive_reason: null, redirect_url: 'https://example.com/thanks', redirect_target: 'new',
      });
      expect(link.tags).to.have.length(1);
      expect(link.tags[0]).to.have.all.keys('id', 'name', 'color');
      expect(link.tags[0].id).to.match(/^tag_/);
      expect(link.tags[0].name).to.equal('Summer 2025');
      expect(link.tags[0].color).to.match(/^#[0-9a-f]{6}$/);
      expect(link.qr).to.deep.equal({ png: `http://pay.test/api/v1/links/${link.id}/qr.png`, svg: `http://pay.test/api/v1/links/${link.id}/qr.svg` });
      expect(link.stats).to.deep.equal({ views: 0, payments: 0, revenue: 0, conversion_rate: 0, average_payment: null });
      expect(link.created_at).to.match(ISO_TIME).and.equal(env.clock.now().toISOString());
      expect(link.updated_at).to.match(ISO_TIME);
    });

    it('defaults: unlimited, active, currency of the merchant, no tags, same-window redirect', async () => {
      const link = (await call('post', '/links', { type: 'amount', name: 'Plain', amount: 100 }).expect(201)).body;
      expect(link).to.include({ currency: 'EUR', payment_limit: null, remaining: null, active: true, inactive_reason: null, redirect_url: null, redirect_target: 'same', description: null });
      expect(link.tags).to.deep.equal([]);
    });

    it('derives the path from the name and keeps it free of digits at the start', async () => {
      const first = await create({ name: 'Yoga Class — Été!' });
      expect(first.path).to.equal('yoga-class-ete');
      const second = await create({ name: 'Yoga Class — Été!' });
      expect(second.path).to.equal('yoga-class-ete-2');
      const numeric = await create({ name: '2025 Tickets' });
      expect(numeric.path).to.match(/^[a-z]/);
    });

    it('creates a product link priced by the product', async () => {
      const product = (await call('post', '/products', { name: 'T-shirt', price: 2500, currency: 'USD' }).expect(201)).body;
      const link = (await call('post', '/links', { type: 'product', name: 'Shirt sale', product_id: product.id }).expect(201)).body;
      expect(link).to.include({ type: 'product', product_id: product.id, amount: 2500, currency: 'USD' });
    });

    it('refuses another merchant’s product and an inactive one (422 on product_id)', async () => {
      const theirs = (await callB('post', '/products', { name: 'Theirs', price: 100, currency: 'EUR' }).expect(201)).body;
      expectFieldErrors(await call('post', '/links', { type: 'product', name: 'x', product_id: theirs.id }), ['product_id']);
      const off = (await call('post', '/products', { name: 'Off', price: 100, currency: 'EUR', active: false }).expect(201)).body;
      expectFieldErrors(await call('post', '/links', { type: 'product', name: 'x', product_id: off.id }), ['product_id']);
    });

    const invalid: [string, Record<string, unknown>, string[]][] = [
      ['no type', { name: 'x', amount: 100, currency: 'EUR' }, ['type']],
      ['an unknown type', { type: 'bundle', name: 'x' }, ['type']],
      ['an items link without items', { type: 'items', name: 'x' }, ['items']],
      ['wrong types', { type: 'amount', name: 5, amount: '12', currency: 1 }, ['name', 'amount', 'currency']],
      ['no name', { type: 'amount', amount: 100 }, ['name']],
      ['a blank name', { type: 'amount', name: '   ', amount: 100 }, ['name']],
      ['a fractional amount', amountLink({ amount: 12.5 }), ['amount']],
      ['a zero amount', amountLink({ amount: 0 }), ['amount']],
      ['a negative amount', amountLink({ amount: -100 }), ['amount']],
      ['a huge amount', amountLink({ amount: 1e15 }), ['amount']],
      ['a currency that is not ISO 4217', amountLink({ currency: 'EURO' }), ['currency']],
      ['an unknown currency code', amountLink({ currency: 'ABC' }), ['currency']],
      ['payment_limit 0', amountLink({ payment_limit: 0 }), ['payment_limit']],
      ['payment_limit 1001', amountLink({ payment_limit: 1001 }), ['payment_limit']],
      ['a fractional payment_limit', amountLink({ payment_limit: 2.5 }), ['payment_limit']],
      ['a string payment_limit', amountLink({ payment_limit: '5' }), ['payment_limit']],
      ['a javascript: redirect', amountLink({ redirect_url: 'javascript:alert(1)' }), ['redirect_url']],
      ['a relative redirect', amountLink({ redirect_url: '/thanks' }), ['redirect_url']],
      ['an ftp redirect', amountLink({ redirect_url: 'ftp://example.com/x' }), ['redirect_url']],
      ['a redirect with credentials', amountLink({ redirect_url: 'https://user:pw@example.com/' }), ['redirect_url']],
      ['an unknown redirect_target', amountLink({ redirect_target: '_blank' }), ['redirect_target']],
      ['a path starting with a digit', amountLink({ path: '12-50' }), ['path']],
      ['a path with spaces', amountLink({ path: 'summer sale' }), ['path']],
      ['a path too long', amountLink({ path: 'a'.repeat(65) }), ['path']],
      ['tags that are not a list', amountLink({ tags: 'summer' }), ['tags']],
      ['a tag that is not text', amountLink({ tags: [5] }), ['tags.0']],
      ['a blank tag', amountLink({ tags: ['  '] }), ['tags']],
      ['active that is not a boolean', amountLink({ active: 'yes' }), ['active']],
    ];
    for (const [label, body, fields] of invalid) {
      it(`answers 422 naming the field for ${label}, and writes nothing`, async () => {
        const before = await linkCount();
        expectFieldErrors(await call('post', '/links', body), fields);
        expect(await linkCount()).to.equal(before);
      });
    }

    it('answers 409 path_taken for a path in use, whatever its case', async () => {
      await create({ path: 'summer-sale' });
      const body = expectProblem(await call('post', '/links', amountLink({ path: 'summer-sale' })), 409, 'path_taken');
      expect(body.errors[0]).to.include({ field: 'path', code: 'path_taken' });
      expectProblem(await call('post', '/links', amountLink({ path: 'Summer-Sale' })), 409, 'path_taken');
      // Another merchant may use the same path.
      expect((await callB('post', '/links', amountLink({ path: 'summer-sale' })).expect(201)).body.path).to.equal('summer-sale');
    });

    for (const field of ['send', 'after_payment']) {
      it(`refuses an invalid "${field}" with 422 by its field and creates no link`, async () => {
        const before = await linkCount();
        const value = field === 'send' ? { customer_id: 'cus_x', channels: ['email'] } : { apply_customer_tag: 'tag_x' };
        const body = expectProblem(await call('post', '/links', amountLink({ [field]: value })), 422, 'validation_failed');
        expect(body.errors.map((e) => e.field)).to.deep.equal([field === 'send' ? 'send.customer_id' : 'after_payment.apply_customer_tag']);
        expect(await linkCount()).to.equal(before);
      });
    }

    it('creates unknown tags by name and reuses known ones whatever their case', async () => {
      const one = await create({ tags: ['Fresh Tag', 'vip'] });
      const two = await create({ tags: ['fresh tag'] });
      const fresh = one.tags.find((t: { name: string }) => t.name === 'Fresh Tag');
      expect(two.tags).to.deep.equal([fresh]);
      const tags = (await call('get', '/tags?kind=link&limit=100').expect(200)).body.data as { name: string; kind: string }[];
      expect(tags.filter((t) => t.name.toLowerCase() === 'fresh tag')).to.have.length(1);
      expect(tags.find((t) => t.name === 'vip')).to.include({ kind: 'link' });
    });

    it('creates the same new tag once when links race for it', async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => call('post', '/links', amountLink({ tags: ['Race Tag', 'Other Race Tag'] }))));
      for (const r of results) expect(r.status, r.text).to.equal(201);
      const rows = await env.rt.db('tags').where({ merchant_id: a.merchant.key }).whereIn('name', ['Race Tag', 'Other Race Tag']);
      expect(rows).to.have.length(2);
    });

    it('never answers 500 to odd bodies', async () => {
      const bodies: unknown[] = [
        [], [1, 2], {}, { type: null }, { type: 'amount', name: {}, amount: {} }, { type: 'amount', name: 'x', amount: 100, tags: [[]] },
        { type: 'amount', name: 'x', amount: 100, tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, { type: 'amount', name: 'x', amount: 100, tags: ['x'.repeat(61)] },
        { type: 'amount', name: 'x'.repeat(121), amount: 100 }, { type: 'amount', name: 'x', amount: 100, description: 5 }, { type: 'amount', name: 'x', amount: 100, path: null },
        { type: 'product', name: 'x', product_id: 5 }, { type: 'product', name: 'x', product_id: 'x'.repeat(5000) }, { type: 'amount', name: 'x', amount: 100, created_at: 'now', id: 'lnk_x', paid_count: 50 },
        { type: 'amount', name: 'x', amount: 100, __proto__: { active: false } }, { type: 'amount', name: 'x', amount: 100, redirect_url: 'https://' + 'a'.repeat(2000) + '.com' },
      ];
      for (const body of bodies) {
        const res = await call('post', '/links', body);
        expect(res.status, JSON.stringify(body)).to.be.within(200, 499);
        if (res.status >= 400) expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      }
      expectProblem(await call('get', '/links/%E0%A4%A'), 400, 'malformed_url');
      expectProblem(await call('patch', '/links/%E0%A4%A', { name: 'x' }), 400, 'malformed_url');
      for (const raw of ['{"type": "amount",', '[1,', 'nul', '{"a":1}}']) {
        expectProblem(await call('post', '/links').set('Content-Type', 'application/json').send(raw), 400, 'malformed_json');
      }
    });
  });

  describe('GET /links/:id, PATCH, DELETE, duplicate', () => {
    it('reads a link by id', async () => {
      const link = await create();
      const res = await call('get', `/links/${link.id}`).expect(200);
      expect(res.body).to.deep.equal(link);
    });

    it('answers 404 for another merchant’s link on every endpoint, and changes nothing', async () => {
      const link = await create({ path: 'private-link' });
      const attempts = [
        callB('get', `/links/${link.id}`),
        callB('patch', `/links/${link.id}`, { name: 'Mine now' }),
        callB('delete', `/links/${link.id}`),
        callB('post', `/links/${link.id}/duplicate`),
        ...['payments', 'views', 'activity', 'deliveries', 'reminders', 'qr.png', 'qr.svg'].map((sub) => callB('get', `/links/${link.id}/${sub}`)),
      ];
      for (const res of await Promise.all(attempts)) expectProblem(res, 404, 'not_found');
      expect((await call('get', `/links/${link.id}`).expect(200)).body).to.deep.equal(link);
      expectProblem(await call('get', '/links/lnk_doesnotexist'), 404, 'not_found');
    });

    it('updates the given fields and leaves the rest', async () => {
      const link = await create({ description: 'old', redirect_url: 'https://example.com/a', payment_limit: 5, tags: ['keep'] });
      env.clock.advance(1000);
      const res = await call('patch', `/links/${link.id}`, { name: 'Renamed', amount: 2000, description: null, redirect_url: null, path: 'renamed-link', tags: ['new-one'] }).expect(200);
      expect(res.body).to.include({ name: 'Renamed', amount: 2000, description: null, redirect_url: null, path: 'renamed-link', payment_limit: 5, currency: 'EUR' });
      expect(res.body.url).to.equal(`http://pay.test/${a.handle}/renamed-link`);
      expect(res.body.tags.map((t: { name: string }) => t.name)).to.deep.equal(['new-one']);
      expect(res.body.updated_at).to.equal(env.clock.now().toISOString());
      expect(res.body.created_at).to.equal(link.created_at);
    });

    it('answers 422 immutable_field for a change of type', async () => {
      const link = await create();
      const body = expectProblem(await call('patch', `/links/${link.id}`, { type: 'product' }), 422, 'immutable_field');
      expect(body.errors[0]).to.include({ field: 'type', code: 'immutable_field' });
      await call('patch', `/links/${link.id}`, { type: 'amount', name: 'Same type is fine' }).expect(200);
    });

    it('answers 409 path_taken and 422 for bad values on PATCH, writing nothing', async () => {
      await create({ path: 'taken-path' });
      const link = await create();
      expectProblem(await call('patch', `/links/${link.id}`, { path: 'taken-path' }), 409, 'path_taken');
      expectFieldErrors(await call('patch', `/links/${link.id}`, { path: '9lives' }), ['path']);
      expectFieldErrors(await call('patch', `/links/${link.id}`, { amount: 1.5, payment_limit: 0, redirect_url: 'javascript:alert(1)' }), ['amount', 'payment_limit', 'redirect_url']);
      expectFieldErrors(await call('patch', `/links/${link.id}`, { currency: 'XYZ' }), ['currency']);
      expectProblem(await call('patch', `/links/${link.id}`).set('Content-Type', 'application/json').send('{"name":'), 400, 'malformed_json');
      expect((await call('get', `/links/${link.id}`).expect(200)).body).to.deep.equal(link);
    });

    it('reactivates a link closed by its limit when the limit is raised', async () => {
      const link = await create({ payment_limit: 3 });
      await env.rt.db('links').where({ public_id: link.id }).update({ paid_count: 3, active: false, inactive_reason: 'limit_reached' });
      const closed = (await call('get', `/links/${link.id}`).expect(200)).body;
      expect(closed).to.include({ active: false, inactive_reason: 'limit_reached', remaining: 0, paid_count: 3 });
      expectProblem(await call('patch', `/links/${link.id}`, { active: true }), 422, 'validation_failed');
      expectFieldErrors(await call('patch', `/links/${link.id}`, { payment_limit: 2 }), ['payment_limit']);
      const res = await call('patch', `/links/${link.id}`, { payment_limit: 5 }).expect(200);
      expect(res.body).to.include({ active: true, inactive_reason: null, payment_limit: 5, paid_count: 3, remaining: 2 });
      const unlimited = await call('patch', `/links/${link.id}`, { payment_limit: null }).expect(200);
      expect(unlimited.body).to.include({ payment_limit: null, remaining: null, active: true });
    });

    it('deactivates and reactivates by hand', async () => {
      const link = await create();
      expect((await call('patch', `/links/${link.id}`, { active: false }).expect(200)).body).to.include({ active: false, inactive_reason: 'manual' });
      expect((await call('patch', `/links/${link.id}`, { active: true }).expect(200)).body).to.include({ active: true, inactive_reason: null });
    });

    it('deletes a link: 404 afterwards, and its path is free again', async () => {
      const link = await create({ path: 'short-lived' });
      const res = await call('delete', `/links/${link.id}`).expect(200);
      expect(res.body).to.deep.equal({ id: link.id, object: 'link', deleted: true });
      expectProblem(await call('get', `/links/${link.id}`), 404, 'not_found');
      expectProblem(await call('delete', `/links/${link.id}`), 404, 'not_found');
      expectProblem(await call('patch', `/links/${link.id}`, { name: 'x' }), 404, 'not_found');
      const again = await create({ path: 'short-lived' });
      expect(again.id).not.to.equal(link.id);
      expect(again.path).to.equal('short-lived');
      const list = (await call('get', '/links?limit=100').expect(200)).body.data as { id: string }[];
      expect(list.map((l) => l.id)).not.to.include(link.id);
    });

    it('duplicates a link with a fresh path, zero counters and the same settings', async () => {
      const link = await create({ path: 'original', payment_limit: 10, tags: ['dup-tag'], description: 'd', redirect_url: 'https://example.com/x' });
      await env.rt.db('links').where({ public_id: link.id }).update({ paid_count: 10, active: false, inactive_reason: 'limit_reached', views_count: 40, payments_count: 10, revenue: 15000 });
      const res = await call('post', `/links/${link.id}/duplicate`).expect(201);
      const copy = res.body;
      expect(res.headers.location).to.equal(`/api/v1/links/${copy.id}`);
      expect(copy.id).not.to.equal(link.id);
      expect(copy.path).to.equal('original-2');
      expect(copy).to.include({ name: link.name, amount: link.amount, currency: 'EUR', payment_limit: 10, paid_count: 0, remaining: 10, active: true, inactive_reason: null, description: 'd', redirect_url: 'https://example.com/x' });
      expect(copy.stats).to.deep.equal({ views: 0, payments: 0, revenue: 0, conversion_rate: 0, average_payment: null });
      expect(copy.tags).to.deep.equal(link.tags);
      const again = (await call('post', `/links/${link.id}/duplicate`).expect(201)).body;
      expect(again.path).to.equal('original-3');
    });
  });

  describe('GET /links (lists)', () => {
    let listEnv: TestEnv;
    let m: ApiMerchant;
    let list: ReturnType<typeof apiClient>;
    const made: { id: string; name: string }[] = [];

    before(async () => {
      listEnv = env;
      m = await apiMerchant(listEnv, 'Lister');
      list = apiClient(listEnv.app, m.secret);
      for (let i = 0; i < 23; i++) {
        listEnv.clock.advance(60_000);
        const tags = i % 3 === 0 ? ['Gold'] : i % 3 === 1 ? ['Silver'] : [];
        const body = { type: 'amount', name: i === 5 ? 'Spring 50% off' : i === 6 ? 'Spring 50 off' : `Item ${i}`, amount: 100 + i, currency: 'EUR', tags, active: i % 4 !== 0 };
        made.push((await list('post', '/links', body).expect(201)).body);
      }
    });

    it('answers { data, has_more }, newest first, 20 by default', async () => {
      const res = await list('get', '/links').expect(200);
      expect(res.body).to.have.all.keys('data', 'has_more');
      expect(res.body.has_more).to.equal(true);
      expect(res.body.data.map((l: { id: string }) => l.id)).to.deep.equal(made.slice(-20).reverse().map((l) => l.id));
      for (const l of res.body.data) expect(l).to.include.all.keys(...LINK_KEYS);
    });

    it('walks every page with starting_after, without repeats', async () => {
      for (const limit of [1, 7, 23, 100]) {
        const { ids, pages } = await walkPages(list, '/links', limit);
        expect(ids).to.deep.equal(made.map((l) => l.id).reverse());
        expect(pages).to.equal(Math.max(1, Math.ceil(23 / limit)));
      }
    });

    for (const bad of ['0', '101', 'abc', '-1', '1.5', '']) {
      it(`answers 422 on limit for limit=${bad}`, async () => {
        expectFieldErrors(await list('get', `/links?limit=${bad}`), ['limit']);
      });
    }

    it('answers 422 for a starting_after that is not one of the merchant’s links', async () => {
      expectFieldErrors(await list('get', '/links?starting_after=lnk_nope'), ['starting_after']);
      const theirs = (await callB('post', '/links', amountLink()).expect(201)).body;
      expectFieldErrors(await list('get', `/links?starting_after=${theirs.id}`), ['starting_after']);
    });

    it('filters by status', async () => {
      const active = (await list('get', '/links?status=active&limit=100').expect(200)).body.data as { active: boolean }[];
      const inactive = (await list('get', '/links?status=inactive&limit=100').expect(200)).body.data as { active: boolean }[];
      expect(active.length + inactive.length).to.equal(23);
      expect(inactive).to.have.length(6);
      expect(active.every((l) => l.active)).to.equal(true);
      expect(inactive.every((l) => !l.active)).to.equal(true);
      expectFieldErrors(await list('get', '/links?status=paused'), ['status']);
    });

    it('filters by tag name (repeatable: any of them, any case)', async () => {
      const gold = (await list('get', '/links?tag=gold&limit=100').expect(200)).body.data as { tags: { name: string }[] }[];
      expect(gold).to.have.length(8);
      expect(gold.every((l) => l.tags.some((t) => t.name === 'Gold'))).to.equal(true);
      const either = (await list('get', '/links?tag=Gold&tag=Silver&limit=100').expect(200)).body.data;
      expect(either).to.have.length(16);
      const paged = await walkPages(list, '/links?tag=Gold&tag=Silver', 5);
      expect(paged.ids).to.have.length(16);
      expect((await list('get', '/links?tag=nothing').expect(200)).body).to.deep.equal({ data: [], has_more: false });
    });

    it('searches names with q=, taking % and _ literally', async () => {
      const spring = (await list('get', '/links?q=spring').expect(200)).body.data as { name: string }[];
      expect(spring.map((l) => l.name).sort()).to.deep.equal(['Spring 50 off', 'Spring 50% off']);
      const percent = (await list('get', `/links?q=${encodeURIComponent('50%')}`).expect(200)).body.data as { name: string }[];
      expect(percent.map((l) => l.name)).to.deep.equal(['Spring 50% off']);
      expect((await list('get', '/links?q=Item_1').expect(200)).body.data).to.deep.equal([]);
    });

    it('filters by creation time (created_gte, created_lte; dates or ISO times)', async () => {
      const third = made[2] as unknown as { created_at: string };
      const tenth = made[9] as unknown as { created_at: string };
      const window = (await list('get', `/links?created_gte=${third.created_at}&created_lte=${tenth.created_at}&limit=100`).expect(200)).body.data as { id: string }[];
      expect(window.map((l) => l.id)).to.deep.equal(made.slice(2, 10).map((l) => l.id).reverse());
      const day = (await list('get', `/links?created_gte=${third.created_at.slice(0, 10)}&limit=100`).expect(200)).body.data;
      expect(day.length).to.be.at.least(21);
      expectFieldErrors(await list('get', '/links?created_gte=yesterday'), ['created_gte']);
      expectFieldErrors(await list('get', '/links?created_lte=2025-13-45'), ['created_lte']);
    });
  });

  describe('GET /links/:id/payments and the other link lists', () => {
    it('lists the link’s payments, newest first, as API.md payments', async () => {
      const link = await create({ name: 'Paid link' });
      const other = await create();
      const model = await env.rt.services.links.get(a.merchant, link.id);
      const otherModel = await env.rt.services.links.get(a.merchant, other.id);
      const first = await env.rt.services.checkout.start(a.merchant, model, { amount: 1500, currency: 'EUR', name: 'Jane Payer', email: 'jane@example.test' });
      await env.rt.services.checkout.authorize(first.payment.id, 'ref_1');
      env.clock.advance(1000);
      const second = await env.rt.services.checkout.start(a.merchant, model, { amount: 1500, currency: 'EUR', name: 'Joe', email: null });
      await env.rt.services.checkout.start(a.merchant, otherModel, { amount: 1500, currency: 'EUR' });

      const res = await call('get', `/links/${link.id}/payments`).expect(200);
      expect(res.body.has_more).to.equal(false);
      expect(res.body.data.map((p: { id: string }) => p.id)).to.deep.equal([second.payment.id, first.payment.id]);
      const paid = res.body.data[1];
      expect(paid).to.include.all.keys('id', 'link_id', 'customer', 'amount', 'currency', 'status', 'provider', 'created_at', 'paid_at');
      expect(paid).to.include({ link_id: link.id, amount: 1500, currency: 'EUR', status: 'paid' });
      expect(paid.id).to.match(/^pay_/);
      expect(paid.customer).to.include({ name: 'Jane Payer', email: 'jane@example.test' });
      expect(paid.paid_at).to.match(ISO_TIME);
      expect(res.body.data[0]).to.include({ status: 'pending', paid_at: null });
      const onePage = await call('get', `/links/${link.id}/payments?limit=1`).expect(200);
      expect(onePage.body.has_more).to.equal(true);
      expectFieldErrors(await call('get', `/links/${link.id}/payments?limit=0`), ['limit']);
    });

    for (const sub of ['views', 'activity', 'deliveries', 'reminders']) {
      it(`answers GET /links/:id/${sub} as a list`, async () => {
        const link = await create();
        expect((await call('get', `/links/${link.id}/${sub}`).expect(200)).body).to.deep.equal({ data: [], has_more: false });
        expectFieldErrors(await call('get', `/links/${link.id}/${sub}?limit=101`), ['limit']);
        expectProblem(await call('get', `/links/lnk_unknown/${sub}`), 404, 'not_found');
      });
    }
  });
});
