import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import type { TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, expectProblem, walkPages, ISO_TIME, type ApiMerchant, twoApiMerchants, type ApiCall } from './support/api.ts';

forEachTarget('JSON API: products, tags, customers, payments', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let callB: ApiCall;

  before(async () => {
    ({ env, a, call, callB } = await twoApiMerchants(target, ['Catalog Shop', 'Other Shop']));
  });
  after(() => env?.close());

  /** The same checks for every resource: another merchant's id is a 404 everywhere. */
  async function expectHiddenFromOthers(resource: string, id: string, patch: Record<string, unknown>) {
    for (const res of [await callB('get', `/${resource}/${id}`), await callB('patch', `/${resource}/${id}`, patch), await callB('delete', `/${resource}/${id}`)]) {
      expectProblem(res, 404, 'not_found');
    }
    await call('get', `/${resource}/${id}`).expect(200);
  }

  it('answers 400 malformed_json on every POST and PATCH endpoint', async () => {
    const product = (await call('post', '/products', { name: 'P', price: 100, currency: 'EUR' }).expect(201)).body;
    const tag = (await call('post', '/tags', { name: 'malformed-test' }).expect(201)).body;
    const customer = (await call('post', '/customers', { name: 'C' }).expect(201)).body;
    const link = (await call('post', '/links', { type: 'amount', name: 'L', amount: 100 }).expect(201)).body;
    const endpoints: ['post' | 'patch', string][] = [
      ['post', '/links'], ['patch', `/links/${link.id}`], ['post', '/products'], ['patch', `/products/${product.id}`],
      ['post', '/tags'], ['patch', `/tags/${tag.id}`], ['post', '/customers'], ['patch', `/customers/${customer.id}`],
    ];
    for (const [method, path] of endpoints) {
      expectProblem(await call(method, path).set('Content-Type', 'application/json').send('{"name": '), 400, 'malformed_json');
      expectProblem(await call(method, path).type('form').send('name=x'), 415, 'unsupported_media_type');
    }
  });

  describe('/products', () => {
    it('creates, reads, updates and deletes a product', async () => {
      const res = await call('post', '/products', { name: 'Yoga mat', description: 'Thick', price: 4999, currency: 'usd' }).expect(201);
      const p = res.body;
      expect(res.headers.location).to.equal(`/api/v1/products/${p.id}`);
      expect(p).to.have.all.keys('id', 'object', 'name', 'description', 'price', 'currency', 'active', 'recurring', 'created_at', 'updated_at');
      expect(p.id).to.match(/^prod_/);
      expect(p).to.include({ object: 'product', name: 'Yoga mat', description: 'Thick', price: 4999, currency: 'USD', active: true });
      expect(p.created_at).to.match(ISO_TIME);
      expect((await call('get', `/products/${p.id}`).expect(200)).body).to.deep.equal(p);
      const updated = (await call('patch', `/products/${p.id}`, { price: 5999, description: null }).expect(200)).body;
      expect(updated).to.include({ price: 5999, description: null, name: 'Yoga mat', currency: 'USD' });
      await expectHiddenFromOthers('products', p.id, { price: 1 });
      expect((await call('delete', `/products/${p.id}`).expect(200)).body).to.deep.equal({ id: p.id, object: 'product', deleted: true });
      expectProblem(await call('get', `/products/${p.id}`), 404, 'not_found');
      expectProblem(await call('patch', `/products/${p.id}`, { price: 1 }), 404, 'not_found');
    });

    const invalid: [string, Record<string, unknown>, string[]][] = [
      ['nothing', {}, ['name', 'price', 'currency']],
      ['a fractional price', { name: 'x', price: 12.5, currency: 'EUR' }, ['price']],
      ['a zero price', { name: 'x', price: 0, currency: 'EUR' }, ['price']],
      ['a negative price', { name: 'x', price: -5, currency: 'EUR' }, ['price']],
      ['a price as text', { name: 'x', price: '10', currency: 'EUR' }, ['price']],
      ['a currency that is not ISO', { name: 'x', price: 10, currency: 'EURO' }, ['currency']],
      ['a name that is not text', { name: 5, price: 10, currency: 'EUR' }, ['name']],
    ];
    for (const [label, body, fields] of invalid) {
      it(`answers 422 on ${fields.join(', ')} for ${label}`, async () => {
        expectFieldErrors(await call('post', '/products', body), fields);
      });
    }

    it('answers 422 for bad PATCH values and keeps the product', async () => {
      const p = (await call('post', '/products', { name: 'Keep', price: 100, currency: 'EUR' }).expect(201)).body;
      expectFieldErrors(await call('patch', `/products/${p.id}`, { price: 0, currency: 'XX' }), ['price', 'currency']);
      expect((await call('get', `/products/${p.id}`).expect(200)).body).to.deep.equal(p);
    });

    it('keeps a product’s currency while links sell it (422 currency_locked), and allows it before', async () => {
      const product = (await call('post', '/products', { name: 'Mug', price: 1500, currency: 'EUR' }).expect(201)).body;
      await call('patch', `/products/${product.id}`, { currency: 'USD' }).expect(200);
      await call('post', '/links', { type: 'product', name: 'Mug link', product_id: product.id }).expect(201);
      expectFieldErrors(await call('patch', `/products/${product.id}`, { currency: 'GBP' }), ['currency']);
      expect((await call('get', `/products/${product.id}`).expect(200)).body.currency).to.equal('USD');
    });

    it('lists products newest first with pagination', async () => {
      const m = await apiMerchant(env, 'Many products');
      const c = apiClient(env.app, m.secret);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await c('post', '/products', { name: `P${i}`, price: 100 + i, currency: 'EUR' }).expect(201)).body.id);
      const walk = await walkPages(c, '/products', 5);
      expect(walk.ids).to.deep.equal([...ids].reverse());
      expect(walk.pages).to.equal(3);
      for (const bad of ['0', '101', 'abc']) expectFieldErrors(await c('get', `/products?limit=${bad}`), ['limit']);
      expectFieldErrors(await c('get', '/products?starting_after=prod_nope'), ['starting_after']);
    });
  });

  describe('/tags', () => {
    it('creates, reads, updates and deletes a tag', async () => {
      const res = await call('post', '/tags', { name: 'Summer 2025', color: '#F59E0B', kind: 'link' }).expect(201);
      const t = res.body;
      expect(t).to.have.all.keys('id', 'object', 'name', 'color', 'kind', 'created_at', 'updated_at');
      expect(t.id).to.match(/^tag_/);
      expect(t).to.include({ object: 'tag', name: 'Summer 2025', color: '#f59e0b', kind: 'link' });
      expect((await call('get', `/tags/${t.id}`).expect(200)).body).to.deep.equal(t);
      expect((await call('patch', `/tags/${t.id}`, { name: 'Summer 26', color: '#10b981' }).expect(200)).body).to.include({ name: 'Summer 26', color: '#10b981', kind: 'link' });
      await expectHiddenFromOthers('tags', t.id, { name: 'x' });
      expect((await call('delete', `/tags/${t.id}`).expect(200)).body).to.deep.equal({ id: t.id, object: 'tag', deleted: true });
      expectProblem(await call('get', `/tags/${t.id}`), 404, 'not_found');
    });

    it('defaults to a link tag with a palette colour', async () => {
      const t = (await call('post', '/tags', { name: 'Defaulted' }).expect(201)).body;
      expect(t.kind).to.equal('link');
      expect(t.color).to.match(/^#[0-9a-f]{6}$/);
    });

    for (const [label, body, fields] of [
      ['no name', {}, ['name']],
      ['a named colour', { name: 'x', color: 'red' }, ['color']],
      ['a short hex colour', { name: 'x', color: '#fff' }, ['color']],
      ['an unknown kind', { name: 'x', kind: 'product' }, ['kind']],
      ['a name too long', { name: 'x'.repeat(61) }, ['name']],
      ['a name with a line break', { name: 'a\nb' }, ['name']],
    ] as [string, Record<string, unknown>, string[]][]) {
      it(`answers 422 on ${fields.join(', ')} for ${label}`, async () => {
        expectFieldErrors(await call('post', '/tags', body), fields);
      });
    }

    it('answers 409 tag_name_taken for a name in use in the same kind, whatever its case', async () => {
      await call('post', '/tags', { name: 'Gold', kind: 'customer' }).expect(201);
      expectProblem(await call('post', '/tags', { name: 'Gold', kind: 'customer' }), 409, 'tag_name_taken');
      expectProblem(await call('post', '/tags', { name: 'GOLD', kind: 'customer' }), 409, 'tag_name_taken');
      await call('post', '/tags', { name: 'Gold', kind: 'link' }).expect(201);
      const silver = (await call('post', '/tags', { name: 'Silver', kind: 'customer' }).expect(201)).body;
      expectProblem(await call('patch', `/tags/${silver.id}`, { name: 'gold' }), 409, 'tag_name_taken');
      await call('patch', `/tags/${silver.id}`, { name: 'SILVER' }).expect(200);
    });

    it('answers 422 immutable_field for a change of kind', async () => {
      const t = (await call('post', '/tags', { name: 'Kind fixed', kind: 'link' }).expect(201)).body;
      const body = expectProblem(await call('patch', `/tags/${t.id}`, { kind: 'customer' }), 422, 'immutable_field');
      expect(body.errors[0]).to.include({ field: 'kind', code: 'immutable_field' });
    });

    it('lists tags with pagination and a kind filter', async () => {
      const m = await apiMerchant(env, 'Tagger');
      const c = apiClient(env.app, m.secret);
      for (let i = 0; i < 7; i++) await c('post', '/tags', { name: `L${i}`, kind: 'link' }).expect(201);
      for (let i = 0; i < 4; i++) await c('post', '/tags', { name: `C${i}`, kind: 'customer' }).expect(201);
      expect((await walkPages(c, '/tags', 3)).ids).to.have.length(11);
      const customers = await walkPages(c, '/tags?kind=customer', 3);
      expect(customers.ids).to.have.length(4);
      const page = (await c('get', '/tags?kind=customer').expect(200)).body.data as { name: string; kind: string }[];
      expect(page.map((t) => t.name)).to.deep.equal(['C3', 'C2', 'C1', 'C0']);
      expectFieldErrors(await c('get', '/tags?kind=product'), ['kind']);
    });

    it('deleting a tag removes it from its links', async () => {
      const link = (await call('post', '/links', { type: 'amount', name: 'Tagged', amount: 100, tags: ['Doomed'] }).expect(201)).body;
      await call('delete', `/tags/${link.tags[0].id}`).expect(200);
      expect((await call('get', `/links/${link.id}`).expect(200)).body.tags).to.deep.equal([]);
    });
  });

  describe('/customers', () => {
    it('creates, reads, updates and deletes a customer', async () => {
      const res = await call('post', '/customers', { name: 'Jane Doe', email: 'Jane@Example.com', phone: '+31 6 12345678', address: 'Damrak 1, Amsterdam', tags: ['VIP'] }).expect(201);
      const c = res.body;
      expect(res.headers.location).to.equal(`/api/v1/customers/${c.id}`);
      expect(c).to.have.all.keys('id', 'object', 'name', 'email', 'phone', 'address', 'addresses', 'tags', 'created_at', 'updated_at');
      expect(c.id).to.match(/^cus_/);
      expect(c).to.include({ object: 'customer', name: 'Jane Doe', email: 'jane@example.com', phone: '+31612345678', address: 'Damrak 1, Amsterdam' });
      expect(c.addresses).to.deep.equal({});
      expect(c.tags).to.have.length(1);
      expect(c.tags[0]).to.include({ name: 'VIP' });
      const customerTags = (await call('get', '/tags?kind=customer&limit=100').expect(200)).body.data as { id: string }[];
      expect(customerTags.map((t) => t.id)).to.include(c.tags[0].id);
      expect((await call('get', `/customers/${c.id}`).expect(200)).body).to.deep.equal(c);

      const updated = (await call('patch', `/customers/${c.id}`, { phone: null, email: '', tags: [] }).expect(200)).body;
      expect(updated).to.include({ name: 'Jane Doe', phone: null, email: null, address: 'Damrak 1, Amsterdam' });
      expect(updated.tags).to.deep.equal([]);
      await expectHiddenFromOthers('customers', c.id, { name: 'x' });
      expect((await call('delete', `/customers/${c.id}`).expect(200)).body).to.deep.equal({ id: c.id, object: 'customer', deleted: true });
      expectProblem(await call('get', `/customers/${c.id}`), 404, 'not_found');
      expectProblem(await call('delete', `/customers/${c.id}`), 404, 'not_found');
    });

    // Numbers without a leading + need the `country` hint: there is no merchant country to assume.
    for (const [input, country, e164] of [
      ['+31 6 12345678', undefined, '+31612345678'],
      ['+31612345678', undefined, '+31612345678'],
      ['+1 (415) 555-2671', undefined, '+14155552671'],
      ['(415) 555-2671', 'US', '+14155552671'],
      ['415.555.2671', 'us', '+14155552671'],
      ['06-12345678', 'NL', '+31612345678'],
      ['0031 6 1234 5678', 'NL', '+31612345678'],
      ['+44 20 7946 0958', 'US', '+442079460958'],
      ['tel:+31612345678', undefined, '+31612345678'],
    ] as [string, string | undefined, string][]) {
      it(`stores "${input}"${country ? ` (country ${country})` : ''} as ${e164}`, async () => {
        const c = (await call('post', '/customers', { name: 'Phone', phone: input, ...(country ? { country } : {}) }).expect(201)).body;
        expect(c.phone).to.equal(e164);
      });
    }

    for (const [input, country] of [
      ['(415) 555-2671', undefined],
      ['12345', undefined],
      ['+31 6 1234', undefined],
      ['not a phone', undefined],
      ['+31612345678 ext. 12', undefined],
      ['+999 123 456 789', undefined],
      ['555', 'US'],
    ] as [string, string | undefined][]) {
      it(`answers 422 invalid_phone for "${input}"${country ? ` (country ${country})` : ''}, and writes nothing`, async () => {
        const before = (await env.rt.db('customers').count({ n: '*' }))[0].n;
        const body = expectProblem(await call('post', '/customers', { name: 'Bad phone', phone: input, country }), 422, 'invalid_phone');
        expect(body.errors).to.deep.include({ field: 'phone', code: 'invalid_phone', message: body.errors[0].message });
        expect((await env.rt.db('customers').count({ n: '*' }))[0].n).to.equal(before);
      });
    }

    it('reports a bad phone among other bad fields, and an unknown country', async () => {
      const body = expectFieldErrors(await call('post', '/customers', { name: '', phone: '123', email: 'nope' }), ['name', 'phone', 'email']);
      expect(body.errors.find((e) => e.field === 'phone')!.code).to.equal('invalid_phone');
      expectFieldErrors(await call('post', '/customers', { name: 'x', phone: '4155552671', country: 'XX' }), ['country']);
      expectFieldErrors(await call('post', '/customers', { name: 'x', phone: 31612345678 }), ['phone']);
      expectFieldErrors(await call('post', '/customers', { name: 'x', tags: 'vip' }), ['tags']);
    });

    it('answers 422 invalid_phone on PATCH and keeps the customer', async () => {
      const c = (await call('post', '/customers', { name: 'Patchy', phone: '+31612345678' }).expect(201)).body;
      expectProblem(await call('patch', `/customers/${c.id}`, { phone: '0612345678' }), 422, 'invalid_phone');
      expect((await call('patch', `/customers/${c.id}`, { phone: '0612345678', country: 'NL', name: 'Patched' }).expect(200)).body).to.include({ phone: '+31612345678', name: 'Patched' });
      expectFieldErrors(await call('patch', `/customers/${c.id}`, { name: '' }), ['name']);
    });

    it('lists customers with pagination and q, email and tag filters', async () => {
      const m = await apiMerchant(env, 'CRM');
      const c = apiClient(env.app, m.secret);
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) {
        const body = { name: i === 3 ? 'Anna de Vries' : `Customer ${i}`, email: `c${i}@example.test`, tags: i % 2 ? ['Odd'] : [] };
        ids.push((await c('post', '/customers', body).expect(201)).body.id);
      }
      const walk = await walkPages(c, '/customers', 4);
      expect(walk.ids).to.deep.equal([...ids].reverse());
      expect(((await c('get', '/customers?q=vries').expect(200)).body.data as { id: string }[]).map((x) => x.id)).to.deep.equal([ids[3]]);
      expect(((await c('get', '/customers?q=C5@EXAMPLE').expect(200)).body.data as { id: string }[]).map((x) => x.id)).to.deep.equal([ids[5]]);
      expect(((await c('get', '/customers?email=C7@example.test').expect(200)).body.data as { id: string }[]).map((x) => x.id)).to.deep.equal([ids[7]]);
      expect((await c('get', '/customers?tag=odd').expect(200)).body.data).to.have.length(4);
      expectFieldErrors(await c('get', '/customers?limit=101'), ['limit']);
      await c('delete', `/customers/${ids[8]}`).expect(200);
      expect((await walkPages(c, '/customers', 100)).ids).to.have.length(8);
    });
  });

  describe('/payments', () => {
    let linkId: string;
    let paidId: string;
    let pendingId: string;
    let otherLinkPaymentId: string;

    before(async () => {
      const link = (await call('post', '/links', { type: 'amount', name: 'Payments link', amount: 2500, currency: 'EUR' }).expect(201)).body;
      const other = (await call('post', '/links', { type: 'amount', name: 'Other payments link', amount: 700, currency: 'EUR' }).expect(201)).body;
      linkId = link.id;
      const { checkout, links } = env.rt.services;
      const model = await links.get(a.merchant, link.id);
      const otherModel = await links.get(a.merchant, other.id);
      const paid = await checkout.start(a.merchant, model, { amount: 2500, currency: 'EUR', name: 'Piet', email: 'piet@example.test' });
      await checkout.authorize(paid.payment.id, 'sandbox_ref_1');
      paidId = paid.payment.id;
      env.clock.advance(1000);
      otherLinkPaymentId = (await checkout.start(a.merchant, otherModel, { amount: 700, currency: 'EUR' })).payment.id;
      env.clock.advance(1000);
      pendingId = (await checkout.start(a.merchant, model, { amount: 2500, currency: 'EUR', name: 'Klaas', email: null })).payment.id;
    });

    it('reads a payment with the fields of API.md', async () => {
      const p = (await call('get', `/payments/${paidId}`).expect(200)).body;
      expect(p).to.include.all.keys('id', 'object', 'link_id', 'customer', 'amount', 'currency', 'status', 'provider', 'created_at', 'paid_at');
      expect(p).to.include({ id: paidId, object: 'payment', link_id: linkId, amount: 2500, currency: 'EUR', status: 'paid', provider: 'sandbox' });
      // Paid without a signed customer URL: the payer is recorded as the customer with their email.
      const piet = await env.rt.db('customers').where({ merchant_id: a.merchant.key, email: 'piet@example.test' }).first();
      expect(p.customer).to.deep.equal({ id: piet.public_id, name: 'Piet', email: 'piet@example.test', phone: null });
      expect(p.created_at).to.match(ISO_TIME);
      expect(p.paid_at).to.match(ISO_TIME);
      const pending = (await call('get', `/payments/${pendingId}`).expect(200)).body;
      expect(pending).to.include({ status: 'pending', paid_at: null });
    });

    it('lists payments newest first and filters by link_id and status', async () => {
      const all = (await call('get', '/payments?limit=100').expect(200)).body;
      expect(all.has_more).to.equal(false);
      const ids = (all.data as { id: string }[]).map((p) => p.id);
      expect(ids.slice(0, 3)).to.deep.equal([pendingId, otherLinkPaymentId, paidId]);
      expect(((await call('get', `/payments?link_id=${linkId}`).expect(200)).body.data as { id: string }[]).map((p) => p.id)).to.deep.equal([pendingId, paidId]);
      expect(((await call('get', '/payments?status=paid').expect(200)).body.data as { id: string }[]).map((p) => p.id)).to.deep.equal([paidId]);
      expect(((await call('get', `/payments?status=pending&link_id=${linkId}`).expect(200)).body.data as { id: string }[]).map((p) => p.id)).to.deep.equal([pendingId]);
      expect((await call('get', '/payments?link_id=lnk_unknown').expect(200)).body).to.deep.equal({ data: [], has_more: false });
      expectFieldErrors(await call('get', '/payments?status=done'), ['status']);
      expect((await walkPages(call, '/payments', 1)).ids).to.deep.equal(ids);
      expectFieldErrors(await call('get', '/payments?limit=abc'), ['limit']);
    });

    it('hides payments from other merchants', async () => {
      expectProblem(await callB('get', `/payments/${paidId}`), 404, 'not_found');
      expect((await callB('get', '/payments').expect(200)).body).to.deep.equal({ data: [], has_more: false });
      expect((await callB('get', `/payments?link_id=${linkId}`).expect(200)).body).to.deep.equal({ data: [], has_more: false });
    });

    it('has no write endpoints', async () => {
      expectProblem(await call('post', '/payments', { amount: 100 }), 404, 'not_found');
      expectProblem(await call('delete', `/payments/${paidId}`), 404, 'not_found');
    });
  });
});
