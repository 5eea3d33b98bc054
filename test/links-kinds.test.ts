/**
 * One Links page for smart links and payment requests (issue 13, item 5): the tabs (smart links by
 * default, so one-off requests do not crowd them; payment requests; all), each row's kind, source
 * (an API key by its name) and status, the source, status and created-date filters (dates in the
 * merchant's time zone), the tab kept by htmx, sorting and pages, bad filter values named by their
 * field (422, never a 500), another merchant's keys and links never showing, and the source the API
 * and the dashboard record on a link.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import type { Page } from 'playwright-core';
import { PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';
import { forEachTarget } from './support/targets.ts';
import { build, fieldError, signUp, uniqueHandle, useEnv, type Account } from './support/harness.ts';
import { apiClient, expectProblem } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { PaymentRequest } from '../src/features/requests/index.ts';

forEachTarget('dashboard: links and payment requests on one page', (target) => {
  const env = useEnv(target, { apiLimit: { points: 100_000, durationSec: 60 } });

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  /** The names in the list's rows, in order. */
  const names = (html: string) => [...html.matchAll(/<td data-label="Name" class="link-name cell-title">\s*<a href="[^"]+">([^<]+)<\/a>/g)].map((m) => m[1]);
  /** The row of the link called `name`. */
  const rowOf = (html: string, name: string) => {
    const at = html.indexOf(`>${name}</a>`);
    expect(at, `no row for ${name}`).to.be.greaterThan(-1);
    const start = html.lastIndexOf('<tr id="link-row-', at);
    return html.slice(start, html.indexOf('</tr>', at) + 5);
  };
  /** A row's kind and source, from their column ("Kind and source"). */
  const kindOf = (row: string) => /<td data-label="Kind and source"[^>]*><span class="cell-stack"><span>([^<]*)</.exec(row)![1];
  const sourceOf = (row: string) => /<span class="cell-sub cell-source">([^<]*)<\/span>/.exec(row)![1];
  const cell = (row: string, label: string) => new RegExp(`<td data-label="${label}"[^>]*>([\\s\\S]*?)</td>`).exec(row)![1].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  const list = (acct: Account, qs: string, status = 200) => acct.agent.get(`/app/links${qs}`).set('HX-Request', 'true').expect(status);

  let acct: Account;
  let merchant: Merchant;
  let backend: { id: string; secret: string };
  let invoicing: { id: string; secret: string };
  let unused: { id: string };
  let rivalKey: { id: string };
  let apiRequest: PaymentRequest;
  let paid: PaymentRequest;
  let cancelled: PaymentRequest;
  let expired: PaymentRequest;
  let texted: PaymentRequest;
  let apiLinkId: string;

  /** Pays a request through its public URL with the sandbox card. */
  const pay = async (url: string) => {
    const path = new URL(url).pathname;
    const start = await supertest(env.app).post(path).type('form').send({ name: 'Cy', email: 'cy@example.test' });
    expect(start.status, start.text.slice(0, 300)).to.equal(303);
    await supertest(env.app).post(new URL(start.headers.location, 'http://x').pathname).type('form').send({ card_number: '4242424242424242' }).expect(303);
  };
  const request = (m: Merchant, description: string, source: 'dashboard' | 'api' | 'text_to_pay' | 'import', extra: Record<string, unknown> = {}) =>
    env.rt.services.requests.create(m, { amount: 1200, currency: 'EUR', description, customer: { name: 'Cy', email: 'cy@example.test' }, ...extra }, { source });

  before(async () => {
    acct = await signUp(env.app);
    const m = await merchantOf(acct);
    // New York: UTC−4 in March 2026 (daylight saving began on the 8th).
    merchant = await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: 'EUR', timezone: 'America/New_York', brand_color: '#4f46e5' });
    const key = async (name: string) => {
      const made = await env.rt.services.apiKeys.create(merchant, { name });
      return { id: made.apiKey.id, secret: made.secret };
    };
    backend = await key('Shop backend');
    invoicing = await key('Invoicing');
    unused = await key('Never used');

    // 9 March, 23:30 in New York (10 March in UTC): a smart link made on the dashboard's form.
    env.clock.set('2026-03-10T03:30:00Z');
    await acct.agent.post('/app/links').type('form').send({ _csrf: acct.csrf, type: 'amount', name: 'Dashboard tote', amount: '25', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on' }).expect(303);
    // 10 March, 00:30: a smart link by the API with the "Shop backend" key.
    env.clock.set('2026-03-10T04:30:00Z');
    const made = await apiClient(env.app, backend.secret)('post', '/links', { type: 'amount', name: 'API mug', amount: 1500, currency: 'EUR' }).expect(201);
    apiLinkId = made.body.id;
    // 10 March, 23:59:59.999: a payment request by the API with the "Invoicing" key.
    env.clock.set('2026-03-11T03:59:59.999Z');
    const asked = await apiClient(env.app, invoicing.secret)('post', '/payment_requests', { amount: 7700, currency: 'EUR', description: 'Invoice 77', reference: 'INV-77', customer: { name: 'Ann', email: 'ann@example.test' } }).expect(201);
    apiRequest = await env.rt.services.requests.get(merchant.key, asked.body.id);
    // 11 March, 00:00: a request from the dashboard's form, then paid.
    env.clock.set('2026-03-11T04:00:00Z');
    const posted = await acct.agent
      .post('/app/requests')
      .type('form')
      .send({ _csrf: acct.csrf, amount: '45.50', currency: 'EUR', description: 'Phone order', reference: '', customer_name: 'Jane Doe', customer_email: 'jane@example.test', customer_phone: '', expires_days: '7', max_uses: '1' })
      .expect(303);
    paid = await env.rt.services.requests.get(merchant.key, /req_\w+/.exec(posted.headers.location)![0]);
    await pay(env.rt.services.requests.urlOf(paid));
    env.clock.set('2026-03-12T12:00:00Z');
    texted = await request(merchant, 'Texted', 'text_to_pay');
    cancelled = await request(merchant, 'Imported', 'import');
    await env.rt.services.requests.cancel(merchant, cancelled.id);
    expired = await request(merchant, 'Lapsed', 'dashboard', { expires_in: 3600 });
    env.clock.set('2026-03-13T12:00:00Z');

    // Another merchant with its own API key, smart link and request: none of it may show up here.
    const rival = await signUp(env.app);
    const rm = await merchantOf(rival);
    const theirs = await env.rt.services.apiKeys.create(rm, { name: 'Rival key' });
    rivalKey = { id: theirs.apiKey.id };
    await apiClient(env.app, theirs.secret)('post', '/links', { type: 'amount', name: 'Rival link', amount: 100, currency: 'EUR' }).expect(201);
    await apiClient(env.app, theirs.secret)('post', '/payment_requests', { amount: 100, currency: 'EUR', description: 'Rival request', customer: { name: 'Bo', email: 'bo@example.test' } }).expect(201);
  });

  describe('tabs', () => {
    it('shows smart links by default, with kind, source (the API key by name) and status; requests do not crowd it', async () => {
      const res = await acct.agent.get('/app/links').expect(200);
      expect(names(res.text)).to.deep.equal(['API mug', 'Dashboard tote']);
      expect(res.text).to.include('of 2 links');
      expect(res.text).to.match(/<a role="tab" id="links-tab-smart" href="\/app\/links" aria-controls="links-panel" aria-selected="true">Smart links<\/a>/);
      expect(res.text).to.include('href="/app/links?kind=request"').and.include('href="/app/links?kind=all"');
      const mug = rowOf(res.text, 'API mug');
      expect(kindOf(mug)).to.equal('Smart link');
      expect(cell(mug, 'Price')).to.equal('€15.00 Amount');
      expect(sourceOf(mug)).to.equal('API · Shop backend');
      expect(cell(mug, 'Status')).to.equal('Active');
      expect(mug).to.include(`href="/app/links/${apiLinkId}"`);
      expect(sourceOf(rowOf(res.text, 'Dashboard tote'))).to.equal('Dashboard');
      for (const other of ['Invoice 77', 'Phone order', 'Texted', 'Imported', 'Lapsed']) expect(res.text).not.to.include(other);
    });

    it('lists payment requests under their tab, each opening the request, with its source and status', async () => {
      const res = await acct.agent.get('/app/links?kind=request').expect(200);
      expect(names(res.text)).to.deep.equal(['Lapsed', 'Imported', 'Texted', 'Phone order', 'Invoice 77']);
      expect(res.text).to.include('of 5 payment requests');
      expect(res.text).to.include('aria-selected="true">Payment requests</a>');
      expect(res.text).to.include('<input type="hidden" name="kind" value="request">');
      expect(res.text).to.include('href="/app/requests/new"');
      const expect_ = (name: string, r: PaymentRequest, source: string, status: string) => {
        const row = rowOf(res.text, name);
        expect(row).to.include(`<a href="/app/requests/${r.id}">${name}</a>`);
        expect(kindOf(row)).to.equal('Payment request');
        expect(sourceOf(row), name).to.equal(source);
        expect(cell(row, 'Status'), name).to.equal(status);
        return row;
      };
      const invoice = expect_('Invoice 77', apiRequest, 'API · Invoicing', 'Pending');
      expect(invoice).to.include(`data-copy="${env.rt.services.requests.urlOf(apiRequest)}"`);
      expect(invoice).to.include(`href="/app/requests/${apiRequest.id}/cancel"`).and.not.include('/edit').and.not.include('/duplicate');
      expect(expect_('Phone order', paid, 'Dashboard', 'Paid')).not.to.include('/cancel');
      expect(expect_('Imported', cancelled, 'CSV import', 'Cancelled')).not.to.include('data-copy');
      expect_('Texted', texted, 'Text-to-Pay', 'Pending');
      expect_('Lapsed', expired, 'Dashboard', 'Expired');
      for (const smart of ['API mug', 'Dashboard tote']) expect(res.text).not.to.include(smart);
    });

    it('shows both kinds under All, newest first', async () => {
      const res = await acct.agent.get('/app/links?kind=all').expect(200);
      expect(names(res.text)).to.deep.equal(['Lapsed', 'Imported', 'Texted', 'Phone order', 'Invoice 77', 'API mug', 'Dashboard tote']);
      expect(res.text).to.include('of 7 links');
      expect(kindOf(rowOf(res.text, 'Invoice 77'))).to.equal('Payment request');
      expect(kindOf(rowOf(res.text, 'API mug'))).to.equal('Smart link');
      // Its status filter offers both kinds' statuses, in two groups.
      expect(res.text).to.match(/<optgroup label="Smart links">[\s\S]*?value="limit_reached"[\s\S]*?<\/optgroup>\s*<optgroup label="Payment requests">[\s\S]*?value="cancelled"/);
    });

    it('keeps the tab in htmx answers, the address bar, sorting links and pages', async () => {
      const res = await list(acct, '?kind=request&q=or');
      expect(res.text).not.to.match(/<html/i);
      expect(res.headers['hx-push-url']).to.equal('/app/links?kind=request&q=or');
      expect(names(res.text)).to.deep.equal(['Imported', 'Phone order']);
      expect(res.text).to.include('href="/app/links?kind=request&amp;q=or&amp;sort=name&amp;dir=asc"');
      // 26 more requests: two pages, the second keeping the tab.
      const busy = await signUp(env.app);
      const bm = await merchantOf(busy);
      for (let i = 1; i <= 26; i++) await request(bm, `Bulk ${String(i).padStart(2, '0')}`, 'import');
      await env.rt.services.links.create(bm, { type: 'amount', name: 'Only smart', amount: 100 });
      const first = await busy.agent.get('/app/links?kind=request').expect(200);
      expect(names(first.text)).to.have.length(25);
      expect(first.text).to.include('href="/app/links?kind=request&amp;page=2"');
      const second = await list(busy, '?kind=request&page=2');
      expect(names(second.text)).to.deep.equal(['Bulk 01']);
      expect(second.text).to.include('Showing 26–26 of 26 payment requests');
      expect(names((await busy.agent.get('/app/links').expect(200)).text)).to.deep.equal(['Only smart']);
    });
  });

  describe('filters', () => {
    it('filters by source: dashboard, the API, one API key by name, Text-to-Pay, CSV import', async () => {
      const page = await acct.agent.get('/app/links?kind=all').expect(200);
      // One choice per API key that made something: not the unused key, never another merchant's.
      expect(page.text).to.include(`<option value="${backend.id}">API key “Shop backend”</option>`);
      expect(page.text).to.include(`<option value="${invoicing.id}">API key “Invoicing”</option>`);
      expect(page.text).not.to.include(unused.id).and.not.include('Never used');
      expect(page.text).not.to.include(rivalKey.id).and.not.include('Rival');
      expect(names((await list(acct, '?kind=all&source=api')).text)).to.deep.equal(['Invoice 77', 'API mug']);
      expect(names((await list(acct, `?kind=all&source=${backend.id}`)).text)).to.deep.equal(['API mug']);
      expect(names((await list(acct, `?kind=all&source=${invoicing.id}`)).text)).to.deep.equal(['Invoice 77']);
      expect(names((await list(acct, `?kind=request&source=${backend.id}`)).text)).to.deep.equal([]);
      expect(names((await list(acct, '?kind=all&source=dashboard')).text)).to.deep.equal(['Lapsed', 'Phone order', 'Dashboard tote']);
      expect(names((await list(acct, '?source=dashboard')).text)).to.deep.equal(['Dashboard tote']);
      expect(names((await list(acct, '?kind=request&source=text_to_pay')).text)).to.deep.equal(['Texted']);
      expect(names((await list(acct, '?kind=request&source=import')).text)).to.deep.equal(['Imported']);
      const selected = await acct.agent.get(`/app/links?kind=all&source=${backend.id}`).expect(200);
      expect(selected.text).to.include(`<option value="${backend.id}" selected>API key “Shop backend”</option>`);
    });

    it('filters by status: a request’s on its tab, a smart link’s on its own, either on All', async () => {
      const on = async (qs: string) => names((await list(acct, qs)).text);
      expect(await on('?kind=request&status=pending')).to.deep.equal(['Texted', 'Invoice 77']);
      expect(await on('?kind=request&status=paid')).to.deep.equal(['Phone order']);
      expect(await on('?kind=request&status=cancelled')).to.deep.equal(['Imported']);
      expect(await on('?kind=request&status=expired')).to.deep.equal(['Lapsed']);
      expect(await on('?kind=all&status=paid')).to.deep.equal(['Phone order']);
      expect(await on('?kind=all&status=active')).to.deep.equal(['API mug', 'Dashboard tote']);
      await env.rt.services.links.update(merchant, apiLinkId, { active: false });
      try {
        expect(await on('?status=inactive')).to.deep.equal(['API mug']);
        expect(await on('?kind=all&status=inactive&source=api')).to.deep.equal(['API mug']);
      } finally {
        await env.rt.services.links.update(merchant, apiLinkId, { active: true });
      }
      // Combined with a source: the API's pending requests.
      expect(await on(`?kind=request&status=pending&source=${invoicing.id}`)).to.deep.equal(['Invoice 77']);
      expect(await on('?kind=request&status=pending&source=dashboard')).to.deep.equal([]);
    });

    it('takes the created dates as whole days in the merchant’s time zone, both ends included', async () => {
      const on = async (qs: string) => names((await list(acct, `?kind=all${qs}`)).text);
      // 23:30 on the 9th in New York is the 10th in UTC: it belongs to the 9th here.
      expect(await on('&from=2026-03-09&to=2026-03-09')).to.deep.equal(['Dashboard tote']);
      // The 10th runs from 00:00 (04:00 UTC) to 23:59:59.999 (03:59:59.999 UTC on the 11th).
      expect(await on('&from=2026-03-10&to=2026-03-10')).to.deep.equal(['Invoice 77', 'API mug']);
      expect(await on('&from=2026-03-11&to=2026-03-11')).to.deep.equal(['Phone order']);
      expect(await on('&from=2026-03-11')).to.deep.equal(['Lapsed', 'Imported', 'Texted', 'Phone order']);
      expect(await on('&to=2026-03-10')).to.deep.equal(['Invoice 77', 'API mug', 'Dashboard tote']);
      expect(await on('&from=2026-03-10&to=2026-03-11&source=dashboard')).to.deep.equal(['Phone order']);
    });

    it('names a filter it cannot use by its field (422) and lists without it, never a 500', async () => {
      const kind = await acct.agent.get('/app/links?kind=everything').expect(422);
      expect(kind.text).to.include('kind must be smart, request or all');
      expect(names(kind.text)).to.deep.equal(['API mug', 'Dashboard tote']);
      const source = await acct.agent.get('/app/links?kind=all&source=fax').expect(422);
      expect(fieldError(source.text, 'source')).to.include('Choose a source from the list');
      expect(names(source.text)).to.have.length(7);
      // Another merchant's API key is no source of these links, and shows nothing of theirs.
      const theirs = await acct.agent.get(`/app/links?kind=all&source=${rivalKey.id}`).expect(422);
      expect(fieldError(theirs.text, 'source')).to.include('None of your links was made with that API key');
      expect(theirs.text).not.to.include('Rival');
      const unknownKey = await acct.agent.get(`/app/links?kind=all&source=${unused.id}`).expect(422);
      expect(fieldError(unknownKey.text, 'source')).to.include('None of your links');
      const status = await acct.agent.get('/app/links?status=paid').expect(422);
      expect(fieldError(status.text, 'status')).to.include('no status “paid” for smart links');
      expect(names(status.text)).to.deep.equal(['API mug', 'Dashboard tote']);
      await acct.agent.get('/app/links?kind=request&status=limit_reached').expect(422);
      const date = await acct.agent.get('/app/links?kind=all&from=2026-02-30&to=tomorrow').expect(422);
      expect(fieldError(date.text, 'from')).to.equal('Created from must be a date such as 31/01/2026 (or 2026-01-31).');
      expect(fieldError(date.text, 'to')).to.equal('Created to must be a date such as 31/01/2026 (or 2026-01-31).');
      const backwards = await acct.agent.get('/app/links?kind=all&from=2026-03-11&to=2026-03-10').expect(422);
      expect(fieldError(backwards.text, 'to')).to.include('before Created from');
      expect(names(backwards.text)).to.deep.equal(['Lapsed', 'Imported', 'Texted', 'Phone order']);
      // An htmx request gets the results with the message (the filters stay as they were).
      const fragment = await list(acct, '?kind=all&source=fax', 422);
      expect(fragment.text).to.match(/^<div id="link-results"/m);
      expect(fragment.text).to.include('role="alert"').and.include('Choose a source from the list');
      // Several at once, and odd shapes (repeated parameters) too.
      await acct.agent.get('/app/links?kind=all&kind=request&source[]=x&status=%00&from=99999-01-01').expect(422);
    });

    it('never shows another merchant’s links, requests or key names, on any tab', async () => {
      for (const qs of ['', '?kind=request', '?kind=all', '?kind=all&source=api']) {
        const res = await acct.agent.get(`/app/links${qs}`).expect(200);
        expect(res.text, qs).not.to.include('Rival');
      }
      // Searching for their names finds nothing (the search box keeps what was typed).
      const search = await acct.agent.get('/app/links?kind=all&q=Rival').expect(200);
      expect(names(search.text)).to.deep.equal([]);
      expect(search.text).to.include('No links match');
    });
  });

  describe('where links come from', () => {
    it('records the source on the API’s link object, filters GET /links by it, and refuses a bad one', async () => {
      const call = apiClient(env.app, backend.secret);
      const mug = (await call('get', `/links/${apiLinkId}`).expect(200)).body;
      expect(mug).to.include({ source: 'api', api_key_id: backend.id });
      const tote = (await call('get', '/links?source=dashboard').expect(200)).body.data;
      expect(tote.map((l: { name: string }) => l.name)).to.deep.equal(['Lapsed', 'Phone order', 'Dashboard tote']);
      expect(tote[2]).to.include({ source: 'dashboard', api_key_id: null, kind: 'smart' });
      const byApi = (await call('get', '/links?source=api').expect(200)).body.data;
      expect(byApi.map((l: { source: string; api_key_id: string; kind: string }) => [l.kind, l.api_key_id])).to.deep.equal([
        ['request', invoicing.id],
        ['smart', backend.id],
      ]);
      expectProblem(await call('get', '/links?source=fax'), 422, 'validation_failed');
      // A copy made by the API is the API's, by the key that asked.
      const copy = (await apiClient(env.app, invoicing.secret)('post', `/links/${apiLinkId}/duplicate`).expect(201)).body;
      expect(copy).to.include({ source: 'api', api_key_id: invoicing.id });
      await apiClient(env.app, invoicing.secret)('delete', `/links/${copy.id}`).expect(200);
    });

    it('keeps a link’s source when its API key is deleted from the database, without the key', async () => {
      const { apiKey, secret } = await env.rt.services.apiKeys.create(merchant, { name: 'Short-lived' });
      const made = (await apiClient(env.app, secret)('post', '/links', { type: 'amount', name: 'Orphan', amount: 100, currency: 'EUR' }).expect(201)).body;
      expect(made.api_key_id).to.equal(apiKey.id);
      await env.rt.db('api_keys').where({ public_id: apiKey.id }).delete();
      const again = (await apiClient(env.app, backend.secret)('get', `/links/${made.id}`).expect(200)).body;
      expect(again).to.include({ source: 'api', api_key_id: null });
      const res = await acct.agent.get('/app/links?q=Orphan').expect(200);
      expect(sourceOf(rowOf(res.text, 'Orphan'))).to.equal('API');
      await env.rt.services.links.remove(merchant, made.id);
    });

    it('points the Requests page to the Links page’s requests tab, and the Links page back', async () => {
      const requests = await acct.agent.get('/app/requests').expect(200);
      expect(requests.text).to.include('href="/app/links?kind=request"');
      const links = await acct.agent.get('/app/links?kind=request').expect(200);
      expect(links.text).to.include('href="/app/requests"');
    });
  });
});

