import { expect } from 'chai';
import supertest from 'supertest';
import type { Page } from 'playwright-core';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv, fieldError } from './support/harness.ts';
import { PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

const LINK_ID = /\/app\/links\/(lnk_[0-9A-Za-z]+)/;

forEachTarget('dashboard: links', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const count = async (table: string, merchant: Merchant) => Number((await env.rt.db(table).where({ merchant_id: merchant.key }).count({ n: '*' }))[0].n);

  /** Posts the new-link form; fields as a browser sends them (checkboxes "on" or absent). */
  const postLink = (acct: Account, fields: Record<string, unknown>) =>
    acct.agent
      .post('/app/links')
      .type('form')
      .send({ _csrf: acct.csrf, type: 'amount', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', ...fields });

  const createLink = async (acct: Account, fields: Record<string, unknown>) => {
    const res = await postLink(acct, fields);
    if (res.status !== 303) throw new Error(`create failed with ${res.status}: ${res.text.match(/id="f-[\w-]+-error"[^>]*>[^<]+/g)?.join(' | ')}`);
    const id = LINK_ID.exec(res.headers.location)![1];
    return env.rt.services.links.get(await merchantOf(acct), id);
  };

  /** The edit form's fields for a link, as the page would post them back. */
  const editFields = (acct: Account, link: Awaited<ReturnType<typeof createLink>>, change: Record<string, unknown> = {}) => ({
    _csrf: acct.csrf,
    name: link.name,
    path: link.path,
    ...(link.type === 'amount' ? { amount: String(link.amount! / 100), currency: link.currency } : {}),
    description: link.description ?? '',
    internal_notes: link.internalNotes ?? '',
    tags: link.tags.map((t) => t.name),
    limit: link.paymentLimit === null ? 'unlimited' : link.paymentLimit === 1 ? 'once' : 'multiple',
    limit_count: link.paymentLimit && link.paymentLimit > 1 ? String(link.paymentLimit) : '',
    redirect_url: link.redirectUrl ?? '',
    redirect_target: link.redirectTarget,
    ...(link.active ? { active: 'on' } : {}),
    ...change,
  });

  describe('creating', () => {
    it('asks for the type first, and explains how to add a product when there is none', async () => {
      const acct = await signUp(env.app);
      const step1 = await acct.agent.get('/app/links/new').expect(200);
      expect(step1.text).to.include('href="/app/links/new?type=amount"');
      expect(step1.text).not.to.include('href="/app/links/new?type=product"');
      expect(step1.text).to.include('href="/app/products/new"');
      const step2 = await acct.agent.get('/app/links/new?type=amount').expect(200);
      expect(step2.text).to.include('name="type" value="amount"');
      expect(step2.text).to.include('id="f-amount"');
    });

    it('creates an amount link from a decimal, with a path made from the name, and shows its page', async () => {
      const acct = await signUp(env.app);
      const res = await postLink(acct, { name: 'Summer Sale!', amount: '12.50', description: 'Two tickets', internal_notes: 'Ask Jo', redirect_url: 'https://example.com/thanks', redirect_target: 'new', show_remaining: 'on', limit: 'multiple', limit_count: '50' }).expect(303);
      expect(res.headers.location).to.match(/^\/app\/links\/lnk_/);
      const link = await env.rt.services.links.get(await merchantOf(acct), LINK_ID.exec(res.headers.location)![1]);
      expect(link).to.include({ type: 'amount', name: 'Summer Sale!', path: 'summer-sale', amount: 1250, currency: 'EUR', description: 'Two tickets', internalNotes: 'Ask Jo', paymentLimit: 50, redirectUrl: 'https://example.com/thanks', redirectTarget: 'new', showRemaining: true, active: true });
      const page = await acct.agent.get(res.headers.location).expect(200);
      expect(page.text).to.include(`http://pay.test/${acct.handle}/summer-sale`);
      expect(page.text).to.include('€12.50');
      expect(page.text).to.include(`src="/app/links/${link.id}/qr.png?size=200"`);
      expect(page.text).to.match(new RegExp(`href="/app/links/${link.id}/qr.png[^"]*" download`));
      expect(page.text).to.match(new RegExp(`href="/app/links/${link.id}/qr.svg[^"]*" download`));
      expect(page.text).to.include('data-copy=');
      expect(page.text).to.include('created.');
    });

    it('takes amounts in the currency’s precision: none for JPY, three for KWD', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      expect((await createLink(acct, { name: 'Yen', amount: '1500', currency: 'JPY' })).amount).to.equal(1500);
      expect((await createLink(acct, { name: 'Dinar', amount: '1.234', currency: 'KWD' })).amount).to.equal(1234);
      expect((await createLink(acct, { name: 'Comma', amount: '7,5', currency: 'EUR' })).amount).to.equal(750);
      const before = await count('links', merchant);
      for (const [amount, currency] of [['15.5', 'JPY'], ['1.2345', 'KWD'], ['12.505', 'EUR'], ['0', 'EUR'], ['-3', 'EUR'], ['abc', 'EUR'], ['', 'EUR']]) {
        const res = await postLink(acct, { name: 'Bad amount', amount, currency }).expect(422);
        expect(fieldError(res.text, 'amount'), `${amount} ${currency}`).not.to.equal('');
        expect(res.text).to.match(/id="f-amount"[^>]*aria-invalid="true"/);
        expect(res.text).to.include(`value="${amount}"`);
      }
      const badCurrency = await postLink(acct, { name: 'Bad currency', amount: '1', currency: 'XYZ1' }).expect(422);
      expect(fieldError(badCurrency.text, 'currency')).not.to.equal('');
      expect(await count('links', merchant)).to.equal(before);
    });

    it('shows every problem at once, by its field', async () => {
      const acct = await signUp(env.app);
      const res = await postLink(acct, { name: '', amount: '1.999', path: '9lives', redirect_url: 'ftp://x.example', limit: 'multiple', limit_count: '0' }).expect(422);
      for (const f of ['name', 'amount', 'path', 'redirect_url', 'payment_limit']) expect(fieldError(res.text, f), f).not.to.equal('');
      expect(res.text).to.include('5 fields');
    });

    it('creates a product link that charges the product’s price', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const product = await env.rt.services.products.create(merchant.key, { name: 'Coffee beans', price: 1800, currency: 'USD' });
      const step1 = await acct.agent.get('/app/links/new').expect(200);
      expect(step1.text).to.include('href="/app/links/new?type=product"');
      const form = await acct.agent.get('/app/links/new?type=product').expect(200);
      expect(form.text).to.include(`<option value="${product.id}"`);
      const link = await createLink(acct, { type: 'product', name: 'Beans', product_id: product.id, currency: undefined });
      expect(link).to.include({ type: 'product', productId: product.id, amount: null, currency: 'USD' });
      const missing = await postLink(acct, { type: 'product', name: 'No product', product_id: '' }).expect(422);
      expect(fieldError(missing.text, 'product_id')).not.to.equal('');
      const other = await signUp(env.app);
      const theirs = await env.rt.services.products.create((await merchantOf(other)).key, { name: 'Theirs', price: 100, currency: 'EUR' });
      const foreign = await postLink(acct, { type: 'product', name: 'Foreign', product_id: theirs.id }).expect(422);
      expect(fieldError(foreign.text, 'product_id')).not.to.equal('');
      const list = await acct.agent.get('/app/links').expect(200);
      expect(list.text).to.include('$18.00');
    });

    it('adds -2, -3 to a path made from a name that is taken', async () => {
      const acct = await signUp(env.app);
      expect((await createLink(acct, { name: 'Early Bird', amount: '5' })).path).to.equal('early-bird');
      expect((await createLink(acct, { name: 'Early bird', amount: '5' })).path).to.equal('early-bird-2');
      expect((await createLink(acct, { name: 'EARLY BIRD', amount: '5' })).path).to.equal('early-bird-3');
      // Another merchant's paths do not count.
      const other = await signUp(env.app);
      expect((await createLink(other, { name: 'Early Bird', amount: '5' })).path).to.equal('early-bird');
    });

    it('refuses a path that starts with a digit, explaining amount URLs', async () => {
      const acct = await signUp(env.app);
      const res = await postLink(acct, { name: 'Numbers', amount: '5', path: '12-50' }).expect(422);
      expect(fieldError(res.text, 'path')).to.match(/amount URL/i);
      expect(fieldError(res.text, 'path')).to.include('12.50');
      expect(await count('links', await merchantOf(acct))).to.equal(0);
    });

    it('refuses a taken path with 422 by the field, creating nothing (not even new tags)', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      await createLink(acct, { name: 'First', amount: '5', path: 'taken' });
      const res = await postLink(acct, { name: 'Second', amount: '5', path: 'Taken', new_tags: 'Fresh tag' }).expect(422);
      expect(fieldError(res.text, 'path')).to.match(/already/);
      expect(await count('links', merchant)).to.equal(1);
      expect(await count('tags', merchant)).to.equal(0);
      expect(res.text).to.include('value="Fresh tag"');
    });

    for (const [label, url] of [
      ['an ftp: URL', 'ftp://files.example.com/x'],
      ['a relative URL', '/thanks'],
      ['a javascript: URL', 'javascript:alert(1)'],
      ['a URL without a host', 'https://'],
      ['a URL with credentials', 'https://user:pw@example.com/'],
    ]) {
      it(`refuses ${label} as the redirect with 422 and writes nothing`, async () => {
        const acct = await signUp(env.app);
        const res = await postLink(acct, { name: 'Redirect', amount: '5', redirect_url: url, new_tags: 'Never' }).expect(422);
        expect(fieldError(res.text, 'redirect_url')).not.to.equal('');
        const merchant = await merchantOf(acct);
        expect(await count('links', merchant)).to.equal(0);
        expect(await count('tags', merchant)).to.equal(0);
      });
    }

    it('sets the payment limit from the radio buttons, and refuses one out of range', async () => {
      const acct = await signUp(env.app);
      expect((await createLink(acct, { name: 'Open', amount: '5', limit: 'unlimited', limit_count: '7' })).paymentLimit).to.equal(null);
      expect((await createLink(acct, { name: 'Once', amount: '5', limit: 'once' })).paymentLimit).to.equal(1);
      expect((await createLink(acct, { name: 'Many', amount: '5', limit: 'multiple', limit_count: '1000' })).paymentLimit).to.equal(1000);
      const merchant = await merchantOf(acct);
      const before = await count('links', merchant);
      for (const n of ['0', '1001', '2.5', 'ten', '', '-1']) {
        const res = await postLink(acct, { name: 'Bad limit', amount: '5', limit: 'multiple', limit_count: n }).expect(422);
        expect(fieldError(res.text, 'payment_limit'), n).not.to.equal('');
      }
      await postLink(acct, { name: 'Bad mode', amount: '5', limit: 'sometimes' }).expect(422);
      expect(await count('links', merchant)).to.equal(before);
    });

    it('creates tags typed on the form, and ticks existing ones', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      await env.rt.services.tags.create(merchant.key, { name: 'Events', kind: 'link' });
      const form = await acct.agent.get('/app/links/new?type=amount').expect(200);
      expect(form.text).to.include('name="tags" value="Events"');
      const link = await createLink(acct, { name: 'Tagged', amount: '5', tags: ['Events'], new_tags: 'Summer 2025, VIP , events' });
      expect(link.tags.map((t) => t.name).sort()).to.deep.equal(['Events', 'Summer 2025', 'VIP']);
    });

    it('keeps what was typed, escaped, when the form comes back', async () => {
      const acct = await signUp(env.app);
      const res = await postLink(acct, { name: '<script>alert(1)</script>', amount: 'x' }).expect(422);
      expect(res.text).not.to.include('<script>alert(1)</script>');
      expect(res.text).to.include('&lt;script&gt;alert(1)&lt;/script&gt;');
    });

    it('refuses a form without the CSRF token', async () => {
      const acct = await signUp(env.app);
      await postLink(acct, { _csrf: undefined, name: 'Forged', amount: '5' }).expect(403);
      expect(await count('links', await merchantOf(acct))).to.equal(0);
    });
  });

  describe('editing', () => {
    it('saves changes to path, amount, description, notes, tags, redirect, limit and active', async () => {
      const acct = await signUp(env.app);
      const link = await createLink(acct, { name: 'Edit me', amount: '5', tags: [], new_tags: 'Old' });
      const form = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
      expect(form.text).to.include('value="5.00"');
      expect(form.text).to.include('Amount link');
      expect(form.text).not.to.include('name="type"');
      const res = await acct.agent
        .post(`/app/links/${link.id}`)
        .type('form')
        .send(editFields(acct, link, { name: 'Edited', path: 'new-path', amount: '20', description: 'Now public', internal_notes: 'secret', tags: [], new_tags: 'New', redirect_url: 'http://example.com/done', limit: 'once', active: undefined }))
        .expect(303);
      expect(res.headers.location).to.equal(`/app/links/${link.id}`);
      const saved = await env.rt.services.links.get(await merchantOf(acct), link.id);
      expect(saved).to.include({ name: 'Edited', path: 'new-path', amount: 2000, description: 'Now public', internalNotes: 'secret', redirectUrl: 'http://example.com/done', paymentLimit: 1, active: false, inactiveReason: 'manual' });
      expect(saved.tags.map((t) => t.name)).to.deep.equal(['New']);
    });

    it('never changes the type', async () => {
      const acct = await signUp(env.app);
      const link = await createLink(acct, { name: 'Fixed type', amount: '5' });
      const res = await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, link, { type: 'product', name: 'Changed' })).expect(422);
      expect(res.text).to.include('cannot change');
      const after = await env.rt.services.links.get(await merchantOf(acct), link.id);
      expect(after).to.include({ type: 'amount', name: 'Fixed type' });
    });

    it('has no amount to edit on a product link, and keeps its product', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const product = await env.rt.services.products.create(merchant.key, { name: 'Mug', price: 900, currency: 'EUR' });
      const other = await env.rt.services.products.create(merchant.key, { name: 'Cup', price: 100, currency: 'EUR' });
      const link = await createLink(acct, { type: 'product', name: 'Mugs', product_id: product.id });
      const form = await acct.agent.get(`/app/links/${link.id}/edit`).expect(200);
      expect(form.text).not.to.include('id="f-amount"');
      expect(form.text).not.to.include('name="product_id"');
      expect(form.text).to.include('Mug');
      const withAmount = await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, link, { amount: '1.00', name: 'Cheap mugs' })).expect(422);
      expect(withAmount.text).to.include('takes its price from the product');
      await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, link, { product_id: other.id })).expect(422);
      const after = await env.rt.services.links.get(merchant, link.id);
      expect(after).to.include({ name: 'Mugs', productId: product.id, amount: null });
    });

    it('refuses bad edits with 422 by the field and changes nothing', async () => {
      const acct = await signUp(env.app);
      const link = await createLink(acct, { name: 'Stable', amount: '5', path: 'stable' });
      await createLink(acct, { name: 'Other', amount: '5', path: 'other' });
      const cases: [string, Record<string, unknown>][] = [
        ['path', { path: 'other' }],
        ['path', { path: '2024-sale' }],
        ['path', { path: '' }],
        ['path', { path: 'has space' }],
        ['amount', { amount: '5.555' }],
        ['redirect_url', { redirect_url: 'javascript:alert(1)' }],
        ['payment_limit', { limit: 'multiple', limit_count: '1001' }],
        ['name', { name: '' }],
      ];
      for (const [field, change] of cases) {
        const res = await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, link, { description: 'changed', ...change })).expect(422);
        expect(fieldError(res.text, field), JSON.stringify(change)).not.to.equal('');
      }
      const after = await env.rt.services.links.get(await merchantOf(acct), link.id);
      expect(after).to.deep.equal(link);
    });

    it('reopens a link closed by its limit when the limit is raised; the list shows the red badge before', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const link = await createLink(acct, { name: 'Sold out', amount: '5', limit: 'multiple', limit_count: '3' });
      // Three paid payments closed it (as the checkout's slot claim does).
      await env.rt.db('links').where({ public_id: link.id }).update({ paid_count: 3, active: false, inactive_reason: 'limit_reached' });
      const closed = await env.rt.services.links.get(merchant, link.id);
      const list = await acct.agent.get('/app/links').expect(200);
      expect(list.text).to.match(/<span class="badge badge-green">Limit reached<\/span>/);
      expect(list.text).to.include('3 / 3');
      const filtered = await acct.agent.get('/app/links?status=limit_reached').set('HX-Request', 'true').expect(200);
      expect(filtered.text).to.include(link.id);
      expect((await acct.agent.get(`/app/links/${link.id}`).expect(200)).text).to.include('Raise the limit');
      // Lower than the payments made: refused.
      const lower = await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, closed, { limit: 'multiple', limit_count: '2' })).expect(422);
      expect(fieldError(lower.text, 'payment_limit')).not.to.equal('');
      // Ticking "active" while still at the limit: refused, by the checkbox.
      const tick = await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, closed, { active: 'on' })).expect(422);
      expect(fieldError(tick.text, 'active')).not.to.equal('');
      // Raised: open again.
      await acct.agent.post(`/app/links/${link.id}`).type('form').send(editFields(acct, closed, { limit: 'multiple', limit_count: '10' })).expect(303);
      const open = await env.rt.services.links.get(merchant, link.id);
      expect(open).to.include({ active: true, inactiveReason: null, paymentLimit: 10, paidCount: 3 });
      const after = await acct.agent.get('/app/links').expect(200);
      expect(after.text).not.to.include('badge-red');
      expect(after.text).to.include('3 / 10');
    });
  });

  describe('actions', () => {
    it('duplicates a link with a fresh path and no history', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const link = await createLink(acct, { name: 'Original', amount: '9.99', new_tags: 'Promo', limit: 'multiple', limit_count: '5', redirect_url: 'https://example.com/' });
      await env.rt.db('links').where({ public_id: link.id }).update({ paid_count: 2, views_count: 40, payments_count: 2, revenue: 1998 });
      const res = await acct.agent.post(`/app/links/${link.id}/duplicate`).type('form').send({ _csrf: acct.csrf }).expect(303);
      const copyId = LINK_ID.exec(res.headers.location)![1];
      expect(res.headers.location).to.equal(`/app/links/${copyId}/edit`);
      const copy = await env.rt.services.links.get(merchant, copyId);
      expect(copy).to.include({ name: 'Original', path: 'original-2', amount: 999, paymentLimit: 5, redirectUrl: 'https://example.com/', paidCount: 0, views: 0, payments: 0, revenue: 0, active: true });
      expect(copy.tags.map((t) => t.name)).to.deep.equal(['Promo']);
      expect(copy.id).not.to.equal(link.id);
    });

    it('explains why a product link whose product is inactive cannot be copied', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const product = await env.rt.services.products.create(merchant.key, { name: 'Retired', price: 500, currency: 'EUR' });
      const link = await createLink(acct, { type: 'product', name: 'Retired product', product_id: product.id });
      await env.rt.services.products.update(merchant.key, product.id, { active: false });
      const res = await acct.agent.post(`/app/links/${link.id}/duplicate`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect(res.headers.location).to.equal(`/app/links/${link.id}`);
      const page = await acct.agent.get(res.headers.location).expect(200);
      expect(page.text).to.include('No copy was made');
      expect(await count('links', merchant)).to.equal(1);
    });

    it('deactivates and activates from a plain form, back to where the merchant was', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const link = await createLink(acct, { name: 'Tog gle', amount: '5' });
      const list = await acct.agent.get('/app/links?q=Tog%20gle&status=active').expect(200);
      const back = /name="back" value="([^"]+)"/.exec(list.text)![1].replace(/&amp;/g, '&');
      expect(back).to.equal('/app/links?q=Tog%20gle&status=active');
      const off = await acct.agent.post(`/app/links/${link.id}/deactivate`).type('form').send({ _csrf: acct.csrf, back }).expect(303);
      expect(off.headers.location).to.equal(back);
      expect(await env.rt.services.links.get(merchant, link.id)).to.include({ active: false, inactiveReason: 'manual' });
      const on = await acct.agent.post(`/app/links/${link.id}/activate`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect(on.headers.location).to.equal(`/app/links/${link.id}`);
      expect((await env.rt.services.links.get(merchant, link.id)).active).to.equal(true);
      // Never back to somewhere outside the dashboard.
      const away = await acct.agent.post(`/app/links/${link.id}/deactivate`).type('form').send({ _csrf: acct.csrf, back: 'https://evil.example/' }).expect(303);
      expect(away.headers.location).to.equal('/app');
    });

    it('answers an htmx row action with the updated row and the message', async () => {
      const acct = await signUp(env.app);
      const link = await createLink(acct, { name: 'Row', amount: '5' });
      const res = await acct.agent
        .post(`/app/links/${link.id}/deactivate`)
        .set('HX-Request', 'true')
        .set('HX-Target', `link-row-${link.id}`)
        .set('X-CSRF-Token', acct.csrf)
        .type('form')
        .send({ back: '/app/links' })
        .expect(200);
      expect(res.text).not.to.match(/<html/i);
      expect(res.text).to.match(new RegExp(`^<tr id="link-row-${link.id}"`, 'm'));
      expect(res.text).to.include('>Inactive</span>');
      expect(res.text).to.include('hx-swap-oob="true"');
      expect(res.text).to.include('deactivated');
      expect(res.text).to.include(`/app/links/${link.id}/activate`);
    });

    it('refuses to activate a link at its limit, saying how to reopen it', async () => {
      const acct = await signUp(env.app);
      const link = await createLink(acct, { name: 'Full', amount: '5', limit: 'once' });
      await env.rt.db('links').where({ public_id: link.id }).update({ paid_count: 1, active: false, inactive_reason: 'limit_reached' });
      const res = await acct.agent.post(`/app/links/${link.id}/activate`).set('HX-Request', 'true').set('HX-Target', `link-row-${link.id}`).set('X-CSRF-Token', acct.csrf).type('form').send({}).expect(422);
      expect(res.text).to.include('Limit reached');
      expect(res.text).to.include('Raise the limit');
    });

    it('deletes after a confirmation page; the URL then answers 404 and the path is free again', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const link = await createLink(acct, { name: 'Doomed', amount: '5', path: 'doomed' });
      const confirm = await acct.agent.get(`/app/links/${link.id}/delete`).expect(200);
      expect(confirm.text).to.include(`action="/app/links/${link.id}/delete"`);
      expect(confirm.text).to.include(`http://pay.test/${acct.handle}/doomed`);
      const res = await acct.agent.post(`/app/links/${link.id}/delete`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect(res.headers.location).to.equal('/app/links');
      const list = await acct.agent.get('/app/links').expect(200);
      expect(list.text).not.to.include(link.id);
      expect(list.text).to.include('deleted');
      await acct.agent.get(`/app/links/${link.id}`).expect(404);
      await acct.agent.get(`/app/links/${link.id}/edit`).expect(404);
      await supertest(env.app).get(`/${acct.handle}/doomed`).expect(404);
      // The row stays for reports; the path is free.
      expect(await count('links', merchant)).to.equal(1);
      expect((await createLink(acct, { name: 'Reborn', amount: '5', path: 'doomed' })).path).to.equal('doomed');
    });

    it('answers 404 for another merchant’s link on every route', async () => {
      const owner = await signUp(env.app);
      const link = await createLink(owner, { name: 'Private', amount: '5' });
      const intruder = await signUp(env.app);
      for (const path of ['', '/edit', '/delete']) await intruder.agent.get(`/app/links/${link.id}${path}`).expect(404);
      for (const path of ['', '/duplicate', '/activate', '/deactivate', '/delete']) {
        await intruder.agent.post(`/app/links/${link.id}${path}`).type('form').send({ ...editFields(intruder, link), name: 'Hijacked' }).expect(404);
      }
      const after = await env.rt.services.links.get(await merchantOf(owner), link.id);
      expect(after).to.deep.equal(link);
      expect(await count('links', await merchantOf(intruder))).to.equal(0);
      // Unknown ids too; and logged-out visitors go to the login page.
      await intruder.agent.get('/app/links/lnk_nope').expect(404);
      const anon = await supertest(env.app).get(`/app/links/${link.id}`).expect(303);
      expect(anon.headers.location).to.match(/^\/login\?next=/);
    });
  });

  describe('the list', () => {
    let acct: Account;
    let merchant: Merchant;
    before(async () => {
      acct = await signUp(env.app);
      merchant = await merchantOf(acct);
      // 30 links over 30 days; a few tagged, some inactive.
      env.clock.set('2026-01-01T12:00:00Z');
      for (let i = 1; i <= 30; i++) {
        const tags = i % 10 === 0 ? ['Summer', 'VIP'] : i % 5 === 0 ? ['Summer'] : i % 7 === 0 ? ['VIP'] : [];
        await env.rt.services.links.create(merchant, { type: 'amount', name: `Item ${String(i).padStart(2, '0')}`, amount: i * 100, currency: 'EUR', tags, active: i % 3 !== 0 });
        env.clock.advance(86_400_000);
      }
      await env.rt.services.links.create(merchant, { type: 'amount', name: 'Café special', amount: 4200, currency: 'EUR' });
      env.clock.set('2026-03-02T09:00:00Z');
    });

    const names = (html: string) => [...html.matchAll(/<td data-label="Name" class="link-name cell-title">\s*<a href="[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);

    it('shows an empty state that tells a new merchant to create a link', async () => {
      const fresh = await signUp(env.app);
      const res = await fresh.agent.get('/app/links').expect(200);
      expect(res.text).to.include('Create your first payment link');
      expect(res.text).to.include('href="/app/links/new"');
      const home = await fresh.agent.get('/app').expect(200);
      expect(home.text).to.match(/<a href="\/app\/links\/new">Create your first payment link<\/a>/);
      const dash = await acct.agent.get('/app').expect(200);
      expect(dash.text).to.match(/<li class="done">.*Create your first payment link/);
    });

    it('shows each row: name, URL with a copy button, type, price, status, payments vs limit, created date, menu', async () => {
      const res = await acct.agent.get('/app/links').expect(200);
      expect(res.text).to.match(/<html/i);
      expect(res.headers.vary).to.match(/HX-Request/i);
      expect(res.text).to.include('of 31 links');
      const row = /<tr id="link-row-[^"]+">[\s\S]*?<\/tr>/.exec(res.text.slice(res.text.indexOf('Café special') - 400))![0];
      expect(row).to.include('Café special');
      expect(row).to.include(`http://pay.test/${acct.handle}/cafe-special`);
      expect(row).to.include(`data-copy="http://pay.test/${acct.handle}/cafe-special"`);
      expect(row).to.include('Amount');
      expect(row).to.include('€42.00');
      expect(row).to.include('badge-green">Active');
      expect(row).to.include('0 / ∞');
      expect(row).to.include('31 Jan 2026');
      expect(row).to.include('<details class="menu">');
      for (const action of ['/edit', '/duplicate', '/deactivate', '/delete']) expect(row).to.include(action);
    });

    it('searches by name live: an htmx request gets only the results', async () => {
      const res = await acct.agent.get('/app/links?q=item%202').set('HX-Request', 'true').expect(200);
      expect(res.text).not.to.match(/<html|<nav class="sidenav"/i);
      expect(res.text).to.match(/^<div id="link-results"/m);
      expect(res.headers.vary).to.match(/HX-Request/i);
      expect(names(res.text).sort()).to.deep.equal(['Item 20', 'Item 21', 'Item 22', 'Item 23', 'Item 24', 'Item 25', 'Item 26', 'Item 27', 'Item 28', 'Item 29']);
      // A boosted navigation to the same URL gets the whole page.
      const full = await acct.agent.get('/app/links?q=item%202').set('HX-Request', 'true').set('HX-Boosted', 'true').expect(200);
      expect(full.text).to.match(/<html/i);
      expect(full.text).to.include('value="item 2"');
      // Wildcards are literal.
      const pct = await acct.agent.get('/app/links?q=%25').set('HX-Request', 'true').expect(200);
      expect(names(pct.text)).to.deep.equal([]);
      expect(pct.text).to.include('No links match');
      const accent = await acct.agent.get('/app/links?q=caf%C3%A9').set('HX-Request', 'true').expect(200);
      expect(names(accent.text)).to.deep.equal(['Café special']);
    });

    it('filters by status, by one or more tags and by created date', async () => {
      const inactive = await acct.agent.get('/app/links?status=inactive').set('HX-Request', 'true').expect(200);
      expect(names(inactive.text)).to.have.length(10);
      const active = await acct.agent.get('/app/links?status=active').expect(200);
      expect(active.text).to.include('of 21 links');
      const summer = await acct.agent.get('/app/links?tag=Summer').set('HX-Request', 'true').expect(200);
      expect(names(summer.text).sort()).to.deep.equal(['Item 05', 'Item 10', 'Item 15', 'Item 20', 'Item 25', 'Item 30']);
      const either = await acct.agent.get('/app/links?tag=summer&tag=VIP').set('HX-Request', 'true').expect(200);
      expect(names(either.text).sort()).to.deep.equal(['Item 05', 'Item 07', 'Item 10', 'Item 14', 'Item 15', 'Item 20', 'Item 21', 'Item 25', 'Item 28', 'Item 30']);
      // Item 01 was created on 1 January, Item 05 on the 5th (noon UTC).
      const range = await acct.agent.get('/app/links?from=2026-01-03&to=2026-01-05').set('HX-Request', 'true').expect(200);
      expect(names(range.text).sort()).to.deep.equal(['Item 03', 'Item 04', 'Item 05']);
      const combined = await acct.agent.get('/app/links?from=2026-01-01&to=2026-01-31&tag=Summer&status=active').set('HX-Request', 'true').expect(200);
      expect(names(combined.text).sort()).to.deep.equal(['Item 05', 'Item 10', 'Item 20', 'Item 25']);
      // Sorting and paging nonsense falls back to the defaults; a filter that cannot be understood is
      // named by its field (422) and left out of the list — never a 500.
      await acct.agent.get('/app/links?sort=evil&dir=up&page=-4').expect(200);
      const bad = await acct.agent.get('/app/links?status=bogus&from=yesterday').expect(422);
      expect(fieldError(bad.text, 'status')).to.include('no status “bogus” for smart links');
      expect(fieldError(bad.text, 'from')).to.include('must be a date');
      expect(bad.text).to.include('of 31 links');
    });

    it('uses the merchant’s time zone for the date range', async () => {
      const tz = await signUp(env.app);
      const m = await merchantOf(tz);
      await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'Pacific/Auckland', brand_color: '#4f46e5' });
      env.clock.set('2026-01-10T20:00:00Z'); // 11 January, 09:00 in Auckland
      await env.rt.services.links.create(m, { type: 'amount', name: 'Kiwi', amount: 100 });
      env.clock.set('2026-03-02T09:00:00Z');
      const on11 = await tz.agent.get('/app/links?from=2026-01-11&to=2026-01-11').set('HX-Request', 'true').expect(200);
      expect(names(on11.text)).to.deep.equal(['Kiwi']);
      const on10 = await tz.agent.get('/app/links?from=2026-01-10&to=2026-01-10').set('HX-Request', 'true').expect(200);
      expect(names(on10.text)).to.deep.equal([]);
    });

    it('sorts by name, price, payments and created date, either way', async () => {
      const byName = await acct.agent.get('/app/links?sort=name&dir=asc').set('HX-Request', 'true').expect(200);
      expect(names(byName.text).slice(0, 3)).to.deep.equal(['Café special', 'Item 01', 'Item 02']);
      const byPrice = await acct.agent.get('/app/links?sort=price&dir=desc').set('HX-Request', 'true').expect(200);
      expect(names(byPrice.text).slice(0, 2)).to.deep.equal(['Café special', 'Item 30']);
      const cheapest = await acct.agent.get('/app/links?sort=price&dir=asc').set('HX-Request', 'true').expect(200);
      expect(names(cheapest.text)[0]).to.equal('Item 01');
      const newest = await acct.agent.get('/app/links').set('HX-Request', 'true').expect(200);
      expect(names(newest.text).slice(0, 2)).to.deep.equal(['Café special', 'Item 30']);
      const oldest = await acct.agent.get('/app/links?sort=created&dir=asc').set('HX-Request', 'true').expect(200);
      expect(names(oldest.text)[0]).to.equal('Item 01');
      const item12 = (await env.rt.services.links.search(merchant, { q: 'Item 12' })).items[0];
      await env.rt.db('links').where({ id: item12.key }).update({ payments_count: 99 });
      const byPayments = await acct.agent.get('/app/links?sort=payments&dir=desc').set('HX-Request', 'true').expect(200);
      expect(names(byPayments.text)[0]).to.equal('Item 12');
      // The column headers link to the other direction and say which is on.
      expect(byName.text).to.match(/aria-sort="ascending"><a class="sort sort-on sort-asc" href="\/app\/links\?sort=name&amp;dir=desc"/);
    });

    it('pages through the results with numbered pages, keeping the filters', async () => {
      const first = await acct.agent.get('/app/links').expect(200);
      expect(names(first.text)).to.have.length(25);
      expect(first.text).to.include('href="/app/links?page=2"');
      expect(first.text).to.match(/aria-current="page"><span class="sr-only">Page <\/span>1</);
      const second = await acct.agent.get('/app/links?page=2').set('HX-Request', 'true').expect(200);
      expect(names(second.text)).to.have.length(6);
      expect(second.text).to.include('Showing 26–31 of 31 links');
      const beyond = await acct.agent.get('/app/links?page=99').set('HX-Request', 'true').expect(200);
      expect(names(beyond.text)).to.have.length(6);
      const filtered = await acct.agent.get('/app/links?q=Item&sort=name&dir=asc').expect(200);
      expect(filtered.text).to.include('of 30 links');
      expect(filtered.text).to.include('href="/app/links?q=Item&amp;sort=name&amp;dir=asc&amp;page=2"');
      const last = await acct.agent.get('/app/links?q=Item&sort=name&dir=asc&page=2').set('HX-Request', 'true').expect(200);
      expect(names(last.text)).to.deep.equal(['Item 26', 'Item 27', 'Item 28', 'Item 29', 'Item 30']);
    });
  });

  describe('10,000 links', () => {
    let acct: Account;
    let merchant: Merchant;
    const apiKeys: number[] = [];
    before(async function () {
      this.timeout(120_000);
      acct = await signUp(env.app);
      merchant = await merchantOf(acct);
      const tag = await env.rt.services.tags.create(merchant.key, { name: 'Hundreds', kind: 'link' });
      // Two API keys made one link in ten between them; the rest came from the dashboard.
      for (const name of ['Backend', 'Invoicing']) {
        const { apiKey } = await env.rt.services.apiKeys.create(merchant, { name });
        apiKeys.push(Number((await env.rt.db('api_keys').where({ public_id: apiKey.id }).first('id')).id));
      }
      const start = Date.parse('2025-01-01T00:00:00Z');
      const rows = Array.from({ length: 10_000 }, (_, i) => {
        const n = String(i + 1).padStart(5, '0');
        const at = new Date(start + i * 60_000);
        const api = i % 10 === 5;
        return { public_id: `lnk_seed${n}${acct.handle.replace(/[^a-z0-9]/g, '')}`.slice(0, 40), merchant_id: merchant.key, kind: 'smart', type: 'amount', name: `Seed ${n}`, path: `seed-${n}`, amount: 100 + i, currency: 'EUR', active: i % 4 !== 0, inactive_reason: i % 4 === 0 ? 'manual' : null, source: api ? 'api' : 'dashboard', api_key_id: api ? apiKeys[i % 20 === 5 ? 0 : 1] : null, created_at: at, updated_at: at };
      });
      await env.rt.db.batchInsert('links', rows, 500);
      const keys = (await env.rt.db('links').where({ merchant_id: merchant.key }).whereIn('path', ['seed-00100', 'seed-05000', 'seed-09900']).select('id')) as { id: number }[];
      await env.rt.db('link_tags').insert(keys.map((k) => ({ link_id: k.id, tag_id: tag.key })));
      // And 40 payment requests from every source, a few cancelled.
      env.clock.set('2026-03-01T12:00:00Z');
      const sources = ['api', 'dashboard', 'text_to_pay', 'import'] as const;
      for (let i = 0; i < 40; i++) {
        const source = sources[i % 4];
        const r = await env.rt.services.requests.create(merchant, { amount: 500 + i, currency: 'EUR', description: `Request ${i}`, customer: { name: 'Cy', email: 'cy@example.test' } }, { source, apiKeyKey: source === 'api' ? apiKeys[i % 8 === 0 ? 0 : 1] : null });
        if (i % 5 === 0) await env.rt.services.requests.cancel(merchant, r.id);
      }
      env.clock.set('2026-03-02T09:00:00Z');
    });

    const names = (html: string) => [...html.matchAll(/<td data-label="Name" class="link-name cell-title">\s*<a href="[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);

    it('renders the first and a late page with the right counts', async () => {
      const first = await acct.agent.get('/app/links').expect(200);
      expect(first.text).to.include('Showing 1–25 of 10,000 links');
      expect(names(first.text)[0]).to.equal('Seed 10000');
      expect(first.text).to.include('href="/app/links?page=400"');
      const late = await acct.agent.get('/app/links?page=399').set('HX-Request', 'true').expect(200);
      expect(late.text).to.include('Showing 9,951–9,975 of 10,000 links');
      expect(names(late.text)).to.have.length(25);
      const last = await acct.agent.get('/app/links?page=400&sort=name&dir=desc').set('HX-Request', 'true').expect(200);
      expect(names(last.text).at(-1)).to.equal('Seed 00001');
      const active = await acct.agent.get('/app/links?status=active&page=300').set('HX-Request', 'true').expect(200);
      expect(active.text).to.include('of 7,500 links');
      expect(names(active.text)).to.have.length(25);
      const search = await acct.agent.get('/app/links?q=Seed%200999').set('HX-Request', 'true').expect(200);
      expect(search.text).to.include('of 10 links');
      const tagged = await acct.agent.get('/app/links?tag=Hundreds').set('HX-Request', 'true').expect(200);
      expect(names(tagged.text)).to.deep.equal(['Seed 09900', 'Seed 05000', 'Seed 00100']);
    });

    it('searches with queries that use the indexes', async () => {
      const db = env.rt.db;
      const seen: { sql: string; bindings: unknown[] }[] = [];
      const listen = (q: { sql: string; bindings: unknown[] }) => seen.push(q);
      db.on('query', listen);
      try {
        // (A status filter reads the rows: with one merchant owning the whole table, MariaDB rightly
        // prefers a table scan for it, so it is left out here.)
        for (const s of [{}, { page: 380 }, { sort: 'name' as const, dir: 'asc' as const, page: 200 }, { sort: 'name' as const, dir: 'desc' as const, page: 400 }, { q: 'Seed 5' }, { tags: ['Hundreds'] }]) {
          const r = await env.rt.services.links.search(merchant, { ...s, kind: 'smart', perPage: 25 });
          expect(r.pages).to.equal(Math.max(1, Math.ceil(r.total / 25)));
        }
        // The Links page's tabs and its source, API key, request status and date filters.
        const from = new Date('2025-01-02T00:00:00Z');
        const to = new Date('2025-01-02T23:59:59.999Z');
        const cases: [Parameters<typeof env.rt.services.links.search>[1], number][] = [
          [{ kind: 'request' }, 40],
          [{}, 10_040],
          [{ page: 300 }, 10_040],
          [{ kind: 'smart', source: 'api' }, 1000],
          [{ kind: 'smart', source: 'dashboard', page: 200 }, 9000],
          [{ source: 'api', sort: 'name', dir: 'asc', page: 20 }, 1010],
          [{ kind: 'smart', apiKeyKey: apiKeys[0] }, 500],
          [{ apiKeyKey: apiKeys[1], page: 10 }, 505],
          [{ kind: 'request', source: 'import' }, 10],
          [{ kind: 'request', status: 'pending' }, 32],
          [{ status: 'cancelled' }, 8],
          [{ kind: 'request', status: 'paid', source: 'api' }, 0],
          [{ kind: 'smart', createdFrom: from, createdTo: to }, 1440],
          [{ createdFrom: from, createdTo: to, source: 'api' }, 144],
        ];
        for (const [s, total] of cases) {
          const r = await env.rt.services.links.search(merchant, { ...s, perPage: 25 });
          expect(r.total, JSON.stringify(s)).to.equal(total);
          expect(r.items.length, JSON.stringify(s)).to.equal(Math.min(25, Math.max(0, total - (r.page - 1) * 25)));
        }
        expect((await env.rt.services.links.apiKeysUsed(merchant.key)).sort((a, b) => a - b)).to.deep.equal([...apiKeys].sort((a, b) => a - b));
      } finally {
        db.removeListener('query', listen);
      }
      const onLinks = seen.filter((q) => /from [`"]links[`"]/i.test(q.sql));
      expect(onLinks.length).to.be.greaterThan(5);
      for (const q of onLinks) {
        if (target.mysqlUrl) {
          const [plan] = (await db.raw(`EXPLAIN ${q.sql}`, q.bindings as never)) as [{ table: string; type: string; key: string | null; Extra: string }[]];
          const links = plan.filter((p) => p.table === 'l' || p.table === 'links');
          expect(links.every((p) => p.type !== 'ALL' && p.key), `${q.sql}\n${JSON.stringify(plan)}`).to.equal(true);
        } else {
          const plan = (await db.raw(`EXPLAIN QUERY PLAN ${q.sql}`, q.bindings as never)) as { detail: string }[];
          const scans = plan.map((p) => p.detail).filter((d) => /^SCAN (l|links)\b/.test(d) && !/USING (COVERING )?INDEX/.test(d));
          expect(scans, `${q.sql}\n${plan.map((p) => p.detail).join('\n')}`).to.deep.equal([]);
        }
      }
    });
  });

  describe('tags from the link form', () => {
    it('creates a tag inline (htmx) and answers the picker with it ticked, keeping other ticks', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      await env.rt.services.tags.create(merchant.key, { name: 'Existing', kind: 'link' });
      await env.rt.services.tags.create(merchant.key, { name: 'Unticked', kind: 'link' });
      const res = await acct.agent.post('/app/tags/picker').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ tags: 'Existing', new_tags: 'Black Friday' }).expect(200);
      expect(res.text).not.to.match(/<html/i);
      expect(res.text).to.match(/^<fieldset id="tag-choices"/m);
      expect(res.text).to.include('value="Black Friday" checked');
      expect(res.text).to.include('value="Existing" checked');
      expect(res.text).to.include('value="Unticked">');
      const tags = await env.rt.services.tags.list(merchant.key, 'link');
      expect(tags.map((t) => t.name)).to.deep.equal(['Black Friday', 'Existing', 'Unticked']);
      expect(tags.find((t) => t.name === 'Black Friday')!.color).to.match(/^#[0-9a-f]{6}$/);
      // An existing name (any case) is ticked, not created twice.
      const again = await acct.agent.post('/app/tags/picker').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ new_tags: 'black friday' }).expect(200);
      expect(again.text).to.include('value="Black Friday" checked');
      expect(await env.rt.services.tags.list(merchant.key, 'link')).to.have.length(3);
    });

    it('refuses an empty or over-long tag name by the field', async () => {
      const acct = await signUp(env.app);
      const empty = await acct.agent.post('/app/tags/picker').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ new_tags: '  ' }).expect(422);
      expect(fieldError(empty.text, 'tags')).not.to.equal('');
      const long = await acct.agent.post('/app/tags/picker').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ new_tags: 'x'.repeat(61) }).expect(422);
      expect(fieldError(long.text, 'tags')).not.to.equal('');
      expect(await env.rt.services.tags.list((await merchantOf(acct)).key)).to.have.length(0);
      await acct.agent.post('/app/tags/picker').type('form').send({ new_tags: 'No token' }).expect(403);
    });
  });
});

