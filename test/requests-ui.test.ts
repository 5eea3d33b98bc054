/**
 * The dashboard's payment requests (/app/requests): the list and its status filter and pages, the
 * new-request form (amount typed as a decimal, a customer typed or chosen on their page), every bad
 * input refused by its field with nothing written, a taken reference, a request's page with its QR
 * code, cancelling (and a paid request that cannot be), tenant isolation and CSRF. Then the form in
 * Chromium, with screenshots on a phone and a desktop.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { fieldError, signUp, useEnv, type Account } from './support/harness.ts';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { qrPng } from '../src/features/qr/qr.ts';
import { dateTimeIn } from '../src/core/time.ts';

const REQUEST_ID = /^\/app\/requests\/(req_[0-9A-Za-z]+)$/;
const DAY = 86_400_000;

forEachTarget('dashboard: payment requests', (target) => {
  const env = useEnv(target);

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  /** The merchant's rows in the tables a request writes: requests, links, customers. */
  const counts = async (acct: Account) => {
    const key = (await merchantOf(acct)).key;
    const n = async (table: string) => Number((await env.rt.db(table).where({ merchant_id: key }).count({ n: '*' }))[0].n);
    return { requests: await n('payment_requests'), links: await n('links'), customers: await n('customers') };
  };
  /** Posts the new-request form; fields as a browser sends them. */
  const postRequest = (acct: Account, fields: Record<string, unknown>) =>
    acct.agent
      .post('/app/requests')
      .type('form')
      .send({ _csrf: acct.csrf, amount: '45.50', currency: 'EUR', description: '', reference: '', customer_name: 'Jane Doe', customer_email: 'jane@example.test', customer_phone: '', expires_days: '7', max_uses: '1', reminder_frequency: '', reminder_max: '3', notify_before: '', ...fields });
  const make = async (acct: Account, raw: Record<string, unknown> = {}) =>
    env.rt.services.requests.create(await merchantOf(acct), { amount: 1200, currency: 'EUR', customer: { name: 'Cy', email: 'cy@example.test' }, ...raw }, { source: 'api' });
  /** Pays a request through its public URL with the sandbox card. */
  const pay = async (url: string) => {
    const path = new URL(url).pathname;
    const start = await supertest(env.app).post(path).type('form').send({ name: 'Cy', email: 'cy@example.test' });
    expect(start.status, start.text.slice(0, 300)).to.equal(303);
    const card = await supertest(env.app).post(new URL(start.headers.location, 'http://x').pathname).type('form').send({ card_number: '4242424242424242' });
    expect(card.status).to.equal(303);
  };

  describe('the list', () => {
    it('starts empty, explaining what a payment request is, with Requests after Links in the navigation', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.get('/app/requests').expect(200);
      expect(res.text).to.include('No payment requests yet');
      expect(res.text).to.include('href="/app/requests/new"');
      expect(res.text).to.match(/href="\/app\/links"[^>]*>Links<\/a><\/li>\s*<li><a id="nav-app-requests" href="\/app\/requests" aria-current="page">Requests<\/a>/);
    });

    it('lists requests newest first with customer, amount, status, expiry and reference, and filters by status', async () => {
      const acct = await signUp(env.app);
      const pending = await make(acct, { description: 'Invoice 1', reference: 'INV-1', customer: { name: 'Ann', email: 'ann@example.test' } });
      const cancelled = await make(acct, { description: 'Invoice 2' });
      await env.rt.services.requests.cancel(await merchantOf(acct), cancelled.id);
      const paid = await make(acct, { description: 'Invoice 3' });
      await pay(env.rt.services.requests.urlOf(paid));
      const expiring = await make(acct, { description: 'Invoice 4', expires_in: 3600 });
      env.clock.advance(3_600_001);
        const res = await acct.agent.get('/app/requests').expect(200);
        const order = [...res.text.matchAll(/<tr id="request-(req_\w+)"/g)].map((m) => m[1]);
        expect(order).to.deep.equal([expiring.id, paid.id, cancelled.id, pending.id]);
        const row = (id: string) => /<tr id="request-[^"]+"[\s\S]*?<\/tr>/.exec(res.text.slice(res.text.indexOf(`<tr id="request-${id}"`)))![0];
        expect(row(pending.id)).to.include('Invoice 1').and.include('Ann').and.include('€12.00').and.include('>Pending<').and.include('INV-1');
        expect(row(pending.id)).to.include(`data-copy="${env.rt.services.requests.urlOf(pending)}"`);
        // The expiry, in the merchant's time zone.
        const merchant = await merchantOf(acct);
        expect(row(pending.id)).to.include(`datetime="${pending.link.expiresAt!.toISOString()}"`).and.include(dateTimeIn(pending.link.expiresAt!, merchant.timezone));
        expect(row(paid.id)).to.include('>Paid<');
        expect(row(cancelled.id)).to.include('>Cancelled<').and.not.include('data-copy');
        expect(row(expiring.id)).to.include('>Expired<');
        for (const [status, id] of [['pending', pending.id], ['paid', paid.id], ['cancelled', cancelled.id], ['expired', expiring.id]]) {
          const page = await acct.agent.get(`/app/requests?status=${status}`).expect(200);
          expect([...page.text.matchAll(/<tr id="request-(req_\w+)"/g)].map((m) => m[1]), status).to.deep.equal([id]);
          expect(page.text).to.include(`href="/app/requests?status=${status}" aria-current="page"`);
        }
        // An unknown status shows everything rather than failing.
        const odd = await acct.agent.get('/app/requests?status=bogus').expect(200);
        expect([...odd.text.matchAll(/<tr id="request-/g)]).to.have.length(4);
    });

    it('says when a filter matches nothing', async () => {
      const acct = await signUp(env.app);
      await make(acct);
      const res = await acct.agent.get('/app/requests?status=paid').expect(200);
      expect(res.text).to.include('No paid requests');
      expect(res.text).to.include('href="/app/requests">Show all requests');
    });

    it('pages through a long list by starting_after', async () => {
      const acct = await signUp(env.app);
      const ids: string[] = [];
      for (let i = 1; i <= 27; i++) ids.push((await make(acct, { description: `Order ${i}` })).id);
      const first = await acct.agent.get('/app/requests').expect(200);
      expect([...first.text.matchAll(/<tr id="request-/g)]).to.have.length(25);
      const next = /href="(\/app\/requests\?after=req_\w+)" rel="next"/.exec(first.text)![1];
      expect(next).to.equal(`/app/requests?after=${ids[2]}`);
      const second = await acct.agent.get(next).expect(200);
      expect([...second.text.matchAll(/<tr id="request-(req_\w+)"/g)].map((m) => m[1])).to.deep.equal([ids[1], ids[0]]);
      expect(second.text).not.to.include('rel="next"');
      expect(second.text).to.include('← First page');
      // A filtered list pages within its filter.
      const filtered = await acct.agent.get('/app/requests?status=pending').expect(200);
      expect(filtered.text).to.include(`href="/app/requests?status=pending&amp;after=${ids[2]}" rel="next"`);
      // A stale or made-up cursor is not an error.
      await acct.agent.get('/app/requests?after=req_doesnotexist').expect(200);
      await acct.agent.get('/app/requests?after=%3Cscript%3E').expect(200);
    });
  });

  describe('creating', () => {
    it('creates a request from the form and shows its page with the URL, a QR code and a Cancel button', async () => {
      const acct = await signUp(env.app);
      const form = await acct.agent.get('/app/requests/new').expect(200);
      expect(form.text).to.match(/<option value="EUR" selected>/);
      expect(form.text).to.match(/id="f-expires_days" name="expires_days" type="text" value="7"/);
      expect(form.text).to.match(/id="f-max_uses" name="max_uses" type="text" value="1"/);
      const res = await postRequest(acct, { amount: '45,50', description: 'Invoice 1042', reference: 'INV-1042', customer_phone: '+31 6 12345678', expires_days: '3', max_uses: '2' }).expect(303);
      const id = REQUEST_ID.exec(res.headers.location)![1];
      const merchant = await merchantOf(acct);
      const r = await env.rt.services.requests.get(merchant.key, id);
      expect(r).to.deep.include({ reference: 'INV-1042', source: 'dashboard', status: 'pending' });
      expect(r.link).to.deep.include({ amount: 4550, currency: 'EUR', description: 'Invoice 1042', uses: 2, paidCount: 0 });
      expect(r.link.expiresAt!.getTime()).to.equal(env.clock.now().getTime() + 3 * DAY);
      const [json] = await env.rt.services.requests.jsonMany([r]);
      expect(json.customer).to.deep.include({ name: 'Jane Doe', email: 'jane@example.test', phone: '+31612345678' });

      const page = await acct.agent.get(res.headers.location).expect(200);
      expect(page.text).to.include('created for Jane Doe');
      expect(page.text).to.include('€45.50').and.include('INV-1042').and.include('>Pending<');
      expect(page.text).to.include(`data-copy="${env.rt.services.requests.urlOf(r)}"`);
      expect(page.text).to.include(`href="/app/customers/${json.customer!.id}"`);
      expect(page.text).to.include(`src="/app/requests/${id}/qr.png?size=200"`);
      expect(page.text).to.include(`href="/app/requests/${id}/cancel"`);
      expect(page.text).to.include('0 of 2 paid').and.include('on the dashboard');

      // The QR code encodes exactly the request's URL.
      const png = await acct.agent.get(`/app/requests/${id}/qr.png`).expect(200).expect('Content-Type', 'image/png');
      expect(Buffer.compare(png.body as Buffer, qrPng(env.rt.services.requests.urlOf(r), 200))).to.equal(0);
      await acct.agent.get(`/app/requests/${id}/qr.svg?download=1`).expect(200).expect('Content-Disposition', /attachment; filename=".*INV-1042-qr\.svg"/);
      await acct.agent.get(`/app/requests/${id}/qr.png?size=5`).expect(422);
    });

    it('defaults to the merchant’s currency, 7 days and one payment, and takes amounts in the currency’s precision', async () => {
      const acct = await signUp(env.app);
      const yen = await postRequest(acct, { amount: '1500', currency: 'JPY' }).expect(303);
      const kwd = await postRequest(acct, { amount: '2.125', currency: 'kwd', customer_email: 'k@example.test' }).expect(303);
      const key = (await merchantOf(acct)).key;
      const y = await env.rt.services.requests.get(key, REQUEST_ID.exec(yen.headers.location)![1]);
      const k = await env.rt.services.requests.get(key, REQUEST_ID.exec(kwd.headers.location)![1]);
      expect([y.link.amount, y.link.currency, k.link.amount, k.link.currency]).to.deep.equal([1500, 'JPY', 2125, 'KWD']);
      expect(y.link.uses).to.equal(1);
      expect(y.link.expiresAt!.getTime()).to.equal(env.clock.now().getTime() + 7 * DAY);
      // The same email twice is one customer.
      expect((await counts(acct)).customers).to.equal(2);
    });

    const BAD: [string, string, Record<string, unknown>][] = [
      ['amount', 'a missing amount', { amount: '' }],
      ['amount', 'words for an amount', { amount: 'ten' }],
      ['amount', 'too many decimals', { amount: '1.999' }],
      ['amount', 'decimals on a currency without them', { amount: '10.5', currency: 'JPY' }],
      ['amount', 'a zero amount', { amount: '0' }],
      ['amount', 'a negative amount', { amount: '-5' }],
      ['amount', 'an amount too large', { amount: '999999999999' }],
      ['currency', 'an unknown currency', { currency: 'EURO' }],
      ['description', 'an over-long description', { description: 'x'.repeat(201) }],
      ['description', 'a description with a line break', { description: 'one\ntwo' }],
      ['reference', 'a reference with spaces', { reference: 'INV 1' }],
      ['reference', 'an over-long reference', { reference: 'R'.repeat(65) }],
      ['customer_name', 'no customer name', { customer_name: '  ' }],
      ['customer_email', 'neither email nor phone', { customer_email: '' }],
      ['customer_email', 'a bad email', { customer_email: 'not-an-email' }],
      ['customer_phone', 'a bad phone number', { customer_email: '', customer_phone: '12' }],
      ['expires_days', 'zero days', { expires_days: '0' }],
      ['expires_days', 'more than a year', { expires_days: '366' }],
      ['expires_days', 'words for days', { expires_days: 'week' }],
      ['max_uses', 'zero uses', { max_uses: '0' }],
      ['max_uses', 'too many uses', { max_uses: '10001' }],
      ['max_uses', 'a fraction of a use', { max_uses: '1.5' }],
      ['reminder_frequency', 'an unknown reminder frequency', { channels: ['email'], reminder_frequency: 'hourly' }],
      ['reminder_frequency', 'reminders with no channel to send them by', { reminder_frequency: 'daily' }],
      ['reminder_max', 'no number of reminders', { channels: ['email'], reminder_frequency: 'daily', reminder_max: '0' }],
      ['notify_before', 'a last reminder time not on the list', { channels: ['email'], notify_before: '12345' }],
      ['notify_before', 'a last reminder with no channel to send it by', { notify_before: '86400' }],
      ['notify_before', 'a last reminder that would be due at once', { channels: ['email'], notify_before: '259200', expires_days: '3' }],
    ];
    for (const [field, label, fields] of BAD) {
      it(`refuses ${label} with 422 by the ${field} field, keeps what was typed and writes nothing`, async () => {
        const acct = await signUp(env.app);
        const before = await counts(acct);
        const res = await postRequest(acct, { description: 'Kept description', reference: 'KEEP-1', ...fields }).expect(422);
        expect(fieldError(res.text, field)).not.to.equal('');
        expect(res.text).to.match(new RegExp(`id="f-${field}"[^>]*aria-invalid="true"`));
        expect(res.text).to.include('Nothing was created');
        // What was typed comes back (but the field's own bad value is escaped, not trusted).
        if (!('customer_name' in fields)) expect(res.text).to.include('value="Jane Doe"');
        if (!('reference' in fields)) expect(res.text).to.include('value="KEEP-1"');
        expect(await counts(acct)).to.deep.equal(before);
      });
    }

    it('sends from the form on the channels ticked, with reminders and a last reminder before the expiry', async () => {
      const acct = await signUp(env.app);
      const form = await acct.agent.get('/app/requests/new').expect(200);
      expect(form.text).to.include('name="channels" value="email"').and.include('name="channels" value="sms"');
      const res = await postRequest(acct, { customer_phone: '+31 6 87654321', channels: ['email', 'sms'], reminder_frequency: 'daily', reminder_max: '2', notify_before: '86400', expires_days: '5' }).expect(303);
      const id = REQUEST_ID.exec(res.headers.location)![1];
      const r = await env.rt.services.requests.get((await merchantOf(acct)).key, id);
      expect(r.notifyBeforeExpiry).to.equal(86_400);
      const [json] = await env.rt.services.requests.jsonMany([r]);
      expect(json.deliveries.map((d) => `${d.kind}:${d.channel}:${d.status}`).sort()).to.deep.equal(['expiry:email:queued', 'expiry:sms:queued', 'initial:email:queued', 'initial:sms:queued']);
      const plans = await env.rt.db('reminder_plans').where({ link_id: r.link.key });
      expect(plans.map((p: { frequency: string; max_count: number }) => [p.frequency, Number(p.max_count)])).to.deep.equal([['daily', 2]]);
      const page = await acct.agent.get(res.headers.location).expect(200);
      // Nothing leaves a test install: the Outbox keeps both, and the notice says so.
      expect(page.text).to.include('Email and SMS: kept in the Outbox (no email server configured, no SMS provider configured), so nothing went to the customer.');

      // A channel that cannot reach the customer: said by the channels, nothing written.
      const before = await counts(acct);
      const bad = await postRequest(acct, { customer_email: 'solo@example.test', channels: ['sms'] }).expect(422);
      expect(fieldError(bad.text, 'channels')).to.include('has no phone number');
      expect(bad.text).to.match(/id="f-channel-sms"[^>]*checked/);
      expect(await counts(acct)).to.deep.equal(before);
    });

    it('reports every problem at once: a bad amount does not hide the others', async () => {
      const acct = await signUp(env.app);
      const res = await postRequest(acct, { amount: 'lots', reference: 'bad ref', customer_name: '', customer_email: '', expires_days: '0', max_uses: '0' }).expect(422);
      for (const field of ['amount', 'reference', 'customer_name', 'customer_email', 'expires_days', 'max_uses']) expect(fieldError(res.text, field), field).not.to.equal('');
      expect(res.text).to.include('correct the 6 fields');
      expect(await counts(acct)).to.deep.equal({ requests: 0, links: 0, customers: 0 });
    });

    it('keeps a valid amount quiet while other fields are wrong', async () => {
      const acct = await signUp(env.app);
      const res = await postRequest(acct, { amount: '12.50', max_uses: 'x' }).expect(422);
      expect(fieldError(res.text, 'amount')).to.equal('');
      expect(fieldError(res.text, 'max_uses')).not.to.equal('');
      expect(res.text).to.include('value="12.50"');
    });

    it('refuses a reference already used, next to the field, with a link to the request that has it', async () => {
      const acct = await signUp(env.app);
      const first = await make(acct, { reference: 'INV-7' });
      const before = await counts(acct);
      const res = await postRequest(acct, { reference: 'INV-7', amount: '9.99' }).expect(422);
      expect(fieldError(res.text, 'reference')).to.include('already exists');
      expect(res.text).to.include(`href="/app/requests/${first.id}"`);
      expect(res.text).to.include('value="9.99"');
      expect(await counts(acct)).to.deep.equal(before);
    });

    it('asks from a customer’s page with that customer chosen', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const customer = await env.rt.services.customers.create(merchant.key, { name: 'Bea Baker', email: 'bea@example.test' });
      const page = await acct.agent.get(`/app/customers/${customer.id}`).expect(200);
      expect(page.text).to.include(`href="/app/requests/new?customer=${customer.id}"`);
      const form = await acct.agent.get(`/app/requests/new?customer=${customer.id}`).expect(200);
      expect(form.text).to.include(`name="customer_id" value="${customer.id}"`).and.include('Bea Baker');
      expect(form.text).not.to.include('id="f-customer_name"');
      const res = await postRequest(acct, { customer_id: customer.id, customer_name: '', customer_email: '' }).expect(303);
      const r = await env.rt.services.requests.get(merchant.key, REQUEST_ID.exec(res.headers.location)![1]);
      expect(r.link.customerKey).to.equal(customer.key);
      expect((await counts(acct)).customers).to.equal(1);
      // A bad amount keeps the chosen customer on the form.
      const bad = await postRequest(acct, { customer_id: customer.id, customer_name: '', customer_email: '', amount: 'x' }).expect(422);
      expect(bad.text).to.include(`name="customer_id" value="${customer.id}"`);
      expect(fieldError(bad.text, 'amount')).not.to.equal('');
    });

    it('does not choose another merchant’s customer, from the address or the form', async () => {
      const owner = await signUp(env.app);
      const theirs = await env.rt.services.customers.create((await merchantOf(owner)).key, { name: 'Secret Sam', email: 'sam@example.test' });
      const acct = await signUp(env.app);
      const form = await acct.agent.get(`/app/requests/new?customer=${theirs.id}`).expect(200);
      expect(form.text).not.to.include('Secret Sam');
      expect(form.text).not.to.include(`value="${theirs.id}"`);
      expect(form.text).to.include('id="f-customer_name"').and.include('was not found');
      const before = await counts(acct);
      const res = await postRequest(acct, { customer_id: theirs.id, customer_name: '', customer_email: '' }).expect(422);
      expect(fieldError(res.text, 'customer_id')).not.to.equal('');
      expect(res.text).not.to.include('Secret Sam');
      expect(await counts(acct)).to.deep.equal(before);
    });
  });

  describe('cancelling', () => {
    it('cancels a pending request after a confirmation page: its link closes, the page and list say so', async () => {
      const acct = await signUp(env.app);
      const r = await make(acct, { description: 'Old invoice' });
      const confirm = await acct.agent.get(`/app/requests/${r.id}/cancel`).expect(200);
      expect(confirm.text).to.include(`action="/app/requests/${r.id}/cancel"`);
      const res = await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect(res.headers.location).to.equal(`/app/requests/${r.id}`);
      expect((await env.rt.services.requests.get((await merchantOf(acct)).key, r.id)).status).to.equal('cancelled');
      const page = await acct.agent.get(res.headers.location).expect(200);
      expect(page.text).to.include('cancelled. Its link no longer opens').and.include('>Cancelled<');
      expect(page.text).not.to.include(`href="/app/requests/${r.id}/cancel"`);
      await supertest(env.app).get(new URL(env.rt.services.requests.urlOf(r)).pathname).expect(404);
      // Again: harmless.
      await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: acct.csrf }).expect(303);
    });

    it('lets the customer ask for a new link once it expires, by the merchant’s default or per request, and shows the chain both ways', async () => {
      const acct = await signUp(env.app);
      // Off by default: the form starts unticked, and an API request that does not say gets none.
      expect((await acct.agent.get('/app/requests/new').expect(200)).text).to.include('<input type="checkbox" name="allow_refresh">');
      expect((await make(acct)).allowRefresh).to.equal(false);
      const settings = await acct.agent.get('/app/settings').expect(200);
      expect(settings.text).to.include('<input type="checkbox" name="request_allow_refresh" value="on" aria-describedby');
      await acct.agent.post('/app/settings/requests').type('form').send({ _csrf: acct.csrf, request_allow_refresh: 'on' }).expect(303);
      expect((await acct.agent.get('/app/settings').expect(200)).text).to.include('name="request_allow_refresh" value="on" checked');
      // On: the form starts ticked, and so does a request that does not say (API, CSV); one that says no, does not.
      expect((await acct.agent.get('/app/requests/new').expect(200)).text).to.include('<input type="checkbox" name="allow_refresh" checked>');
      expect((await make(acct)).allowRefresh).to.equal(true);
      expect((await make(acct, { allow_refresh: false })).allowRefresh).to.equal(false);
      await postRequest(acct, { reference: 'NO-REFRESH' }).expect(303); // a browser leaves an unticked box out
      const m = await merchantOf(acct);
      const [unticked] = (await env.rt.services.requests.list(m.key, { reference: 'NO-REFRESH' })).data;
      expect(unticked.allowRefresh).to.equal(false);
      await postRequest(acct, { reference: 'REFRESH', allow_refresh: 'on', expires_days: '1' }).expect(303);
      const [old] = (await env.rt.services.requests.list(m.key, { reference: 'REFRESH' })).data;
      expect(old.allowRefresh).to.equal(true);
      env.clock.advance(86_400_001);
      await supertest(env.app).post(`${new URL(env.rt.services.requests.urlOf(old)).pathname}/refresh`).expect(201);
      const fresh = (await env.rt.services.requests.get(m.key, old.id)).refreshedTo!;
      expect((await acct.agent.get(`/app/requests/${old.id}`).expect(200)).text).to.include(`href="/app/requests/${fresh}">the request that replaces this one</a>`);
      expect((await acct.agent.get(`/app/requests/${fresh}`).expect(200)).text).to.include(`Replaces the expired <a href="/app/requests/${old.id}">earlier request</a>`);
      // One-off requests do not crowd the Links page, which points to Requests.
      const linksPage = await acct.agent.get('/app/links').expect(200);
      expect(linksPage.text).to.include('href="/app/requests"').and.not.include('Payment request REFRESH');
    });

    it('cancels an expired request too', async () => {
      const acct = await signUp(env.app);
      const r = await make(acct, { expires_in: 60 });
      env.clock.advance(61_000);
      const page = await acct.agent.get(`/app/requests/${r.id}`).expect(200);
      expect(page.text).to.include('>Expired<').and.include(`href="/app/requests/${r.id}/cancel"`);
      await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: acct.csrf }).expect(303);
      expect((await env.rt.services.requests.get((await merchantOf(acct)).key, r.id)).status).to.equal('cancelled');
    });

    it('refuses to cancel a paid request with 409 and says why; the page offers no Cancel', async () => {
      const acct = await signUp(env.app);
      const r = await make(acct, { description: 'Paid invoice' });
      await pay(env.rt.services.requests.urlOf(r));
      const page = await acct.agent.get(`/app/requests/${r.id}`).expect(200);
      expect(page.text).to.include('>Paid<').and.include('1 of 1 paid').and.include(`href="/app/payments?link=${r.link.id}"`);
      expect(page.text).not.to.include(`href="/app/requests/${r.id}/cancel"`);
      const confirm = await acct.agent.get(`/app/requests/${r.id}/cancel`).expect(200);
      expect(confirm.text).to.include('cannot be cancelled').and.not.include(`action="/app/requests/${r.id}/cancel"`);
      const res = await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: acct.csrf }).expect(409);
      expect(res.text).to.include('id="request-problem"').and.include('has been paid');
      expect((await env.rt.services.requests.get((await merchantOf(acct)).key, r.id)).status).to.equal('paid');
    });
  });

  describe('safety', () => {
    it('answers the 404 page for another merchant’s request on every route, and lists only one’s own', async () => {
      const owner = await signUp(env.app);
      const r = await make(owner, { description: 'Owner only' });
      const intruder = await signUp(env.app);
      for (const path of ['', '/cancel', '/qr.png', '/qr.svg']) {
        const res = await intruder.agent.get(`/app/requests/${r.id}${path}`).expect(404);
        if (!path.startsWith('/qr')) expect(res.text).to.include('Page not found');
      }
      await intruder.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: intruder.csrf }).expect(404);
      expect((await env.rt.services.requests.get((await merchantOf(owner)).key, r.id)).status).to.equal('pending');
      const list = await intruder.agent.get('/app/requests').expect(200);
      expect(list.text).not.to.include('Owner only');
      await intruder.agent.get('/app/requests/req_doesnotexist').expect(404);
    });

    it('refuses posts without the CSRF token (403) and writes nothing; signed-out visitors go to the login page', async () => {
      const acct = await signUp(env.app);
      const r = await make(acct);
      const before = await counts(acct);
      await acct.agent.post('/app/requests').type('form').send({ amount: '5', currency: 'EUR', customer_name: 'X', customer_email: 'x@example.test', expires_days: '7', max_uses: '1' }).expect(403);
      await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({}).expect(403);
      await acct.agent.post(`/app/requests/${r.id}/cancel`).type('form').send({ _csrf: 'forged' }).expect(403);
      expect(await counts(acct)).to.deep.equal(before);
      expect((await env.rt.services.requests.get((await merchantOf(acct)).key, r.id)).status).to.equal('pending');
      const anon = await supertest(env.app).get('/app/requests').expect(303);
      expect(anon.headers.location).to.match(/^\/login/);
    });

    it('escapes what merchants and API clients typed', async () => {
      const acct = await signUp(env.app);
      const r = await make(acct, { description: '<img src=x onerror=alert(1)>', metadata: { '<b>': '<script>x</script>' }, customer: { name: '<i>Eve</i>', email: 'eve@example.test' } });
      for (const path of ['/app/requests', `/app/requests/${r.id}`, `/app/requests/${r.id}/cancel`]) {
        const res = await acct.agent.get(path).expect(200);
        expect(res.text, path).not.to.include('<img src=x').and.not.include('<script>x').and.not.include('<i>Eve');
      }
    });
  });
});