// In Chromium: the tab survives the live filters (htmx), and on a phone the filters fold away.
describe('dashboard: links and payment requests in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;

  before(async function () {
    this.timeout(30_000);
    let m: Merchant;
    ({ env, storageState, merchant: m } = await servedMerchant(browser(), { name: 'Harbour Bikes', handlePrefix: 'kinds' }));
    const { apiKey } = await env.rt.services.apiKeys.create(m, { name: 'Booking site' });
    const key = Number((await env.rt.db('api_keys').where({ public_id: apiKey.id }).first('id')).id);
    await env.rt.services.links.create(m, { type: 'amount', name: 'Day rental', amount: 2500 });
    for (const [description, source] of [['Repair invoice', 'dashboard'], ['Booking 88', 'api']] as const) {
      await env.rt.services.requests.create(m, { amount: 4000, currency: 'EUR', description, customer: { name: 'Cy', email: 'cy@example.test' } }, { source, apiKeyKey: source === 'api' ? key : null });
    }
  });
  after(() => env?.close());

  const names = (page: Page) => page.locator('#link-results td.link-name > a').allTextContents();

  it('switches tabs, filters live by an API key keeping the tab, and folds the filters on a phone', async () => {
    const tab = await browser().newPage({ storageState, viewport: PHONE });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/links`);
      expect(await names(page)).to.deep.equal(['Day rental']);
      // Folded on a phone: only the search shows until "Filters" is opened.
      expect(await page.getByLabel('Source').isVisible()).to.equal(false);
      await page.getByRole('tab', { name: 'Payment requests' }).click();
      await page.waitForURL(`${env.origin}/app/links?kind=request`);
      expect(await names(page)).to.deep.equal(['Booking 88', 'Repair invoice']);
      await page.locator('#filters-more > summary').click();
      await page.getByLabel('Source').selectOption({ label: 'API key “Booking site”' });
      await page.waitForURL(/\/app\/links\?kind=request&source=key_/);
      await page.locator('#link-results tr', { hasText: 'Repair invoice' }).waitFor({ state: 'detached' });
      expect(await names(page)).to.deep.equal(['Booking 88']);
      await tab.screenshot('links-kinds-filtered-phone');
      // A reload of the pushed address shows the same list, its filters still folded, counted.
      await page.reload();
      expect(await names(page)).to.deep.equal(['Booking 88']);
      expect(await page.getByLabel('Source').isVisible()).to.equal(false);
      expect(await page.locator('#filters-more > summary').textContent()).to.equal('Filters (1 active)');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});

forEachTarget('migration: link sources', (target) => {
  it('backfills request links from their requests (orphan Text-to-Pay links as text_to_pay), keeps every row on the way down and up, and forgets a deleted key', async function () {
    this.timeout(60_000);
    const env = await build(target);
    try {
      const { merchant } = await env.rt.services.merchants.signUp({ name: 'Migrating', handle: uniqueHandle('mig'), email: `${uniqueHandle('mig')}@example.test`, password: 'correct horse battery' }, {});
      const { apiKey } = await env.rt.services.apiKeys.create(merchant, { name: 'K' });
      const keyId = Number((await env.rt.db('api_keys').where({ public_id: apiKey.id }).first('id')).id);
      const customer = { name: 'C', email: 'c@example.test' };
      const byApi = await env.rt.services.requests.create(merchant, { amount: 100, currency: 'EUR', customer }, { source: 'api', apiKeyKey: keyId });
      const imported = await env.rt.services.requests.create(merchant, { amount: 100, currency: 'EUR', customer }, { source: 'import' });
      // A Text-to-Pay link from before payment requests: a request link with no request.
      const orphan = await env.rt.db.transaction((trx) =>
        env.rt.services.links.createRequest(trx, merchant, { name: 'Old', description: null, amount: 1, currency: 'EUR', customerKey: byApi.link.customerKey!, expiresAt: new Date(env.clock.now().getTime() + 86_400_000), by: { source: 'dashboard' } }),
      );
      const smart = await env.rt.services.links.create(merchant, { type: 'amount', name: 'S', amount: 100, tags: ['Kept'] }, { by: { source: 'api', apiKeyKey: keyId } });
      const count = async (table: string) => Number((await env.rt.db(table).count({ n: '*' }))[0].n);
      const counts = async () => ({ requests: await count('payment_requests'), links: await count('links'), tags: await count('link_tags') });
      const before = await counts();
      expect(before).to.deep.equal({ requests: 2, links: 4, tags: 1 });
      // This migration alone (later ones touch other tables).
      const [, down] = await env.rt.db.migrate.down({ name: '20261203000030_link_sources' });
      expect(down).to.deep.equal(['20261203000030_link_sources']);
      expect(await env.rt.db.schema.hasColumn('links', 'source')).to.equal(false);
      // SQLite rebuilds `links` on the way down: nothing hanging off it may cascade away.
      expect(await counts()).to.deep.equal(before);
      await env.rt.db.migrate.latest();
      expect(await counts()).to.deep.equal(before);
      const rows = (await env.rt.db('links').whereIn('public_id', [byApi.link.id, imported.link.id, orphan.id, smart.id]).select('public_id', 'source', 'api_key_id')) as { public_id: string; source: string; api_key_id: number | null }[];
      const of = new Map(rows.map((r) => [r.public_id, [r.source, r.api_key_id === null ? null : Number(r.api_key_id)]]));
      expect(of.get(byApi.link.id)).to.deep.equal(['api', keyId]);
      expect(of.get(imported.link.id)).to.deep.equal(['import', null]);
      expect(of.get(orphan.id)).to.deep.equal(['text_to_pay', null]);
      // Smart links recorded nothing before: the dashboard.
      expect(of.get(smart.id)).to.deep.equal(['dashboard', null]);
      // A deleted key leaves its links, without it.
      await env.rt.db('links').where({ public_id: smart.id }).update({ source: 'api', api_key_id: keyId });
      await env.rt.db('api_keys').where({ id: keyId }).delete();
      expect(Number((await env.rt.db('links').whereNotNull('api_key_id').count({ n: '*' }))[0].n)).to.equal(0);
      expect(await count('links')).to.equal(4);
    } finally {
      await env.close();
    }
  });
});