// The same pages in Chromium: htmx swaps (live search, row actions, "Add tag"), the copy button, and
// the whole flow again without JavaScript. How the pages look is covered by e2e/looks.test.ts.
describe('dashboard: links in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;
  let handle: string;

  before(async function () {
    this.timeout(30_000);
    let m: Merchant;
    ({ env, storageState, handle, merchant: m } = await servedMerchant(browser(), { name: 'Harbour Bikes', handlePrefix: 'browse' }));
    await env.rt.services.tags.create(m.key, { name: 'Rentals', color: '#10b981', kind: 'link' });
    for (const name of ['Coffee ride', 'Coastal tour', 'Bike rental day', 'Bike rental week']) {
      await env.rt.services.links.create(m, { type: 'amount', name, amount: 2500, tags: name.startsWith('Bike') ? ['Rentals'] : [] });
    }
  });
  after(() => env?.close());

  const names = (page: Page) => page.locator('#link-results td.link-name > a').allTextContents();

  it('searches as the merchant types, keeping the address bar in step', async () => {
    const tab = await browser().newPage({ storageState });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      await page.evaluate('window.__stay = true');
      await page.getByLabel('Search by name').fill('co');
      await page.waitForURL(`${env.origin}/app/links?q=co`);
      await page.locator('#link-results tr', { hasText: 'Bike rental day' }).waitFor({ state: 'detached' });
      expect((await names(page)).sort()).to.deep.equal(['Coastal tour', 'Coffee ride']);
      await page.getByLabel('Rentals').check();
      await page.waitForURL(/tag=Rentals/);
      await page.locator('#link-results', { hasText: 'No links match' }).waitFor();
      await page.getByLabel('Search by name').fill('');
      await page.waitForURL(`${env.origin}/app/links?tag=Rentals`);
      await page.locator('#link-results tr', { hasText: 'Bike rental day' }).waitFor();
      expect((await names(page)).sort()).to.deep.equal(['Bike rental day', 'Bike rental week']);
      // Swapped in place: the page was never reloaded and still has one heading.
      expect(await page.evaluate('window.__stay')).to.equal(true);
      expect(await page.locator('h1').count()).to.equal(1);
      await tab.screenshot('links-search-desktop');
      // A reload of the pushed address shows the same list.
      await page.reload();
      expect((await names(page)).sort()).to.deep.equal(['Bike rental day', 'Bike rental week']);
      expect(await page.getByLabel('Rentals').isChecked()).to.equal(true);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('deactivates from the row menu in place, and copies a URL', async () => {
    const tab = await browser().newPage({ storageState, viewport: PHONE, permissions: ['clipboard-read', 'clipboard-write'] });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      const row = page.locator('tr', { hasText: 'Coastal tour' });
      await row.getByText('Actions').click();
      await tab.screenshot('links-menu-phone');
      await row.getByRole('button', { name: 'Deactivate' }).click();
      await page.locator('tr', { hasText: 'Coastal tour' }).locator('.badge', { hasText: 'Inactive' }).waitFor();
      await page.locator('#flash', { hasText: 'deactivated' }).waitFor();
      const m = (await env.rt.services.merchants.getByHandle(handle))!;
      const link = (await env.rt.services.links.search(m, { q: 'Coastal' })).items[0];
      expect(link).to.include({ active: false });
      await page.locator('tr', { hasText: 'Coastal tour' }).getByRole('button', { name: /^Copy/ }).click();
      await page.locator('tr', { hasText: 'Coastal tour' }).getByRole('button', { name: 'Copied' }).waitFor();
      expect(await page.evaluate('navigator.clipboard.readText()')).to.equal(`${env.origin}/${handle}/coastal-tour`);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('adds a tag from the link form without leaving it, then creates the link', async () => {
    const tab = await browser().newPage({ storageState });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links/new`);
      await page.getByRole('link', { name: 'Create an amount link' }).click();
      await page.getByLabel('Name').fill('Sunset group ride');
      await page.getByLabel('Amount').fill('19.90');
      await page.getByLabel('New tag').fill('Pop-up');
      await page.getByRole('button', { name: 'Add tag' }).click();
      await page.getByLabel('Pop-up').waitFor();
      expect(await page.getByLabel('Pop-up').isChecked()).to.equal(true);
      expect(await page.getByLabel('Name').inputValue()).to.equal('Sunset group ride');
      expect(await page.getByLabel('New tag').inputValue()).to.equal('');
      tab.expectError({ status: 422, path: '/app/tags/picker' });
      await page.getByLabel('New tag').fill('');
      await page.getByRole('button', { name: 'Add tag' }).click();
      await page.locator('#f-tags-error', { hasText: /\w/ }).waitFor();
      await page.getByRole('button', { name: 'Create link' }).click();
      await page.getByRole('heading', { level: 1, name: /Sunset group ride/ }).waitFor();
      expect(await page.locator('.lead .tag-chip').allTextContents()).to.deep.equal(['Pop-up']);
      expect(await page.locator('#flash').textContent()).to.include('created');
      await page.locator('.qr img').evaluate((img) => (img as unknown as { decode(): Promise<void> }).decode());
      expect(await page.locator('.qr img').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).to.equal(200);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('works without JavaScript: filters, a new tag typed on the form, deactivate and delete', async () => {
    const tab = await browser().newPage({ storageState, javaScriptEnabled: false });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      expect(await page.getByRole('button', { name: /^Copy/ }).first().isVisible()).to.equal(false);
      await page.getByLabel('Search by name').fill('week');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForURL(/q=week/);
      expect(await names(page)).to.deep.equal(['Bike rental week']);

      await page.goto(`${env.origin}/app/links/new?type=amount`);
      expect(await page.getByRole('button', { name: 'Add tag' }).isVisible()).to.equal(false);
      await page.getByLabel('Name').fill('No-JS ride');
      await page.getByLabel('Amount').fill('5');
      await page.getByLabel('New tag').fill('Offline');
      await page.getByRole('button', { name: 'Create link' }).click();
      await page.getByRole('heading', { level: 1, name: /No-JS ride/ }).waitFor();
      expect(await page.locator('.lead .tag-chip').allTextContents()).to.deep.equal(['Offline']);

      await page.getByRole('button', { name: 'Deactivate' }).click();
      await page.locator('h1 .badge', { hasText: 'Inactive' }).waitFor();
      await page.getByRole('link', { name: 'Delete…' }).click();
      await page.getByRole('heading', { level: 1, name: /Delete “No-JS ride”/ }).waitFor();
      await page.getByRole('button', { name: 'Delete the link' }).click();
      await page.waitForURL(`${env.origin}/app/links`);
      expect(await page.locator('#flash').textContent()).to.include('deleted');
      expect(await names(page)).not.to.include('No-JS ride');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