// The form in Chromium: a request made by typing, its errors and its page, on a phone and a desktop.
describe('dashboard: payment requests in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;
  let handle: string;

  before(async function () {
    this.timeout(30_000);
    let m: Merchant;
    ({ env, storageState, handle, merchant: m } = await servedMerchant(browser(), { name: 'Harbour Bikes', handlePrefix: 'req' }));
    const mk = (raw: Record<string, unknown>) => env.rt.services.requests.create(m, { currency: 'EUR', ...raw }, { source: 'api' });
    await mk({ amount: 12900, description: 'Service: gears and brakes', reference: 'WO-2211', customer: { name: 'Anna de Vries', email: 'anna.devries@example.test' } });
    const gone = await mk({ amount: 2500, description: 'Rental deposit', customer: { name: 'Ben Okafor', phone: '+447911123456' } });
    await env.rt.services.requests.cancel(m, gone.id);
    await mk({ amount: 45000, description: 'Group tour, 6 riders', reference: 'TOUR-0614/B', max_uses: 6, customer: { name: 'Charlotte Lindqvist-Henriksen', email: 'charlotte.lindqvist-henriksen@example.test' } });
  });
  after(() => env?.close());

  for (const [device, viewport] of [['phone', PHONE], ['desktop', DESKTOP]] as const) {
    it(`creates a request through the form, on a ${device}`, async function () {
      this.timeout(30_000);
      const tab = await browser().newPage({ storageState, viewport, permissions: ['clipboard-read', 'clipboard-write'] });
      try {
        const { page } = tab;
        await page.goto(`${env.origin}/app/requests`);
        await page.locator('tr', { hasText: 'Group tour' }).waitFor();
        await tab.screenshot(`requests-list-${device}`);
        await page.getByRole('link', { name: 'New request' }).first().click();
        await page.getByRole('heading', { level: 1, name: 'New payment request' }).waitFor();
        tab.expectError({ status: 422, path: '/app/requests' });
        await page.getByLabel('Amount').fill('12.345');
        await page.getByLabel('Your reference (optional)').fill('WO-2211');
        await page.getByLabel('Name').fill('Dana Smit');
        await page.getByRole('button', { name: 'Create request' }).click();
        await page.locator('#f-amount-error', { hasText: /\w/ }).waitFor();
        expect(await page.locator('#f-reference-error').textContent()).to.include('already exists');
        expect(await page.locator('#f-customer_email-error').textContent()).to.match(/\w/);
        expect(await page.getByLabel('Name').inputValue()).to.equal('Dana Smit');
        await tab.screenshot(`requests-form-errors-${device}`);
        await page.getByLabel('Amount').fill('123.45');
        await page.getByLabel('Your reference (optional)').fill(`WO-${device}`);
        await page.getByLabel('What it is for (optional)').fill('New chain and cassette');
        await page.getByRole('textbox', { name: 'Email' }).fill(`dana.${device}@example.test`);
        await page.getByLabel('Expires after (days)').fill('14');
        await page.getByRole('checkbox', { name: 'Email' }).check();
        await page.getByLabel('Last reminder').selectOption('86400');
        await tab.screenshot(`requests-form-send-${device}`);
        await page.getByRole('button', { name: 'Create request' }).click();
        await page.getByRole('heading', { level: 1, name: /New chain and cassette/ }).waitFor();
        expect(await page.locator('#flash').textContent()).to.include('created for Dana Smit').and.include('Email: kept in the Outbox (no email server configured)');
        await page.locator('.qr img').evaluate((img) => (img as unknown as { decode(): Promise<void> }).decode());
        await page.getByRole('button', { name: /^Copy/ }).click();
        await page.getByRole('button', { name: 'Copied' }).waitFor();
        const url = String(await page.evaluate('navigator.clipboard.readText()'));
        expect(url).to.match(new RegExp(`^${env.origin}/r/[\\w-]{23}$`));
        expect(await page.locator('#request-url').textContent()).to.equal(url);
        await tab.screenshot(`requests-page-${device}`);
        // The layout audit's essentials: nothing wider than the window.
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
        tab.assertClean();
      } finally {
        await tab.close();
      }
    });
  }

  it('works without JavaScript: filter, create, cancel', async function () {
    this.timeout(30_000);
    const tab = await browser().newPage({ storageState, javaScriptEnabled: false });
    try {
      const { page } = tab;
      await page.goto(`${env.origin}/app/requests`);
      await page.getByRole('link', { name: 'Cancelled', exact: true }).click();
      await page.waitForURL(`${env.origin}/app/requests?status=cancelled`);
      expect(await page.locator('tbody tr').count()).to.equal(1);
      await page.goto(`${env.origin}/app/requests/new`);
      await page.getByLabel('Amount').fill('5');
      await page.getByLabel('Name').fill('No Script');
      await page.getByRole('textbox', { name: 'Email' }).fill('noscript@example.test');
      await page.getByRole('button', { name: 'Create request' }).click();
      await page.getByRole('heading', { level: 1, name: /Payment request/ }).waitFor();
      await page.getByRole('link', { name: 'Cancel request…' }).click();
      await page.getByRole('button', { name: 'Cancel the request' }).click();
      await page.locator('h1 .badge', { hasText: 'Cancelled' }).waitFor();
      expect(await page.locator('#flash').textContent()).to.include('cancelled');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
