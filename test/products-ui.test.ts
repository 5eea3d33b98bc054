import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv, type Account, fieldError } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

forEachTarget('dashboard: products', (target) => {
  const env = useEnv(target);

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const rows = async (acct: Account) => env.rt.db('products').where({ merchant_id: (await merchantOf(acct)).key });
  const post = (acct: Account, url: string, fields: Record<string, unknown>) =>
    acct.agent.post(url).type('form').send({ _csrf: acct.csrf, currency: 'EUR', active: 'on', ...fields });

  it('shows an empty catalogue that says how to start', async () => {
    const acct = await signUp(env.app);
    const res = await acct.agent.get('/app/products').expect(200);
    expect(res.text).to.include('No products yet');
    expect(res.text).to.include('href="/app/products/new"');
    const form = await acct.agent.get('/app/products/new').expect(200);
    expect(form.text).to.match(/<option value="EUR" selected>/);
  });

  it('adds a product with its price typed as a decimal, and lists it', async () => {
    const acct = await signUp(env.app);
    const res = await post(acct, '/app/products', { name: 'Coffee beans', description: '1 kg, whole', price: '18.50' }).expect(303);
    expect(res.headers.location).to.equal('/app/products');
    await post(acct, '/app/products', { name: 'Yen thing', price: '1500', currency: 'JPY' }).expect(303);
    await post(acct, '/app/products', { name: 'Dinar thing', price: '2.125', currency: 'kwd' }).expect(303);
    const all = await rows(acct);
    expect(all.map((r) => [r.name, Number(r.price), r.currency, Boolean(r.active)])).to.deep.include.members([
      ['Coffee beans', 1850, 'EUR', true],
      ['Yen thing', 1500, 'JPY', true],
      ['Dinar thing', 2125, 'KWD', true],
    ]);
    const list = await acct.agent.get('/app/products').expect(200);
    expect(list.text).to.include('Coffee beans');
    expect(list.text).to.include('€18.50');
    expect(list.text).to.include('¥1,500');
    expect(list.text).to.include('added');
  });

  for (const [field, label, fields] of [
    ['price', 'too many decimals', { price: '1.999' }],
    ['price', 'decimals on a currency without them', { price: '10.5', currency: 'JPY' }],
    ['price', 'a zero price', { price: '0' }],
    ['price', 'a missing price', { price: '' }],
    ['price', 'words for a price', { price: 'ten' }],
    ['currency', 'an unknown currency', { currency: 'EURO' }],
    ['name', 'no name', { name: '  ' }],
    ['name', 'an over-long name', { name: 'x'.repeat(121) }],
    ['description', 'an over-long description', { description: 'x'.repeat(2001) }],
  ] as [string, string, Record<string, unknown>][]) {
    it(`refuses ${label} with 422 by the field and adds nothing`, async () => {
      const acct = await signUp(env.app);
      const res = await post(acct, '/app/products', { name: 'Thing', price: '5', ...fields }).expect(422);
      expect(fieldError(res.text, field)).not.to.equal('');
      expect(res.text).to.match(new RegExp(`id="f-${field}"[^>]*aria-invalid="true"`));
      expect(await rows(acct)).to.have.length(0);
    });
  }

  it('edits a product; a bad edit changes nothing', async () => {
    const acct = await signUp(env.app);
    const product = await env.rt.services.products.create((await merchantOf(acct)).key, { name: 'Mug', price: 900, currency: 'EUR' });
    const form = await acct.agent.get(`/app/products/${product.id}/edit`).expect(200);
    expect(form.text).to.include('value="9.00"');
    expect(form.text).to.include('value="Mug"');
    await post(acct, `/app/products/${product.id}`, { name: 'Big mug', price: '12', description: 'Holds a lot' }).expect(303);
    const saved = await env.rt.services.products.get((await merchantOf(acct)).key, product.id);
    expect(saved).to.include({ name: 'Big mug', price: 1200, description: 'Holds a lot', active: true });
    const bad = await post(acct, `/app/products/${product.id}`, { name: 'Cheap mug', price: '0.001' }).expect(422);
    expect(fieldError(bad.text, 'price')).not.to.equal('');
    expect(await env.rt.services.products.get((await merchantOf(acct)).key, product.id)).to.deep.equal(saved);
  });

  it('deactivates a product (no longer offered for new links) and activates it again', async () => {
    const acct = await signUp(env.app);
    const product = await env.rt.services.products.create((await merchantOf(acct)).key, { name: 'Seasonal', price: 500, currency: 'EUR' });
    await acct.agent.post(`/app/products/${product.id}/deactivate`).type('form').send({ _csrf: acct.csrf }).expect(303);
    expect((await env.rt.services.products.get((await merchantOf(acct)).key, product.id)).active).to.equal(false);
    const step1 = await acct.agent.get('/app/links/new').expect(200);
    expect(step1.text).not.to.include('href="/app/links/new?type=product"');
    const list = await acct.agent.get('/app/products').expect(200);
    expect(list.text).to.include('>Inactive</span>');
    await acct.agent.post(`/app/products/${product.id}/activate`).type('form').send({ _csrf: acct.csrf }).expect(303);
    const form = await acct.agent.get('/app/links/new?type=product').expect(200);
    expect(form.text).to.include(`<option value="${product.id}"`);
  });

  it('deletes a product after a confirmation page', async () => {
    const acct = await signUp(env.app);
    const product = await env.rt.services.products.create((await merchantOf(acct)).key, { name: 'Gone soon', price: 500, currency: 'EUR' });
    const confirm = await acct.agent.get(`/app/products/${product.id}/delete`).expect(200);
    expect(confirm.text).to.include(`action="/app/products/${product.id}/delete"`);
    await acct.agent.post(`/app/products/${product.id}/delete`).type('form').send({ _csrf: acct.csrf }).expect(303);
    const list = await acct.agent.get('/app/products').expect(200);
    expect(list.text).not.to.include(`/app/products/${product.id}/edit`);
    await acct.agent.get(`/app/products/${product.id}/edit`).expect(404);
  });

  it('answers 404 for another merchant’s product on every route', async () => {
    const owner = await signUp(env.app);
    const product = await env.rt.services.products.create((await merchantOf(owner)).key, { name: 'Mine', price: 500, currency: 'EUR' });
    const intruder = await signUp(env.app);
    for (const path of ['/edit', '/delete']) await intruder.agent.get(`/app/products/${product.id}${path}`).expect(404);
    for (const path of ['', '/activate', '/deactivate', '/delete']) await post(intruder, `/app/products/${product.id}${path}`, { name: 'Stolen', price: '1' }).expect(404);
    expect(await env.rt.services.products.get((await merchantOf(owner)).key, product.id)).to.deep.equal(product);
    const list = await intruder.agent.get('/app/products').expect(200);
    expect(list.text).not.to.include('Mine');
  });

  it('pages through a long catalogue', async () => {
    const acct = await signUp(env.app);
    const key = (await merchantOf(acct)).key;
    for (let i = 1; i <= 105; i++) await env.rt.services.products.create(key, { name: `P${i}`, price: 100, currency: 'EUR' });
    const first = await acct.agent.get('/app/products').expect(200);
    const next = /href="(\/app\/products\?after=prod_[^"]+)"/.exec(first.text)![1];
    const second = await acct.agent.get(next).expect(200);
    expect(second.text).to.include('>P1<');
    expect(second.text).not.to.include('>P105<');
    await acct.agent.get('/app/products?after=prod_bogus').expect(200);
  });
});
